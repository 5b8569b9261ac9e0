//! Game theory for the tournament: the exact equilibrium of the attacker-versus-defender payoff
//! matrix, Bradley-Terry ratings from match records, and confidence intervals for mean rewards.
//!
//! Everything here is deterministic (no randomness, no hashing, no threads), so the same input gives
//! bit-identical output and tournament reports are reproducible.

use std::collections::BTreeMap;

use crate::arena::metrics::mean;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Tolerance of the simplex method. The matrix is rescaled into [1, 3] before solving, so this is
/// relative to the spread of the payoffs.
const EPS: f64 = 1e-12;

/// A Nash equilibrium of a two-player zero-sum game: the attacker's (row) and the defender's (column)
/// maximin mixed strategies, and the value of the game (mean attacker reward when both play them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    pub row_strategy: Vec<f64>,
    pub col_strategy: Vec<f64>,
    pub value: f64,
}

/// Solves the finite zero-sum game `payoff` (rows maximize, columns minimize) exactly, by linear
/// programming, because the equilibrium of the arms race is the headline number and iterative
/// approximations (fictitious play) converge too slowly to be trusted at a glance.
///
/// Precondition (checked only by `debug_assert`): `payoff` is non-empty, rectangular and finite. In
/// release builds a violation does not panic: ragged rows are cut to the shortest, and an empty matrix
/// gives empty strategies and a NaN value.
///
/// Method: the matrix is mapped affinely into [1, 3] (equilibria are invariant under positive affine
/// maps, and a positive matrix has a positive value), then the column player's program
/// `max sum(y) s.t. B y <= 1, y >= 0` is solved by the simplex method with Bland's rule, so degenerate
/// games cannot cycle. The row strategy is the dual solution, read off the slack columns of the final
/// tableau. Both strategies are clamped to be non-negative and normalized to sum to 1 (the largest entry
/// absorbs the rounding residual); the value is `x^T A y` in the original payoffs, clamped to the
/// payoffs' range. Long because the simplex method is one algorithm:
/// set up the tableau, pivot, read off both strategies.
pub fn solve_zero_sum(payoff: &[Vec<f64>]) -> Solution {
    debug_assert!(
        !payoff.is_empty() && !payoff[0].is_empty(),
        "payoff matrix must be non-empty"
    );
    debug_assert!(
        payoff.iter().all(|r| r.len() == payoff[0].len()),
        "payoff matrix must be rectangular"
    );
    debug_assert!(payoff.iter().flatten().all(|v| v.is_finite()), "payoffs must be finite");
    let m = payoff.len();
    let n = payoff.iter().map(Vec::len).min().unwrap_or(0);
    if m == 0 || n == 0 {
        return Solution {
            row_strategy: Vec::new(),
            col_strategy: Vec::new(),
            value: f64::NAN,
        };
    }
    let cells = || payoff.iter().flat_map(|r| &r[..n]).copied();
    let lo = cells().fold(f64::INFINITY, f64::min);
    let hi = cells().fold(f64::NEG_INFINITY, f64::max);
    // Half the range, computed so that it cannot overflow for any finite payoffs.
    let half = hi / 2.0 - lo / 2.0;
    let scale = if half > 0.0 { half } else { 1.0 };

    // Tableau: one row per constraint, columns y_0..y_{n-1}, slacks s_0..s_{m-1}, right-hand side.
    let w = n + m + 1;
    let mut rows: Vec<Vec<f64>> = payoff
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = vec![0.0; w];
            for (t, &a) in row.iter_mut().zip(&r[..n]) {
                *t = 1.0 + (a / 2.0 - lo / 2.0) / scale;
            }
            row[n + i] = 1.0;
            row[w - 1] = 1.0;
            row
        })
        .collect();
    // Objective row (reduced costs of `max sum(y)`); its last entry is the objective value.
    let mut obj = vec![0.0; w];
    obj[..n].fill(-1.0);
    let mut basis: Vec<usize> = (n..n + m).collect();

    // Bland's rule terminates; the cap only guards against floating-point pathologies.
    let max_pivots = 1000 + 100 * (m + n) * (m + n);
    for _ in 0..max_pivots {
        // Entering variable: the lowest-index column with a negative reduced cost.
        let Some(col) = (0..n + m).find(|&j| obj[j] < -EPS) else {
            break;
        };
        // Leaving variable: minimum ratio, ties broken by the lowest-index basic variable.
        let mut leave: Option<(usize, f64)> = None;
        for (i, row) in rows.iter().enumerate() {
            if row[col] <= EPS {
                continue;
            }
            let ratio = row[w - 1] / row[col];
            leave = match leave {
                Some((k, best)) => {
                    let tie = (ratio - best).abs() <= EPS * best.abs().max(1.0);
                    if (tie && basis[i] < basis[k]) || (!tie && ratio < best) {
                        Some((i, ratio))
                    } else {
                        Some((k, best))
                    }
                }
                None => Some((i, ratio)),
            };
        }
        // Unbounded cannot happen (B > 0 bounds y), but stop rather than panic.
        let Some((row, _)) = leave else { break };
        pivot(&mut rows, &mut obj, row, col);
        basis[row] = col;
    }

    let mut y = vec![0.0; n];
    for (row, &var) in rows.iter().zip(&basis) {
        if var < n {
            y[var] = row[w - 1];
        }
    }
    let row_strategy = normalize(obj[n..n + m].to_vec());
    let col_strategy = normalize(y);
    let value = payoff
        .iter()
        .zip(&row_strategy)
        .map(|(r, x)| x * dot(&r[..n], &col_strategy))
        .sum::<f64>();
    // Rounding can push the value a hair outside the payoffs' range (and with NaN input, lo > hi).
    let value = if lo <= hi { value.clamp(lo, hi) } else { value };
    Solution {
        row_strategy,
        col_strategy,
        value,
    }
}

