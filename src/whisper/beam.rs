//! Choosing a window's tokens as CTranslate2 does for faster-whisper: beam search (temperature
//! 0; beam size 1 is greedy decoding) and sampling of several candidates (temperature above 0),
//! each hypothesis a decoder sequence with its own self-attention cache.
//!
//! CTranslate2's beam search: every step ranks `2 × beam` candidates (hypothesis, next token)
//! by cumulative log-probability; of the first `beam`, one that ends (end of text, or the last
//! step) is set aside as finished and its place goes to the next candidate that does not end;
//! the search stops once `round(beam × patience)` hypotheses have finished; the winner has the
//! best cumulative log-probability divided by `length ^ length_penalty` (length without the end
//! of text). The first step expands the prompt's one sequence. Sampling decodes its candidates
//! independently (each a sequence, finished at end of text), and the same score picks one.
//!
//! [`Decoder`] holds every buffer; a step allocates nothing.

use super::{Whisper, WhisperError};
use crate::sampling::Sampler;

/// How one attempt picks its tokens.
pub enum Strategy<'s> {
    /// Beam search (`size` 1: greedy decoding).
    Beam {
        /// Hypotheses kept.
        size: usize,
        /// Finished hypotheses to wait for, as a multiple of `size`.
        patience: f32,
    },
    /// Independent samples from `sampler` (its temperature), `candidates` of them.
    Sample {
        /// Candidates decoded side by side.
        candidates: usize,
        /// The random choice of each token.
        sampler: &'s mut Sampler,
    },
}

impl Strategy<'_> {
    /// Decoder sequences it needs.
    pub fn sequences(&self) -> usize {
        match self {
            Strategy::Beam { size, .. } => *size,
            Strategy::Sample { candidates, .. } => *candidates,
        }
    }
}

/// A finished hypothesis.
#[derive(Clone, Debug, Default)]
pub struct Hypothesis {
    /// Its tokens (the end of text excluded).
    pub tokens: Vec<u32>,
    /// Sum of the log-probabilities of its tokens, the end of text's included.
    pub logprob: f32,
}

impl Hypothesis {
    /// CTranslate2's ranking score: `logprob / length ^ length_penalty`.
    pub fn score(&self, length_penalty: f32) -> f32 {
        self.logprob / (self.tokens.len() as f32).powf(length_penalty)
    }
}

/// The live hypotheses of a search and the finished ones (buffers reused from step to step).
#[derive(Debug)]
pub struct Search {
    /// Tokens of each live hypothesis (only the first `live` are in use).
    rows: Vec<Vec<u32>>,
    /// The next step's rows while they are built.
    next_rows: Vec<Vec<u32>>,
    /// Cumulative log-probability of each live hypothesis.
    scores: Vec<f32>,
    next_scores: Vec<f32>,
    live: usize,
    /// Per live hypothesis: the previous step's row it continues.
    parents: Vec<usize>,
    /// Per live hypothesis: its last token (the decoder's next input).
    feed: Vec<u32>,
    /// This step's best (score, row, token), best first.
    candidates: Vec<(f32, usize, u32)>,
    /// Finished hypotheses (only the first `done` are in use).
    finished: Vec<Hypothesis>,
    done: usize,
    eot: u32,
}

impl Search {
    /// A search over up to `sequences` hypotheses of up to `max_tokens` tokens each, ending at
    /// the token `eot`.
    pub fn new(sequences: usize, max_tokens: usize, eot: u32) -> Search {
        let rows = || (0..sequences).map(|_| Vec::with_capacity(max_tokens)).collect();
        Search {
            rows: rows(),
            next_rows: rows(),
            scores: vec![0.0; sequences],
            next_scores: vec![0.0; sequences],
            live: 0,
            parents: Vec::with_capacity(sequences),
            feed: Vec::with_capacity(sequences),
            candidates: Vec::with_capacity(2 * sequences),
            // A beam step finishes at most `size` hypotheses, and the search goes on while
            // fewer than `size × patience` have; patience above 1 grows this on first use.
            finished: (0..2 * sequences)
                .map(|_| Hypothesis {
                    tokens: Vec::with_capacity(max_tokens),
                    logprob: 0.0,
                })
                .collect(),
            done: 0,
            eot,
        }
    }

