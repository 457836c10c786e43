//! Perplexity scored the way llama.cpp's perplexity tool scores it: consecutive windows of
//! `ctx` tokens, the first token of each replaced by BOS when the model adds one, each
//! window scored on its second half, so the figures of the two compare directly.

use crate::session::{Session, SessionError};

/// The result of a perplexity run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Perplexity {
    /// exp(mean negative log-likelihood).
    pub ppl: f64,
    /// Standard error of `ppl` (llama.cpp's estimate).
    pub error: f64,
    /// Windows scored.
    pub chunks: usize,
    /// Tokens scored.
    pub scored: usize,
}

/// Scores `tokens` in windows of the session's context size (at most `max_chunks` of them),
/// calling `progress(chunk, running ppl)` after each window.
pub fn perplexity(
    session: &mut Session<'_>,
    tokens: &[u32],
    bos: Option<u32>,
    max_chunks: Option<usize>,
    mut progress: impl FnMut(usize, f64) + Send,
) -> Result<Perplexity, SessionError> {
    let ctx = session.context();
    if ctx < 3 {
        return Err(SessionError::Options(format!(
            "perplexity needs a context of at least 3 tokens (-c), not {ctx}: each window is scored on its second half"
        )));
    }
    if max_chunks == Some(0) {
        return Err(SessionError::Options(
            "perplexity needs at least one chunk".into(),
        ));
    }
    let chunks = (tokens.len() / ctx).min(max_chunks.unwrap_or(usize::MAX));
    if chunks == 0 {
        return Err(SessionError::Options(format!(
            "perplexity with a context of {ctx} needs at least {ctx} tokens, the text has {}",
            tokens.len()
        )));
    }
    let first = ctx / 2;
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut window = vec![0u32; ctx];
    session.run_in_pool(|s| {
        for c in 0..chunks {
            let targets = &tokens[c * ctx..(c + 1) * ctx];
            window.copy_from_slice(targets);
            if let Some(bos) = bos {
                window[0] = bos;
            }
            s.reset();
            s.feed_all(&window, |i, logits| {
                if i >= first && i + 1 < ctx {
                    let lp = log_softmax_at(logits, targets[i + 1] as usize);
                    nll -= lp;
                    nll2 += lp * lp;
                    count += 1;
                }
            })?;
            progress(c + 1, (nll / count as f64).exp());
        }
        Ok::<(), SessionError>(())
    })?;
    let mean = nll / count as f64;
    let var = nll2 / count as f64 - mean * mean;
    let ppl = mean.exp();
    let error = if var > 0.0 && count > 1 {
        ppl * (var / (count as f64 - 1.0)).sqrt()
    } else {
        0.0
    };
    Ok(Perplexity {
        ppl,
        error,
        chunks,
        scored: count,
    })
}

/// `log softmax(logits)[target]`, in f64 like llama.cpp.
fn log_softmax_at(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    f64::from(logits[target] - max) - sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_of_uniform_logits() {
        let l = [2.0f32; 4];
        assert!((log_softmax_at(&l, 1) + 4f64.ln()).abs() < 1e-12);
        let l = [0.0, 1000.0];
        assert!(log_softmax_at(&l, 1).abs() < 1e-12, "stable for large logits");
    }
}
