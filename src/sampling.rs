//! Choosing the next token from logits: repetition, presence and frequency penalties, the
//! DRY ("don't repeat yourself") penalty, top-k, top-p, min-p, temperature, seeded
//! randomness, and an optional grammar that masks the tokens it does not allow. Allocation-free
//! after construction.

use crate::grammar::GrammarMatcher;
use crate::model::Model;

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
    /// How many recent tokens the repetition, presence and frequency penalties look at.
    pub repeat_last_n: usize,
    /// Subtracted once from the logit of every token seen in the window (0: off).
    pub presence_penalty: f32,
    /// Subtracted from a token's logit for each time it appears in the window (0: off).
    pub frequency_penalty: f32,
    /// DRY: a token that would extend a repeat of `n >= dry_allowed_length` tokens of the
    /// window loses `dry_multiplier * dry_base^(n - dry_allowed_length)` from its logit
    /// (0: off).
    pub dry_multiplier: f32,
    /// DRY: how fast the penalty grows with the length of the repeat (at least 1).
    pub dry_base: f32,
    /// DRY: longest repeat that is not penalised.
    pub dry_allowed_length: usize,
    /// DRY: how many recent tokens are searched for repeats (0: off).
    pub dry_penalty_last_n: usize,
    /// DRY: text that ends a repeat: no repeat is counted across it, and a token that is
    /// one by itself is never penalised. Matched on the tokens as llama.cpp does.
    pub dry_sequence_breakers: Vec<String>,
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
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            dry_multiplier: 0.0,
            dry_base: 1.75,
            dry_allowed_length: 2,
            dry_penalty_last_n: 64,
            dry_sequence_breakers: ["\n", ":", "\"", "*"].map(String::from).to_vec(),
            seed: 0x5eed,
        }
    }
}

/// A sampling setting out of its range: its name, its value and what it must be.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{name} {value}: {}must be {must}", if value.is_finite() { "" } else { "not a finite number; " })]
pub struct InvalidSetting {
    /// The field's name in [`SamplingParams`] (`top_p`), or the caller's for it (`--top-p`).
    pub name: String,
    /// The value given.
    pub value: f32,
    /// What it must be.
    pub must: &'static str,
}

impl SamplingParams {
    /// Checks every number (the one check the command line, the C API and Python share): the
    /// first setting out of its range, named by its field, is the error.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let (t, p, m, r, d, b) = (
            self.temperature,
            self.top_p,
            self.min_p,
            self.repeat_penalty,
            self.dry_multiplier,
            self.dry_base,
        );
        let rules = [
            ("temperature", t, t >= 0.0, "a finite number >= 0 (0: greedy)"),
            ("top_p", p, p > 0.0 && p <= 1.0, "above 0 and at most 1 (1: off)"),
            ("min_p", m, (0.0..=1.0).contains(&m), "between 0 and 1 (0: off)"),
            ("repeat_penalty", r, r > 0.0, "a finite number > 0 (1: off)"),
            (
                "presence_penalty",
                self.presence_penalty,
                true,
                "a finite number (0: off)",
            ),
            (
                "frequency_penalty",
                self.frequency_penalty,
                true,
                "a finite number (0: off)",
            ),
            ("dry_multiplier", d, d >= 0.0, "a finite number >= 0 (0: off)"),
            ("dry_base", b, b >= 1.0, "a finite number >= 1"),
        ];
        match rules.into_iter().find(|&(_, v, ok, _)| !(v.is_finite() && ok)) {
            Some((name, value, _, must)) => Err(InvalidSetting {
                name: name.into(),
                value,
                must,
            }),
            None => Ok(()),
        }
    }

    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        }
    }

    fn dry_on(&self) -> bool {
        self.dry_multiplier != 0.0 && self.dry_base >= 1.0 && self.dry_penalty_last_n > 0
    }

    fn penalties_on(&self) -> bool {
        self.repeat_last_n > 0
            && (self.repeat_penalty != 1.0 || self.presence_penalty != 0.0 || self.frequency_penalty != 0.0)
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

/// A sampler with its own random state and buffers.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    candidates: Vec<(f32, u32)>,
    /// Occurrences of each token in the penalty window (zero outside `seen`).
    counts: Vec<u32>,
    /// The distinct tokens of the penalty window.
    seen: Vec<u32>,
    dry: Dry,
    grammar: Option<GrammarMatcher>,
}