    /// Starts over from one sequence (the prompt's).
    pub fn reset(&mut self) {
        self.rows[0].clear();
        self.scores[0] = 0.0;
        self.live = 1;
        self.done = 0;
    }

    /// Live hypotheses.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Per live hypothesis, the row of the previous step it continues.
    pub fn parents(&self) -> &[usize] {
        &self.parents
    }

    /// Per live hypothesis, its last token.
    pub fn feed(&self) -> &[u32] {
        &self.feed
    }

    /// The hypotheses finished so far.
    pub fn finished(&self) -> &[Hypothesis] {
        &self.finished[..self.done]
    }

    /// The best finished hypothesis by [`Hypothesis::score`] (the first of equals).
    pub fn best(&self, length_penalty: f32) -> Option<&Hypothesis> {
        self.finished()
            .iter()
            .fold(None, |best: Option<&Hypothesis>, h| match best {
                Some(b) if b.score(length_penalty) >= h.score(length_penalty) => Some(b),
                _ => Some(h),
            })
    }

    fn finish(&mut self, row: usize, token: u32, logprob: f32) {
        if self.done == self.finished.len() {
            let cap = self.rows[0].capacity();
            self.finished.push(Hypothesis {
                tokens: Vec::with_capacity(cap),
                logprob: 0.0,
            });
        }
        let h = &mut self.finished[self.done];
        h.tokens.clear();
        h.tokens.extend_from_slice(&self.rows[row]);
        if token != self.eot {
            h.tokens.push(token);
        }
        h.logprob = logprob;
        self.done += 1;
    }

    fn push_next(&mut self, row: usize, token: u32, score: f32) {
        let i = self.parents.len();
        let next = &mut self.next_rows[i];
        next.clear();
        next.extend_from_slice(&self.rows[row]);
        next.push(token);
        self.next_scores[i] = score;
        self.parents.push(row);
        self.feed.push(token);
    }

    /// One step: `logits` holds a row of `vocab` values per live hypothesis; `rules(tokens,
    /// row)` masks each row for that hypothesis's tokens so far. `last` says this is the last
    /// step allowed (every hypothesis ends). Returns whether the search is over.
    pub fn step(
        &mut self,
        strategy: &mut Strategy<'_>,
        logits: &mut [f32],
        vocab: usize,
        last: bool,
        mut rules: impl FnMut(&[u32], &mut [f32]),
    ) -> bool {
        self.parents.clear();
        self.feed.clear();
        let over = match strategy {
            Strategy::Beam { size, patience } => {
                let want = (*size as f32 * *patience).round() as usize;
                self.beam_step(*size, want, logits, vocab, last, &mut rules)
            }
            Strategy::Sample { candidates, sampler } => {
                self.sample_step(*candidates, sampler, logits, vocab, last, &mut rules)
            }
        };
        std::mem::swap(&mut self.rows, &mut self.next_rows);
        std::mem::swap(&mut self.scores, &mut self.next_scores);
        self.live = self.parents.len();
        over || self.live == 0
    }

