//! numpy's legacy `np.random.RandomState(seed).randn(...)`, the latents of
//! the official `generate.py` and `style_mixing.py`, so a seed names the
//! same image as there.
//!
//! MT19937 seeded by `init_genrand` (numpy `mt19937_seed`), doubles from
//! two 32-bit draws (`(a >> 5) · 2^26 + (b >> 6)) / 2^53`), and normals by
//! the polar Box–Muller method that keeps its second value (numpy
//! `legacy_gauss`). Source: numpy/random/src/mt19937/mt19937.c,
//! numpy/random/src/legacy/legacy-distributions.c.

use crate::error::{invalid, Result};

const N: usize = 624;
const M: usize = 397;

/// numpy's `RandomState` as far as `randn` needs it.
pub struct RandomState {
    mt: [u32; N],
    idx: usize,
    gauss: Option<f64>,
}

impl RandomState {
    /// `RandomState(seed)`; numpy accepts seeds in `0..2^32`.
    pub fn new(seed: u64) -> Result<RandomState> {
        let Ok(seed) = u32::try_from(seed) else {
            return invalid(
                "RandomState",
                format!("seed {seed} is outside numpy's 0..2^32"),
            );
        };
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Ok(RandomState {
            mt,
            idx: N,
            gauss: None,
        })
    }

    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % N] & 0x7fff_ffff);
            let mut v = self.mt[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.mt[i] = v;
        }
        self.idx = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.idx >= N {
            self.twist();
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One standard normal value (numpy `legacy_gauss`).
    pub fn gauss(&mut self) -> f64 {
        if let Some(g) = self.gauss.take() {
            return g;
        }
        let (x1, x2, r2) = loop {
            let x1 = 2.0 * self.next_f64() - 1.0;
            let x2 = 2.0 * self.next_f64() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                break (x1, x2, r2);
            }
        };
        let f = (-2.0 * r2.ln() / r2).sqrt();
        self.gauss = Some(f * x1);
        f * x2
    }

    /// `randn(n)`.
    pub fn randn(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.gauss()).collect()
    }
}