impl Sampler {
    /// A sampler for `model`'s vocabulary; DRY's sequence breakers are matched on its tokens.
    pub fn new(params: SamplingParams, model: &Model) -> Sampler {
        let tok = model.tokenizer();
        Sampler::build(
            params,
            model.config().vocab_size,
            model.config().max_context,
            |id| tok.token_bytes(id),
            |text| {
                let opts = crate::tokenizer::EncodeOptions {
                    add_special: false,
                    parse_special: false,
                    max_length: None,
                };
                tok.encode(&String::from_utf8_lossy(text), opts)
                    .unwrap_or_default()
            },
        )
    }

    /// A sampler for a vocabulary of `vocab` tokens whose bytes are `token_bytes(id)`, over
    /// at most `max_context` tokens; `tokenize` encodes the text of a sequence breaker's tail.
    fn build<'a>(
        params: SamplingParams,
        vocab: usize,
        max_context: usize,
        token_bytes: impl Fn(u32) -> Option<&'a [u8]>,
        tokenize: impl FnMut(&[u8]) -> Vec<u32>,
    ) -> Sampler {
        let rng = Rng::new(params.seed);
        let penalties = params.penalties_on();
        let window = if penalties { params.repeat_last_n } else { 0 };
        let dry = if params.dry_on() {
            Dry::new(&params, vocab, max_context, token_bytes, tokenize)
        } else {
            Dry::default()
        };
        Sampler {
            rng,
            candidates: Vec::with_capacity(vocab),
            counts: if penalties { vec![0; vocab] } else { Vec::new() },
            seen: Vec::with_capacity(window.min(vocab)),
            dry,
            params,
            grammar: None,
        }
    }

    /// Constrains the tokens sampled to `grammar` (`None`: unconstrained). The matcher
    /// advances with each token sampled; set a fresh (or [`GrammarMatcher::reset`]) one for
    /// each generation.
    pub fn set_grammar(&mut self, grammar: Option<GrammarMatcher>) {
        self.grammar = grammar;
    }

    /// The grammar matcher, if any.
    pub fn grammar(&self) -> Option<&GrammarMatcher> {
        self.grammar.as_ref()
    }

    /// The settings.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token. `recent` are the tokens so far (for the penalties and DRY);
    /// `logits` may be modified. With a grammar, tokens it does not allow are masked first,
    /// and when it allows none (a grammar needing text no token spells, or an ambiguity
    /// beyond its limits) the answer is an end-of-turn token.
    pub fn sample(&mut self, logits: &mut [f32], recent: &[u32]) -> u32 {
        if let Some(g) = &mut self.grammar {
            g.mask(logits);
            if logits.iter().all(|&l| l == f32::NEG_INFINITY) {
                return g.fallback_token();
            }
        }
        let token = self.choose(logits, recent);
        if let Some(g) = &mut self.grammar
            && g.accept(token).is_err()
        {
            return g.fallback_token();
        }
        token
    }

    fn choose(&mut self, logits: &mut [f32], recent: &[u32]) -> u32 {
        self.apply_penalties(logits, recent);
        if self.params.dry_on() {
            self.dry.apply(&self.params, logits, recent);
        }
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

    /// llama.cpp's penalties over the last `repeat_last_n` tokens: each distinct token's
    /// logit is divided by the repetition penalty (multiplied when not positive), then loses
    /// `count * frequency_penalty + presence_penalty`.
    fn apply_penalties(&mut self, logits: &mut [f32], recent: &[u32]) {
        let p = &self.params;
        if !p.penalties_on() {
            return;
        }
        let window = &recent[recent.len().saturating_sub(p.repeat_last_n)..];
        for &t in window {
            if let Some(c) = self.counts.get_mut(t as usize) {
                if *c == 0 {
                    self.seen.push(t);
                }
                *c += 1;
            }
        }
        for &t in &self.seen {
            let count = std::mem::take(&mut self.counts[t as usize]);
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l > 0.0 {
                    *l / p.repeat_penalty
                } else {
                    *l * p.repeat_penalty
                };
                *l -= count as f32 * p.frequency_penalty + p.presence_penalty;
            }
        }
        self.seen.clear();
    }
}