    fn beam_step(
        &mut self,
        size: usize,
        want: usize,
        logits: &mut [f32],
        vocab: usize,
        last: bool,
        rules: &mut impl FnMut(&[u32], &mut [f32]),
    ) -> bool {
        let keep = 2 * size;
        self.candidates.clear();
        for (row, l) in logits.chunks_exact_mut(vocab).take(self.live).enumerate() {
            rules(&self.rows[row], l);
            let lse = log_sum_exp(l);
            for (token, &v) in l.iter().enumerate() {
                if v == f32::NEG_INFINITY {
                    continue;
                }
                let score = (v - lse) + self.scores[row];
                let c = &mut self.candidates;
                if c.len() == keep && c[keep - 1].0 >= score {
                    continue;
                }
                let at = c.partition_point(|x| x.0 >= score);
                if c.len() == keep {
                    c.pop();
                }
                c.insert(at, (score, row, token as u32));
            }
        }
        let mut spare = size;
        for k in 0..size.min(self.candidates.len()) {
            let (score, row, token) = self.candidates[k];
            let mut next = Some(k);
            if token == self.eot || last {
                self.finish(row, token, score);
                // Its place goes to the best candidate beyond the beam that does not end
                // (CTranslate2 keeps the finished one alive when there is none; it can only
                // rescore an ended text, so it is dropped here).
                next = (spare..self.candidates.len()).find(|&j| self.candidates[j].2 != self.eot);
                spare = next.map_or(self.candidates.len(), |j| j + 1);
            }
            if let Some(j) = next
                && !last
            {
                let (score, row, token) = self.candidates[j];
                self.push_next(row, token, score);
            }
        }
        last || self.done >= want.max(1)
    }

    fn sample_step(
        &mut self,
        candidates: usize,
        sampler: &mut Sampler,
        logits: &mut [f32],
        vocab: usize,
        last: bool,
        rules: &mut impl FnMut(&[u32], &mut [f32]),
    ) -> bool {
        // The first step draws every candidate from the prompt's one row.
        let draws = if self.rows[0].is_empty() && self.live == 1 {
            candidates
        } else {
            1
        };
        for (row, l) in logits.chunks_exact_mut(vocab).take(self.live).enumerate() {
            rules(&self.rows[row], l);
            let lse = log_sum_exp(l);
            for _ in 0..draws {
                let token = sampler.sample(l, &self.rows[row]);
                let score = (l[token as usize] - lse) + self.scores[row];
                if token == self.eot || last {
                    self.finish(row, token, score);
                } else {
                    self.push_next(row, token, score);
                }
            }
        }
        last
    }
}