/// One Gauss-Jordan pivot on (`row`, `col`), zeroing the pivot column exactly elsewhere.
fn pivot(rows: &mut [Vec<f64>], obj: &mut [f64], row: usize, col: usize) {
    let p = rows[row][col];
    rows[row].iter_mut().for_each(|x| *x /= p);
    rows[row][col] = 1.0;
    let prow = rows[row].clone();
    let eliminate = |r: &mut [f64]| {
        let f = r[col];
        if f != 0.0 {
            r.iter_mut().zip(&prow).for_each(|(x, p)| *x -= f * p);
            r[col] = 0.0;
        }
    };
    for (i, r) in rows.iter_mut().enumerate() {
        if i != row {
            eliminate(r);
            // Near-ties in the ratio test leave right-hand sides a rounding error below zero.
            let rhs = r.len() - 1;
            r[rhs] = r[rhs].max(0.0);
        }
    }
    eliminate(obj);
}

/// Clamps negatives (rounding noise) to 0 and scales to sum to 1; falls back to uniform if nothing is left.
fn normalize(mut v: Vec<f64>) -> Vec<f64> {
    v.iter_mut()
        .for_each(|x| *x = if x.is_finite() { x.max(0.0) } else { 0.0 });
    let sum: f64 = v.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        v.iter_mut().for_each(|x| *x /= sum);
    } else {
        let u = 1.0 / v.len() as f64;
        v.iter_mut().for_each(|x| *x = u);
    }
    // Let the largest entry absorb the rounding residual so the sum is 1 to the last bit in practice.
    if let Some(k) = (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))) {
        let others: f64 = v.iter().enumerate().filter(|&(i, _)| i != k).map(|(_, x)| x).sum();
        v[k] = (1.0 - others).max(0.0);
    }
    v
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// How far `eq` is from an equilibrium of `payoff`: the attacker's best-response payoff against the
/// column strategy minus the defender's best-response payoff against the row strategy. It is never
/// negative (up to rounding) and is 0 exactly at an equilibrium, so it measures the solver's error.
pub fn exploitability(payoff: &[Vec<f64>], eq: &Solution) -> f64 {
    let n = payoff.iter().map(Vec::len).min().unwrap_or(0);
    let best_row = payoff
        .iter()
        .map(|r| dot(&r[..n], &eq.col_strategy))
        .fold(f64::NEG_INFINITY, f64::max);
    let best_col = (0..n)
        .map(|j| payoff.iter().zip(&eq.row_strategy).map(|(r, x)| x * r[j]).sum::<f64>())
        .fold(f64::INFINITY, f64::min);
    best_row - best_col
}

