//! Counter-based random numbers: the same (seed, index) gives the same value on every backend and
//! thread, so dropout masks can be regenerated in the backward pass instead of stored.

/// SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in [0, 1) from (seed, index), 24 bits of precision: SplitMix64's output for the
/// state `seed + (index + 1) · golden` (`seed` comes from [`derive`], so it is already mixed).
#[inline]
pub fn uniform(seed: u64, index: u64) -> f32 {
    let h = mix64(seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    (h >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// Derives a sub-seed for a named stream (e.g. one dropout site of one layer at one step).
#[inline]
pub fn derive(seed: u64, stream: u64) -> u64 {
    mix64(seed.wrapping_add(mix64(stream ^ 0xd1b5_4a32_d192_ed03)))
}

/// A small sequential generator for initialisation and data shuffling.
#[derive(Clone, Debug)]
pub struct Rng {
    seed: u64,
    counter: u64,
}

impl Rng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { seed: mix64(seed), counter: 0 }
    }
    /// Next raw 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.counter += 1;
        mix64(self.seed ^ mix64(self.counter))
    }
    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_deterministic_and_spread() {
        assert_eq!(uniform(7, 3), uniform(7, 3));
        assert_ne!(uniform(7, 3), uniform(8, 3));
        let n = 100_000;
        let mean: f64 = (0..n).map(|i| uniform(42, i) as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        let below: usize = (0..n).filter(|&i| uniform(1, i) < 0.1).count();
        assert!((below as f64 / n as f64 - 0.1).abs() < 0.01);
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(3);
        let xs: Vec<f64> = (0..50_000).map(|_| r.normal() as f64).collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64;
        assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.03, "mean {m} var {v}");
    }
}
