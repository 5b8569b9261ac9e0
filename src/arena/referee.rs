//! The referee: agents are never trusted. Every example an attack hands back
//! is checked against its threat model; a violating example is replaced by
//! its clean image (a failed attack) and the violation is logged.

use crate::attack::ThreatModel;

/// What the referee let through, and what it rejected.
pub struct Verdict {
    pub examples: Vec<f32>,
    pub violations: usize,
    /// The first few violations, described.
    pub log: Vec<String>,
}

const LOGGED: usize = 3;

/// Every example rejected for one `reason` (an attack outside the rules):
/// the clean images stand in, each a failed attack.
pub fn reject_all(clean: &[f32], dim: usize, reason: &str) -> Verdict {
    Verdict {
        examples: clean.to_vec(),
        violations: clean.len() / dim,
        log: vec![format!("attack outside the rules: {reason}")],
    }
}

pub fn check(threat: ThreatModel, adv: Vec<f32>, clean: &[f32], dim: usize) -> Verdict {
    let mut examples = adv;
    let mut violations = 0;
    let mut log = Vec::new();
    if examples.len() != clean.len() {
        // A wrong-sized answer fails as a whole.
        return Verdict {
            violations: clean.len() / dim,
            log: vec![format!(
                "returned {} pixels for {} images",
                examples.len(),
                clean.len() / dim
            )],
            examples: clean.to_vec(),
        };
    }
    for (i, (a, x)) in examples.chunks_mut(dim).zip(clean.chunks(dim)).enumerate() {
        if let Err(v) = threat.admits(a, x) {
            violations += 1;
            if log.len() < LOGGED {
                log.push(format!("image {i}: {v}"));
            }
            a.copy_from_slice(x);
        }
    }
    Verdict {
        examples,
        violations,
        log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::Norm;

    #[test]
    fn violating_examples_become_clean_and_are_logged() {
        let t = ThreatModel {
            norm: Norm::Linf,
            eps: 0.1,
        };
        let clean = vec![0.5, 0.5, 0.5, 0.5];
        let adv = vec![0.55, 0.45, 0.9, f32::NAN];
        let v = check(t, adv, &clean, 2);
        assert_eq!(v.violations, 1);
        assert_eq!(v.examples, vec![0.55, 0.45, 0.5, 0.5]);
        assert!(v.log[0].contains("image 1"));
    }

    #[test]
    fn wrong_sized_answers_fail_whole() {
        let t = ThreatModel {
            norm: Norm::Linf,
            eps: 0.1,
        };
        let v = check(t, vec![0.5], &[0.5, 0.5], 1);
        assert_eq!(v.violations, 2);
        assert_eq!(v.examples, vec![0.5, 0.5]);
    }
}
