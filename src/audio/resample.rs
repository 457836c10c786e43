//! Sample-rate conversion with rubato's FFT resampler (synchronous, windowed-sinc quality, the
//! resampler's delay trimmed so output sample `i` lines up with input time `i / to`).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

use super::AudioError;

/// Lowest rate accepted (telephone audio is 8 kHz).
pub const MIN_RATE: u32 = 1_000;
/// Highest rate accepted (professional recorders stop at 768 kHz).
pub const MAX_RATE: u32 = 768_000;

/// Largest sample magnitude resampled (audio is nominally within ±1).
const MAX_MAGNITUDE: f32 = 1e20;

/// Input samples per resampler chunk, at least.
const CHUNK: usize = 1024;

/// Converts mono `samples` from `from` Hz to `to` Hz; `ceil(len * to / from)` samples come out.
/// Equal rates return the samples unchanged.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    check_rates(from, to)?;
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    check_samples(samples, 0, from, to)?;
    let (mut resampler, _) = fft(from, to)?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| failure(from, to, e))?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| failure(from, to, e))?;
    Ok(output.take_data())
}

/// [`resample`] for a stream that arrives in pieces: the same resampler fed the same blocks, so
/// the output is the same whatever the pieces (up to one FFT block of input is held back).
pub struct StreamResampler {
    from: u32,
    to: u32,
    /// `None` when the rates are equal.
    fft: Option<Fft<f32>>,
    /// Input frames per FFT block.
    block: usize,
    /// Input not yet resampled (at most one block after each push).
    input: Vec<f32>,
    /// One block's output.
    output: Vec<f32>,
    /// Output frames still to drop: the resampler's delay.
    delay: usize,
    /// Input frames pushed, and output frames handed out.
    pushed: u64,
    emitted: u64,
}

impl StreamResampler {
    /// Converts from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, AudioError> {
        check_rates(from, to)?;
        let (fft, block, delay) = if from == to {
            (None, 0, 0)
        } else {
            let (fft, block) = fft(from, to)?;
            let delay = fft.output_delay();
            (Some(fft), block, delay)
        };
        let output = vec![0.0; fft.as_ref().map_or(0, |f| f.output_frames_max())];
        Ok(StreamResampler {
            from,
            to,
            fft,
            block,
            input: Vec::new(),
            output,
            delay,
            pushed: 0,
            emitted: 0,
        })
    }

    /// Resamples `samples`, appending to `out` what is ready.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        if self.fft.is_none() {
            out.extend_from_slice(samples);
            return Ok(());
        }
        check_samples(samples, self.pushed, self.from, self.to)?;
        self.pushed += samples.len() as u64;
        self.input.extend_from_slice(samples);
        // As `process_all` does: a full block only while more than a block is waiting, so
        // that the last (possibly full) block goes through `finish` in either case.
        let mut done = 0;
        while self.input.len() - done > self.block {
            self.process(done, None, out)?;
            done += self.block;
        }
        self.input.drain(..done);
        Ok(())
    }

    /// Resamples what is held back and ends the stream: `ceil(pushed * to / from)` samples
    /// have come out in all.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let Some(fft) = &self.fft else {
            return Ok(());
        };
        let expected = (fft.resample_ratio() * self.pushed as f64).ceil() as u64;
        let start = out.len();
        if !self.input.is_empty() {
            self.process(0, Some(self.input.len()), out)?;
            self.input.clear();
        }
        // The resampler's delay still holds output: pump silence through.
        while self.emitted < expected {
            self.process(0, Some(0), out)?;
        }
        let extra = (self.emitted - expected) as usize;
        out.truncate(out.len() - extra.min(out.len() - start));
        self.emitted = expected;
        Ok(())
    }

    /// One block from `input[at..]` (`partial`: the valid frames of a short one).
    fn process(&mut self, at: usize, partial: Option<usize>, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let (from, to) = (self.from, self.to);
        let fft = self.fft.as_mut().expect("only called when resampling");
        let frames = if partial.is_some() {
            self.input.len() - at
        } else {
            self.block
        };
        let input = InterleavedSlice::new(&self.input[at..], 1, frames).map_err(|e| failure(from, to, e))?;
        let len = self.output.len();
        let mut output =
            InterleavedSlice::new_mut(&mut self.output, 1, len).map_err(|e| failure(from, to, e))?;
        let indexing = Indexing {
            partial_len: partial,
            ..Indexing::default()
        };
        let (_, produced) = fft
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| failure(from, to, e))?;
        let skip = self.delay.min(produced);
        self.delay -= skip;
        out.extend_from_slice(&self.output[skip..produced]);
        self.emitted += (produced - skip) as u64;
        Ok(())
    }
}

fn check_rates(from: u32, to: u32) -> Result<(), AudioError> {
    for rate in [from, to] {
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(AudioError::Rate(rate));
        }
    }
    Ok(())
}

/// The FFT would overflow to inf/NaN, which rubato's inverse transform panics on (found by the
/// wav fuzz target with a float WAV of 1e38-size samples). `first` is the index of `samples[0]`.
fn check_samples(samples: &[f32], first: u64, from: u32, to: u32) -> Result<(), AudioError> {
    match samples.iter().position(|s| s.is_nan() || s.abs() > MAX_MAGNITUDE) {
        Some(i) => Err(failure(
            from,
            to,
            format!(
                "sample {} is {}, beyond ±{MAX_MAGNITUDE:e}",
                first + i as u64,
                samples[i]
            ),
        )),
        None => Ok(()),
    }
}