/// The DRY sampler's state: its sequence breakers and preallocated work buffers.
#[derive(Clone, Debug, Default)]
struct Dry {
    /// Sequence breakers as (head token, tail tokens), sorted by head; a breaker that one
    /// token contains entirely has an empty tail.
    breakers: Vec<(u32, Vec<u32>)>,
    /// For each position of the window (from its start), the length of the longest repeat of
    /// the window's suffix that ends there.
    repeat_count: Vec<usize>,
    /// Per token, the longest repeat it would extend (zero outside `touched`).
    max_repeat: Vec<usize>,
    touched: Vec<u32>,
}

/// llama.cpp's limits on sequence breakers: characters kept, tail tokens kept.
const MAX_BREAKER_CHARS: usize = 40;
const MAX_BREAKER_TAIL: usize = 20;

impl Dry {
    fn new<'a>(
        params: &SamplingParams,
        vocab: usize,
        max_context: usize,
        token_bytes: impl Fn(u32) -> Option<&'a [u8]>,
        mut tokenize: impl FnMut(&[u8]) -> Vec<u32>,
    ) -> Dry {
        let mut breakers: Vec<(u32, Vec<u32>)> = Vec::new();
        for b in &params.dry_sequence_breakers {
            let b = &b.as_bytes()[..b.len().min(MAX_BREAKER_CHARS)];
            if b.is_empty() {
                continue;
            }
            // As llama.cpp's get_overlapping_token_sequences: a token that contains the
            // breaker is a breaker by itself; a token that ends with the breaker's first
            // `i` bytes starts one, followed by the tokens of the breaker's remaining bytes.
            for id in 0..vocab as u32 {
                let Some(word) = token_bytes(id) else {
                    continue;
                };
                if contains(word, b) {
                    breakers.push((id, Vec::new()));
                    continue;
                }
                for pos in (0..word.len()).filter(|&p| word[p] == b[0]) {
                    let n = (word.len() - pos).min(b.len());
                    if word[pos..pos + n] != b[..n] {
                        continue;
                    }
                    let mut tail = tokenize(&b[n..]);
                    tail.truncate(MAX_BREAKER_TAIL);
                    if !breakers.iter().any(|(h, t)| *h == id && *t == tail) {
                        breakers.push((id, tail));
                    }
                }
            }
        }
        breakers.sort();
        breakers.dedup();
        // No window is longer than the context (the setting may be any number: 2^40 aborted).
        let n = params.dry_penalty_last_n.min(max_context);
        Dry {
            breakers,
            repeat_count: Vec::with_capacity(n),
            max_repeat: vec![0; vocab],
            touched: Vec::with_capacity(n.min(vocab)),
        }
    }

    fn breakers_of(&self, head: u32) -> &[(u32, Vec<u32>)] {
        let b = &self.breakers;
        let from = b.partition_point(|(h, _)| *h < head);
        let to = from + b[from..].partition_point(|(h, _)| *h == head);
        &b[from..to]
    }

    /// Port of llama.cpp's `llama_sampler_dry_apply` (from koboldcpp), on the window's tokens.
    fn apply(&mut self, p: &SamplingParams, logits: &mut [f32], recent: &[u32]) {
        let n = recent.len().min(p.dry_penalty_last_n);
        let allowed = p.dry_allowed_length;
        if n <= allowed {
            return;
        }
        let w = &recent[recent.len() - n..];
        // The i-th token from the end.
        let rat = |i: usize| w[n - 1 - i];

        // Step 1: the nearest sequence breaker limits the length of a repeat.
        let mut rep_limit = n;
        for i in 0..n {
            let longest = self
                .breakers_of(rat(i))
                .iter()
                .filter(|(_, tail)| {
                    tail.len() <= i && tail.iter().enumerate().all(|(o, &t)| t == rat(i - o - 1))
                })
                .map(|(_, tail)| tail.len())
                .max();
            if let Some(longest) = longest {
                rep_limit = i - longest;
                break;
            }
        }
        if rep_limit < allowed {
            return;
        }

        // Step 2: the Z-algorithm, backwards: repeat_count[n - 1 - k] is the length of the
        // longest common suffix of the window and the window without its last k tokens.
        self.repeat_count.clear();
        self.repeat_count.resize(n, 0);
        let rc = &mut self.repeat_count;
        let last = n - 1;
        let (mut lt, mut rt) = (0usize, 0usize);
        for k in 1..n {
            if k > rt {
                let mut m = 0;
                while m + k < n && rat(m) == rat(m + k) {
                    m += 1;
                }
                rc[last - k] = m.min(rep_limit);
                if m > 0 {
                    lt = k;
                    rt = k + m - 1;
                }
            } else {
                let pair = k - lt;
                let right_part_len = rt - k + 1;
                if rc[last - pair] < right_part_len {
                    rc[last - k] = rc[last - pair].min(rep_limit);
                } else {
                    let mut i = rt + 1;
                    while i < n && rat(i) == rat(i - k) {
                        i += 1;
                    }
                    rc[last - k] = (i - k).min(rep_limit);
                    lt = k;
                    rt = i - 1;
                }
            }
        }

        // Step 3: the token after each repeat would extend it.
        for i in 0..n - 1 {
            let len = rc[i];
            if len >= allowed {
                let t = w[i + 1];
                if let Some(m) = self.max_repeat.get_mut(t as usize) {
                    if *m == 0 {
                        self.touched.push(t);
                    }
                    *m = (*m).max(len);
                }
            }
        }

        // Step 4: penalise them, but not tokens that are sequence breakers by themselves.
        // The exponent is clamped so that base^exponent stays a finite f32.
        let max_exponent = if p.dry_base > 1.000_001 {
            (88.722_84 / p.dry_base.ln()) as usize
        } else {
            0
        };
        for &t in &self.touched {
            let len = std::mem::take(&mut self.max_repeat[t as usize]);
            let single_breaker = self.breakers_of(t).iter().any(|(_, tail)| tail.is_empty());
            if single_breaker {
                continue;
            }
            let mut exponent = len - allowed;
            if max_exponent > 0 {
                exponent = exponent.min(max_exponent);
            }
            if let Some(l) = logits.get_mut(t as usize) {
                *l -= p.dry_multiplier * p.dry_base.powi(exponent as i32);
            }
        }
        self.touched.clear();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
    #[test]
    fn check_names_the_first_setting_out_of_range() {
        let bad = |p: SamplingParams| p.check().unwrap_err().to_string();
        let d = SamplingParams::default;
        assert_eq!(d().check(), Ok(()));
        assert_eq!(SamplingParams::greedy().check(), Ok(()));
        let t = bad(SamplingParams {
            temperature: "1e39".parse().unwrap(),
            ..d()
        });
        assert_eq!(
            t,
            "temperature inf: not a finite number; must be a finite number >= 0 (0: greedy)"
        );
        let t = bad(SamplingParams {
            temperature: -0.5,
            ..d()
        });
        assert_eq!(t, "temperature -0.5: must be a finite number >= 0 (0: greedy)");
        for top_p in [0.0, -1.0, 1.5, f32::NAN] {
            assert!(
                bad(SamplingParams { top_p, ..d() }).starts_with("top_p "),
                "{top_p}"
            );
        }
        assert!(SamplingParams { top_p: 1.0, ..d() }.check().is_ok());
        let cases = [
            ("min_p", SamplingParams { min_p: 1.5, ..d() }),
            (
                "repeat_penalty",
                SamplingParams {
                    repeat_penalty: 0.0,
                    ..d()
                },
            ),
            (
                "presence_penalty",
                SamplingParams {
                    presence_penalty: f32::INFINITY,
                    ..d()
                },
            ),
            (
                "frequency_penalty",
                SamplingParams {
                    frequency_penalty: f32::NAN,
                    ..d()
                },
            ),
            (
                "dry_multiplier",
                SamplingParams {
                    dry_multiplier: -1.0,
                    ..d()
                },
            ),
            ("dry_base", SamplingParams { dry_base: 0.5, ..d() }),
        ];
        for (name, p) in cases {
            assert_eq!(p.check().unwrap_err().name, name);
        }
    }

    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, -1.0, 2.9]
    }

    /// The texts of a small test vocabulary: token `i` is `VOCAB[i]`.
    const VOCAB: [&str; 10] = ["\n", "a", "b", "c", "d", "e", "f", "g", "x:", "h"];

    const MAX_CONTEXT: usize = 64;

    fn sampler(params: SamplingParams) -> Sampler {
        Sampler::build(
            params,
            VOCAB.len(),
            MAX_CONTEXT,
            |id| VOCAB.get(id as usize).map(|t| t.as_bytes()),
            |text| {
                text.iter()
                    .map(|&b| VOCAB.iter().position(|t| t.as_bytes() == [b]).unwrap() as u32)
                    .collect()
            },
        )
    }

    /// The logits after the penalties and DRY, starting from zeros.
    fn penalised(params: SamplingParams, history: &[u32]) -> Vec<f32> {
        let mut l = vec![0.0; VOCAB.len()];
        sampler(params).sample(&mut l, history);
        l
    }

    fn dry(breakers: &[&str]) -> SamplingParams {
        SamplingParams {
            dry_multiplier: 0.8,
            dry_base: 1.75,
            dry_allowed_length: 2,
            dry_penalty_last_n: 64,
            dry_sequence_breakers: breakers.iter().map(|b| b.to_string()).collect(),
            ..SamplingParams::greedy()
        }
    }

    #[test]
    fn dry_penalty_is_multiplier_times_base_to_the_excess_length() {
        // a b c d | e b c f | h a b c g | h a b c: the history ends with "h a b c".
        let history = [1, 2, 3, 4, 5, 2, 3, 6, 9, 1, 2, 3, 7, 9, 1, 2, 3];
        let l = penalised(dry(&[]), &history);
        let mut want = vec![0.0f32; VOCAB.len()];
        want[4] = -0.8 * 1.75f32.powi(3 - 2); // d follows "a b c": 3 tokens repeated
        want[6] = -0.8; // f follows "b c": 2 tokens, the allowed length, base^0
        want[7] = -0.8 * 1.75f32.powi(4 - 2); // g follows "h a b c"
        assert_eq!(l, want);
        // Only shorter repeats than the allowed length: no penalty ("b", but "a b" != "c b").
        assert_eq!(penalised(dry(&[]), &[1, 2, 4, 3, 2]), vec![0.0; VOCAB.len()]);
        // Off when the window is 0 or the multiplier is.
        for p in [
            SamplingParams {
                dry_penalty_last_n: 0,
                ..dry(&[])
            },
            SamplingParams {
                dry_multiplier: 0.0,
                ..dry(&[])
            },
        ] {
            assert_eq!(penalised(p, &history), vec![0.0; VOCAB.len()]);
        }
        // The window: in the last 7 tokens, "b c g h a b c", g extends only "b c".
        let l = penalised(
            SamplingParams {
                dry_penalty_last_n: 7,
                ..dry(&[])
            },
            &history,
        );
        let mut want = vec![0.0f32; VOCAB.len()];
        want[7] = -0.8;
        assert_eq!(l, want);
    }

    #[test]
    fn dry_matches_llama_cpp_test_sampling() {
        // llama.cpp's tests/test-sampling.cpp `test_dry` cases: probabilities before and after
        // DRY, multiplier, base, allowed length, window, breakers ("c" is token 3).
        type Case<'a> = (
            &'a [f32],
            &'a [u32],
            &'a [f32],
            f32,
            f32,
            usize,
            usize,
            &'a [&'a str],
        );
        let cases: [Case; 5] = [
            (&[0.25; 4], &[0, 1], &[0.25; 4], 1.0, 1.1, 2, 4, &[]),
            (
                &[0.25; 4],
                &[0, 1, 2, 0, 1],
                &[0.296923, 0.296923, 0.109232, 0.296923],
                1.0,
                1.1,
                2,
                5,
                &[],
            ),
            (&[0.2; 5], &[0, 1, 3, 4, 0, 1], &[0.2; 5], 1.0, 1.1, 2, 6, &["c"]),
            (
                &[0.2; 5],
                &[0, 1, 2, 0, 1],
                &[0.241818, 0.241818, 0.032727, 0.241818, 0.241818],
                2.0,
                1.1,
                2,
                5,
                &[],
            ),
            (&[0.2; 5], &[0, 1, 2, 3, 4, 0, 1], &[0.2; 5], 1.0, 1.1, 4, 7, &[]),
        ];
        for (probs, history, want, multiplier, base, allowed, last_n, breakers) in cases {
            let mut logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
            sampler(SamplingParams {
                dry_multiplier: multiplier,
                dry_base: base,
                dry_allowed_length: allowed,
                dry_penalty_last_n: last_n,
                ..dry(breakers)
            })
            .sample(&mut logits, history);
            let sum: f32 = logits.iter().map(|l| l.exp()).sum();
            for (l, w) in logits.iter().zip(want) {
                assert!((l.exp() / sum - w).abs() < 1e-5, "{history:?}: {logits:?}");
            }
        }
    }

    #[test]
    fn dry_sequence_breakers_stop_matches() {
        // "a \n c d a \n c": without breakers, d extends "a \n c".
        let history = [1, 0, 3, 4, 1, 0, 3];
        assert_eq!(penalised(dry(&[]), &history)[4], -0.8 * 1.75);
        // A newline ends the repeat: "c" alone is shorter than the allowed length.
        assert_eq!(penalised(dry(&["\n"]), &history), vec![0.0; VOCAB.len()]);
        // A breaker inside a token ("x:" contains ":") breaks as well.
        let history = [1, 8, 3, 4, 1, 8, 3];
        assert_eq!(penalised(dry(&["\n"]), &history)[4], -0.8 * 1.75);
        assert_eq!(penalised(dry(&[":"]), &history), vec![0.0; VOCAB.len()]);
        // A breaker of several tokens matches them in order: "ab" ends the repeat of
        // "c a b" after "a b", "ba" never occurs.
        let history = [3, 1, 2, 4, 3, 1, 2];
        assert_eq!(penalised(dry(&["ba"]), &history)[4], -0.8 * 1.75);
        assert_eq!(penalised(dry(&["ab"]), &history), vec![0.0; VOCAB.len()]);
        // A token that is a breaker by itself is never penalised: "x:" would extend "a b".
        let history = [1, 2, 8, 9, 1, 2];
        assert_eq!(penalised(dry(&["\n"]), &history)[8], -0.8);
        assert_eq!(penalised(dry(&[":"]), &history)[8], 0.0);
    }

    /// Any window may be asked for (`--dry-penalty-last-n 999999999999` aborted on allocating
    /// it); one beyond the context is the whole context.
    #[test]
    fn a_dry_window_beyond_the_context_is_the_context() {
        let history = [3, 1, 2, 4, 3, 1, 2];
        for last_n in [MAX_CONTEXT + 1, 1 << 40, usize::MAX] {
            let p = SamplingParams {
                dry_penalty_last_n: last_n,
                ..dry(&["ba"])
            };
            assert_eq!(penalised(p, &history)[4], -0.8 * 1.75, "{last_n}");
        }
    }

    #[test]
    fn presence_and_frequency_penalties_count_the_window() {
        let p = SamplingParams {
            presence_penalty: 0.25,
            frequency_penalty: 0.5,
            repeat_last_n: 4,
            ..SamplingParams::greedy()
        };
        // The window is the last 4 tokens: b b c b (the first "c d" fall out of it).
        let l = penalised(p, &[3, 4, 2, 2, 3, 2]);
        let mut want = vec![0.0f32; VOCAB.len()];
        want[2] = -(3.0 * 0.5 + 0.25);
        want[3] = -(0.5 + 0.25);
        assert_eq!(l, want);
    }

    /// A matcher over `VOCAB` (token 0, the newline, doubles as end of turn).
    fn matcher(gbnf: &str) -> GrammarMatcher {
        use std::sync::Arc;
        let tokens = VOCAB
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, t)| (i as u32, t.as_bytes()));
        let table = crate::grammar::TokenTable::from_tokens(VOCAB.len(), tokens, vec![0]);
        let grammar = crate::grammar::Grammar::parse(gbnf).unwrap();
        GrammarMatcher::new(Arc::new(grammar), Arc::new(table))
    }

    #[test]
    fn a_grammar_masks_before_sampling_and_ends_with_end_of_turn() {
        let mut s = sampler(SamplingParams {
            repeat_penalty: 1.5,
            ..SamplingParams::greedy()
        });
        s.set_grammar(Some(matcher(r#"root ::= [a-e]* "x:""#)));
        // b (3.0) is the best; then x: is all that may end the text, then only end of turn.
        let mut l = logits();
        assert_eq!(s.sample(&mut l, &[]), 1);
        assert!(l[5..].iter().all(|&x| x == f32::NEG_INFINITY) && l[0] == f32::NEG_INFINITY);
        let mut l = vec![0.0; VOCAB.len()];
        l[8] = 1.0;
        assert_eq!(s.sample(&mut l, &[]), 8);
        assert!(s.grammar().unwrap().is_complete());
        assert_eq!(s.sample(&mut vec![0.0; VOCAB.len()], &[]), 0);
        // A grammar no token can follow: end of turn, no panic.
        let mut s = sampler(SamplingParams::default());
        s.set_grammar(Some(matcher(r#"root ::= "z""#)));
        assert_eq!(s.sample(&mut logits(), &[]), 0);
    }

    #[test]
    fn greedy_takes_the_largest_and_penalties_apply() {
        let mut s = sampler(SamplingParams::greedy());
        assert_eq!(s.sample(&mut logits(), &[]), 1);
        let mut s = sampler(SamplingParams {
            repeat_penalty: 1.5,
            ..SamplingParams::greedy()
        });
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
            let mut s = sampler(SamplingParams {
                seed,
                ..params.clone()
            });
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
        let mut s = sampler(SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            ..Default::default()
        });
        // p_i / p_max >= 0.5 keeps logits within ln 2 of the max: tokens 1 and 4.
        assert!((0..100).all(|_| matches!(s.sample(&mut logits(), &[]), 1 | 4)));
        let mut s = sampler(SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.3,
            min_p: 0.0,
            ..Default::default()
        });
        assert!(
            (0..100).all(|_| s.sample(&mut logits(), &[]) == 1),
            "token 1 alone holds 30%+ of the mass"
        );
    }
}
