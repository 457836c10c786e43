//! Choosing the next token from logits: repetition penalty, top-k, top-p, min-p,
//! temperature, seeded randomness. Allocation-free after construction.

/// Sampling settings (llama.cpp's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probabilities add up to `top_p` (1: all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0: none).
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recently seen tokens by this (1: off).
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repeat_last_n: usize,
    /// Random seed: the same seed, prompt and settings give the same text.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x5eed,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        }
    }
}

/// xoshiro256++: small, fast, good enough for sampling, and reproducible everywhere.
#[derive(Clone, Debug)]
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A sampler with its own random state and candidate buffer.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler for a vocabulary of `vocab` tokens.
    pub fn new(params: SamplingParams, vocab: usize) -> Sampler {
        let rng = Rng::new(params.seed);
        Sampler {
            params,
            rng,
            candidates: Vec::with_capacity(vocab),
        }
    }

    /// The settings.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token. `recent` are the tokens so far (for the repetition penalty);
    /// `logits` may be modified.
    pub fn sample(&mut self, logits: &mut [f32], recent: &[u32]) -> u32 {
        self.apply_penalty(logits, recent);
        let p = &self.params;
        if p.temperature <= 0.0 {
            return argmax(logits);
        }
        self.candidates.clear();
        self.candidates
            .extend(logits.iter().enumerate().map(|(i, &l)| (l, i as u32)));
        let c = &mut self.candidates;
        let by_logit_desc = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0);
        if p.top_k > 0 && p.top_k < c.len() {
            c.select_nth_unstable_by(p.top_k - 1, by_logit_desc);
            c.truncate(p.top_k);
        }
        let max = c.iter().fold(f32::NEG_INFINITY, |m, x| m.max(x.0));
        if p.min_p > 0.0 {
            // p_i / p_max >= min_p  <=>  l_i - l_max >= ln(min_p)
            let floor = max + p.min_p.ln();
            c.retain(|x| x.0 >= floor);
        }
        c.sort_unstable_by(by_logit_desc);
        // Softmax at temperature, then the top-p cut.
        let inv_t = 1.0 / p.temperature;
        let mut sum = 0.0f64;
        for x in c.iter_mut() {
            x.0 = ((x.0 - max) * inv_t).exp();
            sum += f64::from(x.0);
        }
        if p.top_p < 1.0 {
            let mut acc = 0.0f64;
            let keep = c
                .iter()
                .position(|x| {
                    acc += f64::from(x.0) / sum;
                    acc >= f64::from(p.top_p)
                })
                .map_or(c.len(), |i| i + 1);
            c.truncate(keep);
            sum = c.iter().map(|x| f64::from(x.0)).sum();
        }
        let mut r = self.rng.next_f64() * sum;
        for x in c.iter() {
            r -= f64::from(x.0);
            if r < 0.0 {
                return x.1;
            }
        }
        c.last().map_or(0, |x| x.1)
    }

    /// Penalises each distinct token of the recent window once, as llama.cpp does.
    fn apply_penalty(&self, logits: &mut [f32], recent: &[u32]) {
        let p = &self.params;
        if p.repeat_penalty == 1.0 || p.repeat_last_n == 0 {
            return;
        }
        let window = &recent[recent.len().saturating_sub(p.repeat_last_n)..];
        for (i, &t) in window.iter().enumerate() {
            if window[..i].contains(&t) {
                continue;
            }
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l > 0.0 {
                    *l / p.repeat_penalty
                } else {
                    *l * p.repeat_penalty
                };
            }
        }
    }
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = (f32::NEG_INFINITY, 0u32);
    for (i, &l) in logits.iter().enumerate() {
        if l > best.0 {
            best = (l, i as u32);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, -1.0, 2.9]
    }

    #[test]
    fn greedy_takes_the_largest_and_penalties_apply() {
        let mut s = Sampler::new(SamplingParams::greedy(), 5);
        assert_eq!(s.sample(&mut logits(), &[]), 1);
        let mut s = Sampler::new(
            SamplingParams {
                repeat_penalty: 1.5,
                ..SamplingParams::greedy()
            },
            5,
        );
        assert_eq!(s.sample(&mut logits(), &[1, 1, 1]), 4, "3.0 / 1.5 = 2.0 < 2.9");
    }

    #[test]
    fn same_seed_same_choices_and_top_k_bounds_them() {
        let params = SamplingParams {
            temperature: 1.5,
            top_k: 2,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        let run = |seed| {
            let mut s = Sampler::new(
                SamplingParams {
                    seed,
                    ..params.clone()
                },
                5,
            );
            (0..200).map(|_| s.sample(&mut logits(), &[])).collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        assert!(
            a.iter().all(|&t| t == 1 || t == 4),
            "top-k 2 keeps tokens 1 and 4"
        );
        assert!(a.contains(&1) && a.contains(&4));
    }

    #[test]
    fn min_p_and_top_p_cut_the_tail() {
        let mut s = Sampler::new(
            SamplingParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.5,
                ..Default::default()
            },
            5,
        );
        // p_i / p_max >= 0.5 keeps logits within ln 2 of the max: tokens 1 and 4.
        assert!((0..100).all(|_| matches!(s.sample(&mut logits(), &[]), 1 | 4)));
        let mut s = Sampler::new(
            SamplingParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 0.3,
                min_p: 0.0,
                ..Default::default()
            },
            5,
        );
        assert!(
            (0..100).all(|_| s.sample(&mut logits(), &[]) == 1),
            "token 1 alone holds 30%+ of the mass"
        );
    }
}