/// Bradley-Terry ratings on the Elo scale (mean 1500) from `games`, each `(a, b, score_of_a)` with a
/// score in [0, 1]; fractional scores (a match's mean reward) count as partial wins, so strategies that
/// never met can still be compared through common opponents.
///
/// Strengths are fitted by Hunter's (2004) MM algorithm in cyclic sweeps, each followed by an exact
/// step along the common-scale direction (see `anchor_scale`), until no log-strength moves more than
/// 1e-10 in a sweep (at most 10 000 sweeps). The rating
/// is `400 * log10(strength)`, shifted so the mean is 1500. The games are sorted before use, so their
/// order does not change the result at all.
///
/// Caveat: when the results are perfectly separable (a strict order in which everyone always beats
/// everyone below, scores exactly 0 or 1) over hundreds of games per pair, only the prior bounds the
/// spread and MM can hit the sweep cap; ratings are then still finite and correctly ordered, but not
/// fully converged.
///
/// Prior: every player also plays one virtual game, scored 0.5, against a fixed virtual opponent of
/// strength 1. Without it a player who wins (or loses) everything has an infinite rating; with it all
/// ratings are finite, a player without games is rated like the virtual opponent, and the fit is
/// anchored without renormalization. It shrinks ratings slightly towards each other, by about one game's
/// worth of evidence per player.
///
/// Games with an out-of-range player, a player against itself, or a non-finite score are ignored, and
/// scores are clamped to [0, 1] (a `debug_assert` flags such input in debug builds).
pub fn bradley_terry(players: usize, games: &[(usize, usize, f64)]) -> Vec<f64> {
    debug_assert!(
        games
            .iter()
            .all(|&(a, b, s)| a < players && b < players && a != b && (0.0..=1.0).contains(&s)),
        "games must name two distinct players and score in [0, 1]"
    );
    let mut sorted = games.to_vec();
    sorted.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.total_cmp(&y.2)));
    // Prior: half a win (and one game) against the virtual opponent for everyone.
    let mut wins = vec![0.5; players];
    let mut pairs: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for &(a, b, s) in &sorted {
        if a >= players || b >= players || a == b || !s.is_finite() {
            continue;
        }
        let s = s.clamp(0.0, 1.0);
        wins[a] += s;
        wins[b] += 1.0 - s;
        *pairs.entry((a.min(b), a.max(b))).or_insert(0.0) += 1.0;
    }
    let mut opponents: Vec<Vec<(usize, f64)>> = vec![Vec::new(); players];
    for (&(a, b), &count) in &pairs {
        opponents[a].push((b, count));
        opponents[b].push((a, count));
    }

    let mut strength = vec![1.0; players];
    for _ in 0..10_000 {
        let old = strength.clone();
        for (i, (w, opp)) in wins.iter().zip(&opponents).enumerate() {
            let p = strength[i];
            let games_term: f64 = opp.iter().map(|&(j, c)| c / (p + strength[j])).sum();
            strength[i] = w / (1.0 / (p + 1.0) + games_term);
        }
        let c = anchor_scale(&strength);
        strength.iter_mut().for_each(|p| *p *= c);
        let change = old
            .iter()
            .zip(&strength)
            .map(|(a, b)| (b.ln() - a.ln()).abs())
            .fold(0.0, f64::max);
        if change < 1e-10 {
            break;
        }
    }
    let ratings: Vec<f64> = strength.iter().map(|p| 400.0 * p.log10()).collect();
    let mean = ratings.iter().sum::<f64>() / players.max(1) as f64;
    ratings.iter().map(|r| r - mean + 1500.0).collect()
}

/// The factor `c` that maximizes the likelihood along the common-scale direction: real games do not
/// depend on a common factor, so only the virtual games do, and they are balanced when the expected
/// virtual scores `c p / (c p + 1)` sum to half the number of players. Solved by bisection in `log c`.
/// Plain MM crawls along this direction when the data outweigh the prior (thousands of sweeps), and
/// this exact step removes that mode; as an ascent step it keeps MM's monotone convergence.
fn anchor_scale(strength: &[f64]) -> f64 {
    let logs: Vec<f64> = strength.iter().map(|p| p.ln()).collect();
    let excess =
        |s: f64| logs.iter().map(|t| 1.0 / (1.0 + (-(s + t)).exp())).sum::<f64>() - strength.len() as f64 / 2.0;
    let mut lo = -logs.iter().copied().fold(f64::NEG_INFINITY, f64::max) - 1.0;
    let mut hi = -logs.iter().copied().fold(f64::INFINITY, f64::min) + 1.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if !(mid > lo && mid < hi) {
            break;
        }
        if excess(mid) > 0.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    (0.5 * (lo + hi)).exp()
}

