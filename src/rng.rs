//! Every random stream in redqueen comes from here.
//!
//! A stream is named by the tournament seed and a path of labels (match,
//! agent, round, purpose). The labels are hashed into ChaCha's 64-bit stream
//! id, so a stream never depends on the order in which tasks happen to run.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A label in a stream path: a name or a number.
#[derive(Debug, Clone, Copy)]
pub enum Label<'a> {
    Name(&'a str),
    Index(u64),
}

impl<'a> From<&'a str> for Label<'a> {
    fn from(s: &'a str) -> Self {
        Label::Name(s)
    }
}
impl<'a> From<&'a String> for Label<'a> {
    fn from(s: &'a String) -> Self {
        Label::Name(s.as_str())
    }
}
impl From<u64> for Label<'_> {
    fn from(i: u64) -> Self {
        Label::Index(i)
    }
}
impl From<usize> for Label<'_> {
    fn from(i: usize) -> Self {
        Label::Index(i as u64)
    }
}

/// FNV-1a, 64 bit: stable across platforms and Rust versions (unlike
/// `DefaultHasher`), which is what reproducible streams need.
pub fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The stream id for a path of labels.
pub fn stream_id(path: &[Label<'_>]) -> u64 {
    let mut h = FNV_OFFSET;
    for label in path {
        match label {
            Label::Name(s) => {
                h = fnv1a(&[0], h);
                h = fnv1a(s.as_bytes(), h);
            }
            Label::Index(i) => {
                h = fnv1a(&[1], h);
                h = fnv1a(&i.to_le_bytes(), h);
            }
        }
    }
    h
}

/// The random stream for `path` under `seed`.
pub fn stream(seed: u64, path: &[Label<'_>]) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream_id(path));
    rng
}

/// A u64 seed derived from `seed` and `path`, for APIs that take a seed
/// (such as a dfdx device).
pub fn derived_seed(seed: u64, path: &[Label<'_>]) -> u64 {
    use rand::RngCore;
    stream(seed, path).next_u64()
}

/// Build a label path from heterogeneous parts: `path!["match", 3usize]`.
#[macro_export]
macro_rules! path {
    ($($x:expr),* $(,)?) => { &[$($crate::rng::Label::from($x)),*] };
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn same_path_same_stream_other_path_other_stream() {
        let a = stream(7, path!["match", 1usize, "craft"]).next_u64();
        let b = stream(7, path!["match", 1usize, "craft"]).next_u64();
        let c = stream(7, path!["match", 2usize, "craft"]).next_u64();
        let d = stream(8, path!["match", 1usize, "craft"]).next_u64();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn name_and_index_labels_do_not_collide() {
        assert_ne!(stream_id(path!["1"]), stream_id(path![1usize]));
        assert_ne!(stream_id(path!["ab", "c"]), stream_id(path!["a", "bc"]));
    }
}
