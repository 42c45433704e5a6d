//! Owns choosing `sample` mode's sample: hash keys picked by a salted hash, the salt chosen
//! per run (so re-runs look at other keys, and a printed salt repeats a run), and what such a
//! sample can be expected to catch.

use std::hash::{BuildHasher, RandomState};

use crate::pegasus::key;

/// Which hash keys' values a run compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The fraction of hash keys sampled (0..=1).
    pub rate: f64,
    pub salt: u64,
}

impl Sample {
    /// Whether the record with `full_key` belongs to the sample: decided by its hash key
    /// alone (the same on both sides), mixed with the salt so that no hash key — the empty
    /// one included — is sampled in every run.
    #[must_use]
    pub fn contains(&self, full_key: &[u8]) -> bool {
        let hash_key = key::split_key(full_key).map_or(full_key, |(h, _)| h);
        let h = mix(key::crc64(hash_key) ^ self.salt);
        (h as f64) < self.rate.clamp(0.0, 1.0) * (u64::MAX as f64)
    }

    /// The chance that a run catches at least one of `lost` damaged records (each under its
    /// own hash key, with key and expiry unchanged, so only its value tells): 1 − (1 − r)^k.
    #[must_use]
    pub fn detection(&self, lost: u64) -> f64 {
        let r = self.rate.clamp(0.0, 1.0);
        let k = i32::try_from(lost).unwrap_or(i32::MAX);
        1.0 - (1.0 - r).powi(k)
    }

    /// The fewest damaged records a run catches at least one of with chance `p` (`None`: no
    /// number does, the rate being 0).
    #[must_use]
    pub fn lost_for(&self, p: f64) -> Option<u64> {
        let r = self.rate.clamp(0.0, 1.0);
        if r >= 1.0 {
            return Some(1);
        }
        if r <= 0.0 {
            return None;
        }
        let k = ((1.0 - p).ln() / (1.0 - r).ln()).ceil();
        Some(if k < 1.0 { 1 } else { k as u64 })
    }

    /// What the report states about the sample.
    #[must_use]
    pub fn report(&self) -> SampleReport {
        SampleReport {
            rate: self.rate,
            salt: self.salt,
            detect_1: self.detection(1),
            detect_10: self.detection(10),
            detect_100: self.detection(100),
            lost_for_99_percent: self.lost_for(0.99),
        }
    }
}

/// The sample of a run as reported: enough to repeat it, and what it could catch.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SampleReport {
    pub rate: f64,
    /// `--sample-salt` repeats the run's sample.
    pub salt: u64,
    /// Chances of catching at least one of 1, 10 and 100 records whose value alone is wrong.
    pub detect_1: f64,
    pub detect_10: f64,
    pub detect_100: f64,
    /// How many such records a run catches one of 99 times in 100.
    pub lost_for_99_percent: Option<u64>,
}

/// A salt for one run, from the process's random hasher keys and the clock; in a simulation
/// from its virtual clock alone, so that a seed replays the same sample.
#[must_use]
pub fn random_salt() -> u64 {
    let micros = crate::clock::now_us();
    if crate::clock::simulated() {
        return mix(micros);
    }
    RandomState::new().hash_one(micros)
}

/// A 64-bit mix (splitmix64): every input bit moves every output bit, and 0 is not fixed.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(h: &str, s: &str) -> Vec<u8> {
        key::composite_key(h.as_bytes(), s.as_bytes()).unwrap()
    }

    fn picked(sample: Sample) -> Vec<usize> {
        (0..10_000)
            .filter(|i| sample.contains(&full(&format!("user{i}"), "a")))
            .collect()
    }

    #[test]
    fn the_sample_is_by_hash_key_about_the_rate_and_moves_with_the_salt() {
        let one = Sample { rate: 0.1, salt: 1 };
        let a = picked(one);
        assert!((800..1200).contains(&a.len()), "{} of 10000", a.len());
        assert_eq!(picked(one), a, "the same salt, the same sample");
        let b = picked(Sample { salt: 2, ..one });
        let both = a.iter().filter(|i| b.contains(i)).count();
        assert!(
            both < 200,
            "another salt, mostly other keys: {both} in common"
        );
        for i in 0..100 {
            let h = format!("user{i}");
            assert_eq!(one.contains(&full(&h, "a")), one.contains(&full(&h, "zzz")));
        }
        let none = Sample { rate: 0.0, ..one };
        let all = Sample { rate: 1.0, ..one };
        assert!(!none.contains(&full("x", "a")));
        assert!(all.contains(&full("x", "a")));
    }

    #[test]
    fn the_empty_hash_key_is_sampled_at_the_rate_like_any_other() {
        let runs = (0..2000u64)
            .filter(|&salt| Sample { rate: 0.1, salt }.contains(&full("", "s")))
            .count();
        assert!((120..280).contains(&runs), "{runs} of 2000 runs");
        assert!(!Sample {
            rate: 0.01,
            salt: 0
        }
        .contains(&full("", "s")));
    }

    #[test]
    fn detection_chances_follow_one_minus_the_miss_rate_to_the_k() {
        let s = Sample {
            rate: 0.01,
            salt: 0,
        };
        assert!((s.detection(1) - 0.01).abs() < 1e-12);
        assert!((s.detection(10) - 0.095_617_924).abs() < 1e-6);
        assert!((s.detection(100) - 0.633_967_659).abs() < 1e-6);
        assert_eq!(s.lost_for(0.99), Some(459));
        assert!(s.detection(459) >= 0.99 && s.detection(458) < 0.99);
        assert_eq!(Sample { rate: 1.0, salt: 0 }.lost_for(0.99), Some(1));
        assert_eq!(Sample { rate: 0.0, salt: 0 }.lost_for(0.99), None);
        assert_ne!(random_salt(), random_salt());
    }
}