/// `log Σ exp(x)`.
pub fn log_sum_exp(x: &[f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + x.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
}

/// Which decoder sequence slot holds each live hypothesis's keys and values. When hypotheses
/// move on to the next step, a parent's slot goes to its first child and the other children
/// get copies in the slots of parents left without children: `slots − distinct parents`
/// copies, none overwriting a slot still to be read.
#[derive(Debug)]
pub struct Slots {
    of_row: Vec<usize>,
    next: Vec<usize>,
    claimed: Vec<bool>,
}

impl Slots {
    /// Bookkeeping for `sequences` slots.
    pub fn new(sequences: usize) -> Slots {
        Slots {
            of_row: Vec::with_capacity(sequences),
            next: Vec::with_capacity(sequences),
            claimed: vec![false; sequences],
        }
    }

    /// One hypothesis, in slot 0 (the prompt's).
    pub fn reset(&mut self) {
        self.of_row.clear();
        self.of_row.push(0);
    }

    /// The slot of each live hypothesis.
    pub fn rows(&self) -> &[usize] {
        &self.of_row
    }

    /// Moves on to hypotheses continuing `parents` (rows of the current ones); `copy(from,
    /// to)` must give slot `to` the keys and values of slot `from`.
    pub fn follow<E>(
        &mut self,
        parents: &[usize],
        mut copy: impl FnMut(usize, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        const NONE: usize = usize::MAX;
        self.claimed.fill(false);
        self.next.clear();
        for &p in parents {
            let slot = self.of_row[p];
            if self.claimed[slot] {
                self.next.push(NONE);
            } else {
                self.claimed[slot] = true;
                self.next.push(slot);
            }
        }
        let mut free = 0;
        for (i, &p) in parents.iter().enumerate() {
            if self.next[i] == NONE {
                while self.claimed[free] {
                    free += 1;
                }
                self.claimed[free] = true;
                copy(self.of_row[p], free)?;
                self.next[i] = free;
            }
        }
        std::mem::swap(&mut self.of_row, &mut self.next);
        Ok(())
    }
}

/// The buffers of a window's decoding attempts: the search, the slots, the prompt's logits.
#[derive(Debug)]
pub struct Decoder {
    /// The hypotheses.
    pub search: Search,
    slots: Slots,
    /// Logits after the prompt, kept for every attempt on the window.
    first: Vec<f32>,
    /// The first step's working copy of `first`.
    scratch: Vec<f32>,
}

impl Decoder {
    /// Buffers for `w`'s sequences and vocabulary.
    pub fn new(w: &Whisper<'_>, eot: u32) -> Decoder {
        let c = w.model().config();
        Decoder {
            search: Search::new(w.sequences(), c.max_context, eot),
            slots: Slots::new(w.sequences()),
            first: vec![0.0; c.vocab_size],
            scratch: vec![0.0; c.vocab_size],
        }
    }

    /// Keeps the logits after the prompt (slot 0's cache holds the prompt).
    pub fn set_prompt_logits(&mut self, logits: &[f32]) {
        self.first.copy_from_slice(logits);
    }

    /// One attempt from the prompt's `prompt_len` positions: at most `max_tokens` tokens per
    /// hypothesis, each row masked by `rules`. Returns the decoder steps run; the hypotheses
    /// are in [`Decoder::search`].
    pub fn run(
        &mut self,
        w: &mut Whisper<'_>,
        strategy: &mut Strategy<'_>,
        prompt_len: usize,
        max_tokens: usize,
        mut rules: impl FnMut(&[u32], &mut [f32]),
    ) -> Result<usize, WhisperError> {
        let want = strategy.sequences();
        if want == 0 || want > w.sequences() {
            return Err(WhisperError::Input(format!(
                "{want} hypotheses: the runner holds 1 to {} decoder sequences",
                w.sequences()
            )));
        }
        let vocab = self.first.len();
        self.search.reset();
        self.slots.reset();
        self.scratch.copy_from_slice(&self.first);
        let mut over = self
            .search
            .step(strategy, &mut self.scratch, vocab, max_tokens <= 1, &mut rules);
        let mut steps = 1;
        while !over {
            let pos = prompt_len + steps - 1;
            self.slots
                .follow(self.search.parents(), |from, to| w.copy_sequence(from, to, pos))?;
            let logits = w.decode_sequences(self.search.feed(), self.slots.rows(), pos)?;
            steps += 1;
            over = self
                .search
                .step(strategy, logits, vocab, steps >= max_tokens, &mut rules);
        }
        Ok(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EOT: u32 = 4;

    /// Runs a search over `table(tokens so far)` (probabilities of a 5-token vocabulary,
    /// token 4 the end) without a decoder.
    fn run(size: usize, table: impl Fn(&[u32]) -> [f32; 5]) -> Search {
        let mut s = Search::new(size, 16, EOT);
        let mut strategy = Strategy::Beam { size, patience: 1.0 };
        s.reset();
        let mut rows: Vec<Vec<u32>> = vec![vec![]];
        for step in 0..16 {
            let mut logits: Vec<f32> = rows.iter().flat_map(|r| table(r).map(f32::ln)).collect();
            if s.step(&mut strategy, &mut logits, 5, step == 15, |_, _| {}) {
                break;
            }
            rows = s
                .parents()
                .iter()
                .zip(s.feed())
                .map(|(&p, &t)| [rows[p].as_slice(), &[t]].concat())
                .collect();
        }
        s
    }

    /// Token 0 looks best first, but after it the next token is doubtful; after token 1,
    /// token 2 is sure. Each text then ends.
    fn doubtful(t: &[u32]) -> [f32; 5] {
        let mut p = [1e-6f32; 5];
        match t {
            [] => (p[0], p[1]) = (0.6, 0.4),
            [0] => (p[2], p[3]) = (0.55, 0.45),
            [1] => p[2] = 0.99,
            _ => p[EOT as usize] = 1.0,
        }
        p
    }

    #[test]
    fn beam_search_finds_what_greedy_misses() {
        let greedy = run(1, doubtful);
        let tokens: Vec<&[u32]> = greedy.finished().iter().map(|h| h.tokens.as_slice()).collect();
        assert_eq!(tokens, [&[0, 2][..]]);
        assert_eq!(greedy.best(1.0).unwrap().tokens, [0, 2]);
        let beam = run(2, doubtful);
        let tokens: Vec<&[u32]> = beam.finished().iter().map(|h| h.tokens.as_slice()).collect();
        assert_eq!(tokens, [&[1, 2][..], &[0, 2]]);
        let best = beam.best(1.0).unwrap();
        assert_eq!(best.tokens, [1, 2]);
        // log 0.4 + log 1 + log 1 (token 2 and the end after it, renormalized), over two
        // tokens.
        let want = 0.4f32.ln() / 2.0;
        assert!((best.score(1.0) - want).abs() < 1e-4, "{best:?}");
    }

    #[test]
    fn a_finished_beam_is_replaced_by_the_next_candidate_that_goes_on() {
        // Two beams: after the first step the best candidate of [0] is the end, so [0]'s
        // second best continuation (outside the top two) takes its place.
        let table = |t: &[u32]| -> [f32; 5] {
            let mut p = [1e-6f32; 5];
            match t {
                [] => (p[0], p[1]) = (0.7, 0.3),
                [0] => (p[EOT as usize], p[2], p[3]) = (0.5, 0.3, 0.2),
                [1] => (p[2], p[3]) = (0.1, 0.9),
                _ => p[EOT as usize] = 1.0,
            }
            p.map(f32::ln)
        };
        let mut s = Search::new(2, 16, EOT);
        let mut strategy = Strategy::Beam {
            size: 2,
            patience: 1.0,
        };
        s.reset();
        let mut logits = table(&[]).to_vec();
        assert!(!s.step(&mut strategy, &mut logits, 5, false, |_, _| {}));
        assert_eq!((s.parents(), s.feed()), (&[0, 0][..], &[0, 1][..]));
        let mut logits: Vec<f32> = [table(&[0]), table(&[1])].concat();
        assert!(!s.step(&mut strategy, &mut logits, 5, false, |_, _| {}));
        // Candidates: [0]+end 0.35, [1,3] 0.27, [0,2] 0.21, [0,3] 0.14: the end finishes and
        // [0,2] (third) takes its place, first; [1,3] stays second.
        assert_eq!(s.finished().len(), 1);
        assert_eq!(s.finished()[0].tokens, [0]);
        assert_eq!((s.parents(), s.feed()), (&[0, 1][..], &[2, 3][..]));
    }

    #[test]
    fn slots_follow_parents_with_the_fewest_copies() {
        let mut slots = Slots::new(4);
        slots.reset();
        let mut copies = Vec::new();
        slots
            .follow::<()>(&[0, 0, 0, 0], |a, b| {
                copies.push((a, b));
                Ok(())
            })
            .unwrap();
        assert_eq!(slots.rows(), [0, 1, 2, 3]);
        assert_eq!(copies, [(0, 1), (0, 2), (0, 3)]);
        copies.clear();
        // Rows 1 and 3 have no children: their slots take the copies of row 2's second
        // child and row 0's second child.
        slots
            .follow::<()>(&[2, 0, 2, 0], |a, b| {
                copies.push((a, b));
                Ok(())
            })
            .unwrap();
        assert_eq!(slots.rows(), [2, 0, 1, 3]);
        assert_eq!(copies, [(2, 1), (0, 3)]);
    }
}
