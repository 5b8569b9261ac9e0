//! Shard planning: which matches one part of a sharded run (`run --shard
//! K/N`) plays, so that every part gets a similar share of the work.

use crate::record::Shard;

/// The part (1-based) of each match, given each match's estimated cost
/// (in canonical order: seed, then match id): costliest first, dealt in
/// snake order (1..N, then N..1, ...), so that every part gets a similar
/// share of the work whatever the number of defenders.
pub fn deal(costs: &[usize], count: usize) -> Vec<usize> {
    let mut by_cost: Vec<usize> = (0..costs.len()).collect();
    by_cost.sort_by_key(|&i| (std::cmp::Reverse(costs[i]), i));
    let mut part = vec![0; costs.len()];
    for (rank, &i) in by_cost.iter().enumerate() {
        let (lap, seat) = (rank / count, rank % count);
        part[i] = 1 + if lap % 2 == 0 { seat } else { count - 1 - seat };
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
    /// order (seed, then match id).
    pub fn plan(shard: Shard, costs: &[usize]) -> Part {
        Part {
            index: shard.index,
            dealt: deal(costs, shard.count),
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