/// `(mean, half-width)` of the 95% confidence interval for the mean, using Student's t with `n - 1`
/// degrees of freedom (small samples: a few seeds per match). `None` when there are fewer than two
/// values, since one value says nothing about the spread and a zero half-width would overstate certainty.
pub fn mean_ci95(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let m = mean(values)?;
    let var = values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0);
    let t = StudentsT::new(0.0, 1.0, n - 1.0).ok()?.inverse_cdf(0.975);
    Some((m, t * (var / n).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn assert_vec(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(close(*g, *w, 1e-12), "{got:?} vs {want:?}");
        }
    }

    fn assert_solution(payoff: &[Vec<f64>], rows: &[f64], cols: &[f64], value: f64) {
        let eq = solve_zero_sum(payoff);
        assert_vec(&eq.row_strategy, rows);
        assert_vec(&eq.col_strategy, cols);
        assert!(close(eq.value, value, 1e-12), "value {} vs {value}", eq.value);
        assert!(exploitability(payoff, &eq).abs() < 1e-12);
    }

    #[test]
    fn matching_pennies() {
        let h = [0.5, 0.5];
        assert_solution(&[vec![1.0, -1.0], vec![-1.0, 1.0]], &h, &h, 0.0);
        assert_solution(&[vec![1.0, 0.0], vec![0.0, 1.0]], &h, &h, 0.5);
    }

    #[test]
    fn rock_paper_scissors() {
        let t = [1.0 / 3.0; 3];
        let rps = [vec![0.0, -1.0, 1.0], vec![1.0, 0.0, -1.0], vec![-1.0, 1.0, 0.0]];
        assert_solution(&rps, &t, &t, 0.0);
    }

    #[test]
    fn pure_saddle_point() {
        // Row minima are 2, 0, 1 (maximin 2 at row 0); column maxima are 4, 2, 5 (minimax 2 at column 1),
        // so (row 0, column 1) is a saddle point with value 2. It is the unique equilibrium: only row 0
        // guarantees 2 against column 1, and row 0 keeps the defender at 2 only if y0 = y2 = 0.
        let a = [vec![4.0, 2.0, 3.0], vec![1.0, 0.0, 5.0], vec![3.0, 1.0, 2.0]];
        assert_solution(&a, &[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0], 2.0);
    }

    #[test]
    fn two_by_four_mixed() {
        // Graphical method: with p on row 0, the columns pay 4-2p, 1+2p, 6-5p and 5p. The lower envelope
        // rises (5p, then 1+2p) and falls (6-5p), peaking where 1+2p = 6-5p: p = 5/7, value 17/7.
        // Columns 0 and 3 pay 18/7 and 25/7 there, so the defender mixes columns 1 and 2 with q and 1-q:
        // 3q + (1-q) = q + 6(1-q) gives q = 5/7. Check: A y = (17/7, 17/7), x^T A = (18/7, 17/7, 17/7, 25/7).
        let a = [vec![2.0, 3.0, 1.0, 5.0], vec![4.0, 1.0, 6.0, 0.0]];
        assert_solution(
            &a,
            &[5.0 / 7.0, 2.0 / 7.0],
            &[0.0, 5.0 / 7.0, 2.0 / 7.0, 0.0],
            17.0 / 7.0,
        );
        // The transposed game, negated, swaps the players' roles.
        let t: Vec<Vec<f64>> = (0..4).map(|j| a.iter().map(|r| -r[j]).collect()).collect();
        assert_solution(
            &t,
            &[0.0, 5.0 / 7.0, 2.0 / 7.0, 0.0],
            &[5.0 / 7.0, 2.0 / 7.0],
            -17.0 / 7.0,
        );
    }

    #[test]
    fn one_by_one_and_vectors() {
        assert_solution(&[vec![0.7]], &[1.0], &[1.0], 0.7);
        // A single row: the defender picks the smallest entry; a single column: the attacker the largest.
        assert_solution(&[vec![0.4, 0.2, 0.9]], &[1.0], &[0.0, 1.0, 0.0], 0.2);
        assert_solution(&[vec![0.4], vec![0.2], vec![0.9]], &[0.0, 0.0, 1.0], &[1.0], 0.9);
    }

    #[test]
    fn constant_matrix() {
        let a = vec![vec![0.3; 3]; 2];
        let eq = solve_zero_sum(&a);
        assert_eq!(eq.value, 0.3);
        assert_eq!(eq.row_strategy.iter().sum::<f64>(), 1.0);
        assert_eq!(eq.col_strategy.iter().sum::<f64>(), 1.0);
        assert_eq!(exploitability(&a, &eq), 0.0);
    }

    #[test]
    fn dominated_strategies() {
        // Row 2 (0, 0, 2) is strictly dominated by row 0 (3, 1, 4) and column 2 (4, 5, 2) by column 0
        // (3, 1, 0). What remains is [[3, 1], [1, 3]]: both mix 1/2, value 2.
        let a = [vec![3.0, 1.0, 4.0], vec![1.0, 3.0, 5.0], vec![0.0, 0.0, 2.0]];
        assert_solution(&a, &[0.5, 0.5, 0.0], &[0.5, 0.5, 0.0], 2.0);
    }

    #[test]
    fn extreme_and_degenerate_inputs() {
        // Huge spreads must not overflow, and duplicated rows and columns are degenerate.
        let a = [vec![f64::MAX, -f64::MAX], vec![-f64::MAX, f64::MAX]];
        let eq = solve_zero_sum(&a);
        assert_vec(&eq.row_strategy, &[0.5, 0.5]);
        assert_vec(&eq.col_strategy, &[0.5, 0.5]);
        assert!(eq.value.is_finite());
        let d = [
            vec![1.0, 0.0, 1.0, 0.0],
            vec![0.0, 1.0, 0.0, 1.0],
            vec![1.0, 0.0, 1.0, 0.0],
        ];
        let eq = solve_zero_sum(&d);
        assert!(close(eq.value, 0.5, 1e-12) && exploitability(&d, &eq) < 1e-12);
    }

    #[test]
    fn random_games_are_solved() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for case in 0..600 {
            let m = 1 + (next() * 7.0) as usize;
            let n = 1 + (next() * 7.0) as usize;
            // Every third game has payoffs in {0, 0.5, 1}: many ties, hence degenerate programs.
            let a: Vec<Vec<f64>> = (0..m)
                .map(|_| {
                    (0..n)
                        .map(|_| {
                            if case % 3 == 0 {
                                (next() * 3.0).floor() / 2.0
                            } else {
                                next()
                            }
                        })
                        .collect()
                })
                .collect();
            let eq = solve_zero_sum(&a);
            for s in [&eq.row_strategy, &eq.col_strategy] {
                assert!(s.iter().all(|&p| (0.0..=1.0).contains(&p)), "{a:?}: {eq:?}");
                assert!(close(s.iter().sum::<f64>(), 1.0, 1e-15), "{a:?}: {eq:?}");
            }
            assert_eq!((eq.row_strategy.len(), eq.col_strategy.len()), (m, n));
            let e = exploitability(&a, &eq);
            assert!((-1e-12..1e-9).contains(&e), "exploitability {e} for {a:?}: {eq:?}");
            assert_eq!(solve_zero_sum(&a), eq, "not deterministic");
        }
    }

    #[test]
    fn bradley_terry_recovers_odds() {
        // A 0.75 score means odds of 3:1, i.e. 400 * log10(3) Elo apart. With 10 000 games the prior's
        // single half-win per player shifts the estimate by well under one Elo point, always inwards.
        let games = vec![(0, 1, 0.75); 10_000];
        let r = bradley_terry(2, &games);
        let want = 400.0 * 3f64.log10();
        assert!(r[0] - r[1] < want && r[0] - r[1] > want - 0.5, "{r:?}");
        assert!(close(r[0] + r[1], 3000.0, 1e-9));
        // With one game the prior matters a lot but the order is still right.
        let r = bradley_terry(2, &[(0, 1, 0.75)]);
        assert!(r[0] > r[1] && r[0] - r[1] < want, "{r:?}");
    }

    #[test]
    fn bradley_terry_is_the_maximizer() {
        // Two players, n games with total score w for player 0. Adding both players' likelihood equations
        // gives sigma(t0) + sigma(t1) = 1 for the log-strengths t, so t1 = -t0: with rho = p0 / p1 from
        // the rating gap, p0 = sqrt(rho). Player 0's equation, w + 0.5 = n rho / (rho + 1) + p0 / (p0 + 1),
        // must then hold, which checks that the iteration really converged (not just ordered the players).
        for (n, score) in [(10_000, 0.75), (1000, 1.0), (3, 0.2), (1, 0.5)] {
            let r = bradley_terry(2, &vec![(0, 1, score); n]);
            let rho = 10f64.powf((r[0] - r[1]) / 400.0);
            let p0 = rho.sqrt();
            let residual = n as f64 * score + 0.5 - n as f64 * rho / (rho + 1.0) - p0 / (p0 + 1.0);
            assert!(
                residual.abs() < 1e-8 * n as f64,
                "n {n}, score {score}: residual {residual}"
            );
        }
    }

    #[test]
    fn bradley_terry_symmetry_and_order() {
        let r = bradley_terry(2, &[(0, 1, 0.5), (1, 0, 0.5)]);
        assert_eq!(r[0], r[1]);
        let r = bradley_terry(3, &[(0, 1, 0.2), (1, 0, 0.2)]);
        assert_eq!(r[0], r[1]);
        assert!(close(r[2], 1500.0, 1e-9) && close(r[0], 1500.0, 1e-9), "{r:?}");
        let games = [
            (0, 1, 0.7),
            (1, 2, 0.6),
            (2, 0, 0.3),
            (0, 2, 0.9),
            (3, 1, 0.1),
            (1, 0, 0.4),
        ];
        let mut reversed = games;
        reversed.reverse();
        assert_eq!(bradley_terry(4, &games), bradley_terry(4, &reversed));
        // Mirroring the games list (b vs a, 1 - score) is the same evidence.
        let mirrored: Vec<_> = games.iter().map(|&(a, b, s)| (b, a, 1.0 - s)).collect();
        let (r, m) = (bradley_terry(4, &games), bradley_terry(4, &mirrored));
        assert!(r.iter().zip(&m).all(|(x, y)| close(*x, *y, 1e-6)), "{r:?} vs {m:?}");
    }

    #[test]
    fn bradley_terry_transitive_and_extreme() {
        let games = [(0, 1, 0.7), (1, 2, 0.7), (0, 2, 0.9), (0, 1, 0.65), (2, 1, 0.35)];
        let r = bradley_terry(3, &games);
        assert!(r[0] > r[1] && r[1] > r[2], "{r:?}");
        assert!(close(r.iter().sum::<f64>() / 3.0, 1500.0, 1e-9));
        // Winning everything stays finite thanks to the prior; an idle player is still defined.
        let r = bradley_terry(3, &vec![(0, 1, 1.0); 100]);
        assert!(r.iter().all(|x| x.is_finite()) && r[0] > r[2] && r[2] > r[1], "{r:?}");
        assert!(bradley_terry(0, &[]).is_empty());
        assert_eq!(bradley_terry(1, &[]), vec![1500.0]);
    }

    #[test]
    fn confidence_intervals() {
        assert_eq!(mean_ci95(&[]), None);
        assert_eq!(mean_ci95(&[1.0]), None);
        // Sample sd of [1, 2, 3] is 1; t_{0.975, 2} = 4.302652729...; half-width = t / sqrt(3).
        let (m, h) = mean_ci95(&[1.0, 2.0, 3.0]).unwrap();
        assert!(close(m, 2.0, 1e-15));
        assert!(close(h, 4.302_652_729_911_275 / 3f64.sqrt(), 1e-6), "{h}");
        assert!(close(h, 2.4841, 1e-4));
        // Large samples approach the normal quantile 1.959964 times the standard error.
        let many: Vec<f64> = (0..10_000).map(|i| (i % 2) as f64).collect();
        let (m, h) = mean_ci95(&many).unwrap();
        let se = (0.25 * 10_000.0 / 9_999.0 / 10_000.0f64).sqrt();
        assert!(close(m, 0.5, 1e-12) && close(h / se, 1.96, 1e-3), "{h}");
        assert_eq!(mean_ci95(&[5.0, 5.0]), Some((5.0, 0.0)));
    }

    #[test]
    fn equilibrium_serde_derives() {
        fn assert_serde<T: Serialize + for<'de> Deserialize<'de>>() {}
        assert_serde::<Solution>();
    }
}
