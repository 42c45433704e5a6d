//! Owns the simulation's one source of chance: a seeded SplitMix64, so a seed replays exactly.

/// A seeded pseudo-random generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator of `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p` (0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = usize::try_from(self.range(0, items.len() as u64 - 1)).unwrap_or(0);
        &items[i]
    }

    /// The generator of `seed` for draws added after the world's first ones: stream `n` (1,
    /// 2, ...) of its own per addition, so that each leaves every world drawn before as it was.
    #[must_use]
    pub fn later(seed: u64, n: u64) -> Self {
        let stream = n.saturating_sub(1).wrapping_mul(0x9E37_79B9);
        Self::new(seed.rotate_left(32) ^ 0xD1B5_4A32_D192_ED03 ^ stream)
    }

    /// A generator for another purpose, independent of how much this one is used later.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}