/// The resampler for `from` → `to` Hz and its input block.
fn fft(from: u32, to: u32) -> Result<(Fft<f32>, usize), AudioError> {
    // FFT blocks of an even number of the rates' smallest blocks: with an odd input block the
    // output comes out shifted by half an input sample (0.016 error on a 440 Hz tone at 44.1 kHz).
    let g = gcd(from, to) as usize;
    let block = (from as usize / g) * CHUNK.div_ceil(from as usize / g).next_multiple_of(2);
    let fft = Fft::<f32>::new_custom(
        from as usize,
        to as usize,
        block,
        1,
        1,
        WindowFunction::BlackmanHarris2,
        FixedSync::Input,
    )
    .map_err(|e| failure(from, to, e))?;
    Ok((fft, block))
}

/// The resampler refused `from` → `to` Hz input, for the reason `message`.
fn failure(from: u32, to: u32, message: impl std::fmt::Display) -> AudioError {
    AudioError::Resample {
        from,
        to,
        message: message.to_string(),
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    fn tone(hz: f64, rate: u32, seconds: f64) -> Vec<f32> {
        let n = (seconds * f64::from(rate)) as usize;
        (0..n)
            .map(|i| (0.5 * (TAU * hz * i as f64 / f64::from(rate)).sin()) as f32)
            .collect()
    }

    /// Largest difference from the same tone generated at the output rate, away from the edges.
    fn tone_error(hz: f64, from: u32, to: u32) -> f32 {
        let out = resample(&tone(hz, from, 0.5), from, to).unwrap();
        let expect = tone(hz, to, 0.5);
        assert_eq!(out.len(), expect.len().max((0.5 * f64::from(to)).ceil() as usize));
        let edge = to as usize / 50;
        out[edge..out.len() - edge]
            .iter()
            .zip(&expect[edge..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn tones_keep_their_shape_and_timing() {
        // Error budget: a 0.5-amplitude tone well inside the pass band, compared sample by sample
        // away from the edges (a shift of half an input sample at 44.1 kHz is an error of 0.016).
        for (from, to) in [
            (44_100, 16_000),
            (48_000, 16_000),
            (8_000, 16_000),
            (22_050, 16_000),
            (16_000, 44_100),
        ] {
            let e = tone_error(440.0, from, to);
            assert!(e < 1e-4, "{from} -> {to}: max error {e}");
        }
    }

    #[test]
    fn frequencies_above_the_new_nyquist_are_removed() {
        let out = resample(&tone(12_000.0, 48_000, 0.5), 48_000, 16_000).unwrap();
        let peak = out[800..out.len() - 800]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak < 5e-3, "a 12 kHz tone leaks through at {peak}");
    }

    /// Pieces of `samples` of the given sizes in turn (the last piece whatever is left).
    fn streamed(samples: &[f32], from: u32, to: u32, sizes: &[usize]) -> Vec<f32> {
        let mut resampler = StreamResampler::new(from, to).unwrap();
        let (mut out, mut at) = (Vec::new(), 0);
        for &size in sizes.iter().cycle() {
            if at == samples.len() {
                break;
            }
            let end = (at + size).min(samples.len());
            resampler.push(&samples[at..end], &mut out).unwrap();
            at = end;
        }
        resampler.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn streaming_equals_the_one_shot_resampler_whatever_the_pieces() {
        // Bound: none. The stream feeds the same FFT blocks to the same resampler and trims the
        // same delay, so the output is bit-identical, in length and in value.
        let mut state = 5u64;
        let mut noise = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8
                })
                .collect()
        };
        for (from, len) in [
            (44_100, 44_100),
            (48_000, 30_001),
            (8_000, 5_000),
            (22_050, 1_764),
            (44_101, 3_000),
            (44_100, 1),
            (16_000, 999),
        ] {
            let samples = noise(len);
            let whole = resample(&samples, from, 16_000).unwrap();
            for sizes in [
                &[len][..],
                &[1],
                &[7, 1000, 1],
                &[1764],
                &[1765, 1763],
                &[4096, 13],
            ] {
                let out = streamed(&samples, from, 16_000, sizes);
                assert!(out == whole, "{from} Hz, {len} samples in pieces of {sizes:?}");
            }
        }
        // Nothing pushed: nothing out.
        assert!(streamed(&[], 44_100, 16_000, &[1]).is_empty());
        let mut bad = StreamResampler::new(44_100, 16_000).unwrap();
        let e = bad
            .push(&[0.0; 10], &mut Vec::new())
            .and_then(|()| bad.push(&[0.0, f32::NAN], &mut Vec::new()));
        assert!(e.unwrap_err().to_string().contains("sample 11 is NaN"));
        assert!(StreamResampler::new(0, 16_000).is_err());
    }

    #[test]
    fn identity_empty_and_bad_rates() {
        let x = [0.1f32, -0.2, 0.3];
        assert_eq!(resample(&x, 16_000, 16_000).unwrap(), x);
        assert!(resample(&[], 44_100, 16_000).unwrap().is_empty());
        let e = resample(&x, 0, 16_000).unwrap_err().to_string();
        assert!(e.contains("sample rate 0 Hz"), "{e}");
        assert!(resample(&x, 16_000, 4_000_000).is_err());
        let e = resample(&[0.0, 3e38], 22_050, 16_000).unwrap_err().to_string();
        assert!(e.contains("sample 1 is"), "{e}");
        assert!(resample(&[f32::NAN], 22_050, 16_000).is_err());
        // Rates with no common factor: long FFT blocks, still short clips work.
        assert_eq!(resample(&x, 44_101, 16_000).unwrap().len(), 2);
    }
}
