//! Shard planning: which matches one part of a sharded run (`run --shard
//! K/N`) plays, so that every part gets a similar share of the work.

use crate::record::Shard;

/// The part (1-based) of each match, given each match's estimated cost (in
/// canonical order: seed, then match id, `per_seed` matches a seed).
///
/// Whole seeds first: of the seeds, the largest multiple of `count` go one
/// by one to the parts, so that a part pretrains and trains the
/// specialists of its own seeds only (every seed's matches cost the same,
/// so the parts' shares stay equal). The matches of the seeds left over
/// are dealt one by one, costliest first, in snake order (1..N, then
/// N..1, ...), so that every part gets a similar share of them whatever the
/// number of defenders.
pub fn deal(costs: &[usize], count: usize, per_seed: usize) -> Vec<usize> {
    let snake = |rank: usize| {
        let (lap, seat) = (rank / count, rank % count);
        1 + if lap % 2 == 0 { seat } else { count - 1 - seat }
    };
    let seeds = costs.len().checked_div(per_seed).unwrap_or(0);
    let whole = seeds / count * count * per_seed;
    let mut part: Vec<usize> = (0..whole).map(|i| snake(i / per_seed)).collect();
    part.resize(costs.len(), 0);
    let mut by_cost: Vec<usize> = (whole..costs.len()).collect();
    by_cost.sort_by_key(|&i| (std::cmp::Reverse(costs[i]), i));
    for (rank, &i) in by_cost.iter().enumerate() {
        part[i] = snake(rank);
    }
    part
}

/// One part's share of a tournament's matches.
pub struct Part {
    index: usize,
    /// The part of each match, in canonical order.
    dealt: Vec<usize>,
}

impl Part {
    /// The share of `shard`, given each match's estimated cost in canonical
    /// order (seed, then match id, `per_seed` matches a seed).
    pub fn plan(shard: Shard, costs: &[usize], per_seed: usize) -> Part {
        Part {
            index: shard.index,
            dealt: deal(costs, shard.count, per_seed),
        }
    }

    /// Whether the match at `position` (canonical order) is in this part.
    pub fn contains(&self, position: usize) -> bool {
        self.dealt[position] == self.index
    }

    /// How many matches this part plays.
    pub fn match_count(&self) -> usize {
        self.dealt.iter().filter(|p| **p == self.index).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default tournament's shape: 6 matches a seed, in three costs.
    const SEED: [usize; 6] = [9, 1, 1, 9, 4, 4];

    fn costs(seeds: usize) -> Vec<usize> {
        (0..seeds).flat_map(|_| SEED).collect()
    }

    fn seeds_of(part: usize, dealt: &[usize]) -> Vec<usize> {
        let mut seeds: Vec<usize> = (0..dealt.len())
            .filter(|&i| dealt[i] == part)
            .map(|i| i / SEED.len())
            .collect();
        seeds.dedup();
        seeds
    }

    #[test]
    fn whole_seeds_go_to_one_part_each() {
        // 6 seeds on 3 parts: two seeds a part, none shared.
        let dealt = deal(&costs(6), 3, SEED.len());
        for part in 1..=3 {
            assert_eq!(seeds_of(part, &dealt).len(), 2, "part {part}: {dealt:?}");
        }
    }

    #[test]
    fn leftover_seeds_are_dealt_match_by_match_and_work_stays_even() {
        // 5 seeds on 3 parts: seeds 0-2 whole, seeds 3 and 4 shared out.
        let costs = costs(5);
        let dealt = deal(&costs, 3, SEED.len());
        let work = |part: usize| {
            (0..costs.len())
                .filter(|&i| dealt[i] == part)
                .map(|i| costs[i])
                .sum::<usize>()
        };
        let works: Vec<usize> = (1..=3).map(work).collect();
        let (least, most) = (*works.iter().min().unwrap(), *works.iter().max().unwrap());
        assert!(most - least <= 9, "{works:?}");
        for part in 1..=3 {
            assert_eq!(seeds_of(part, &dealt)[0], part - 1, "{dealt:?}");
            assert!(seeds_of(part, &dealt).len() <= 3);
        }
        // Every match in exactly one part.
        assert!(dealt.iter().all(|&p| (1..=3).contains(&p)));
    }

    #[test]
    fn one_seed_is_dealt_match_by_match_in_snake_order() {
        // Costs 9, 9, 4, 4, 1, 1 ranked; parts 1, 2, 2, 1, 1, 2.
        assert_eq!(deal(&SEED, 2, SEED.len()), vec![1, 1, 2, 2, 2, 1]);
        assert_eq!(deal(&[], 2, 0), Vec::<usize>::new());
    }
}
