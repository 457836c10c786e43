//! Whisper's log-mel spectrogram, computed as faster-whisper's `FeatureExtractor` (and OpenAI
//! Whisper's `log_mel_spectrogram`) do: a 400-point periodic Hann window every 160 samples, the
//! signal reflected by 200 samples at each end (`center=True`), power spectrum, Slaney mel filter
//! bank, `log10(max(x, 1e-10))`, clamped to 8 below the maximum, then `(x + 4) / 4`. The last STFT
//! frame is dropped, as both references do.
//!
//! Padding: OpenAI Whisper appends 30 s of zeros ([`WHISPER_PADDING`]) before the transform;
//! faster-whisper appends one hop ([`FASTER_WHISPER_PADDING`]) and pads each 3000-frame window
//! of the result with zeros ([`window_frames`]). The clamp is relative to the maximum over the
//! whole spectrogram, so the padding changes values near silence.

use std::ops::Range;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::{AudioError, WHISPER_RATE};

/// FFT length (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// Samples between frames (10 ms at 16 kHz).
pub const HOP: usize = 160;
/// Frames in one 30 s window of the encoder.
pub const WINDOW_FRAMES: usize = 3000;
/// Zeros OpenAI Whisper appends before the transform (30 s).
pub const WHISPER_PADDING: usize = WINDOW_FRAMES * HOP;
/// Zeros faster-whisper appends before the transform (one hop).
pub const FASTER_WHISPER_PADDING: usize = HOP;

/// The Slaney-style mel filter bank of librosa (`htk=False`, `norm="slaney"`) from 0 Hz to
/// `sample_rate / 2`, row-major `[n_mels][n_fft / 2 + 1]`: triangles on the Slaney mel scale
/// (linear below 1 kHz, logarithmic above), each scaled to unit area. Computed in f64 as numpy
/// does, rounded to f32.
pub fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    // Slaney's scale: 3 mels per 200 Hz up to 1 kHz, then 27 mels per factor 6.4.
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    let hz_to_mel = |hz: f64| {
        if hz >= min_log_hz {
            min_log_mel + (hz / min_log_hz).ln() / logstep
        } else {
            hz / f_sp
        }
    };
    let mel_to_hz = |mel: f64| {
        if mel >= min_log_mel {
            min_log_hz * (logstep * (mel - min_log_mel)).exp()
        } else {
            f_sp * mel
        }
    };

    // n_mels + 2 points evenly spaced in mels (numpy.linspace), as frequencies.
    let max_mel = hz_to_mel(f64::from(sample_rate) / 2.0);
    let points = n_mels + 2;
    let step = max_mel / (points - 1) as f64;
    let freqs: Vec<f64> = (0..points)
        .map(|i| mel_to_hz(if i + 1 == points { max_mel } else { i as f64 * step }))
        .collect();
    let bin_hz = 1.0 / (n_fft as f64 * (1.0 / f64::from(sample_rate)));

    let mut weights = vec![0.0f32; n_mels * bins];
    for (m, row) in weights.chunks_exact_mut(bins).enumerate() {
        let (lo, mid, hi) = (freqs[m], freqs[m + 1], freqs[m + 2]);
        let norm = 2.0 / (hi - lo);
        for (k, w) in row.iter_mut().enumerate() {
            let f = k as f64 * bin_hz;
            let rising = (f - lo) / (mid - lo);
            let falling = (hi - f) / (hi - mid);
            *w = (rising.min(falling).max(0.0) * norm) as f32;
        }
    }
    weights
}

/// Frames of the spectrogram of `samples` samples with `padding` zeros appended.
pub fn frames(samples: usize, padding: usize) -> usize {
    (samples + padding) / HOP
}

/// One 30 s encoder window of a spectrogram `[n_mels][frames]`: the frames of `range` (at most
/// 3000, clamped to the spectrogram), zeros after them (faster-whisper's `pad_or_trim`), into
/// `out` (`[n_mels][3000]`, resized). faster-whisper's windows stop at `frames - 1`, the content
/// frames: `seek..frames - 1`.
pub fn window_frames(mel: &[f32], n_mels: usize, range: Range<usize>, out: &mut Vec<f32>) {
    let frames = mel.len() / n_mels.max(1);
    out.clear();
    out.resize(n_mels * WINDOW_FRAMES, 0.0);
    let end = range
        .end
        .min(frames)
        .min(range.start.saturating_add(WINDOW_FRAMES));
    let start = range.start.min(end);
    for (src, dst) in mel
        .chunks_exact(frames.max(1))
        .zip(out.chunks_exact_mut(WINDOW_FRAMES))
    {
        dst[..end - start].copy_from_slice(&src[start..end]);
    }
}

/// Computes log-mel spectrograms at 16 kHz. Holds the filter bank, the window, the planned FFT
/// and every buffer, so that repeated calls allocate nothing beyond growing the output.
pub struct LogMel {
    n_mels: usize,
    filters: Vec<f32>,
    /// Per mel band, the range of FFT bins where its filter is not zero.
    spans: Vec<(usize, usize)>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel")
            .field("n_mels", &self.n_mels)
            .finish_non_exhaustive()
    }
}

impl LogMel {
    /// The spectrogram with Whisper's filter bank of `n_mels` bands (80, or 128 for large-v3).
    pub fn new(n_mels: usize) -> LogMel {
        Self::with_filters(mel_filters(WHISPER_RATE, N_FFT, n_mels), n_mels)
            .unwrap_or_else(|_| unreachable!("mel_filters returns n_mels x (N_FFT/2 + 1) values"))
    }

    /// The spectrogram with a given filter bank `[n_mels][N_FFT / 2 + 1]` (the one a model file
    /// carries).
    pub fn with_filters(filters: Vec<f32>, n_mels: usize) -> Result<LogMel, AudioError> {
        let bins = N_FFT / 2 + 1;
        if n_mels == 0 || filters.len() != n_mels * bins {
            return Err(AudioError::Filters {
                got: filters.len(),
                n_mels,
                bins,
            });
        }
        let spans = filters
            .chunks_exact(bins)
            .map(|row| match row.iter().position(|&w| w != 0.0) {
                Some(first) => (
                    first,
                    bins - row.iter().rev().position(|&w| w != 0.0).unwrap_or(0),
                ),
                None => (0, 0),
            })
            .collect();
        // numpy.hanning(N_FFT + 1)[:-1]: the periodic window.
        let window = (0..N_FFT)
            .map(|i| (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / N_FFT as f64).cos()) as f32)
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        Ok(LogMel {
            n_mels,
            spans,
            window,
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            power: vec![0.0; bins],
            fft,
            filters,
        })
    }

    /// Mel bands.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The log-mel spectrogram of `samples` (16 kHz) followed by `padding` zeros, into `out` as
    /// `[n_mels][frames]` (resized); returns `frames`, which is `(samples + padding) / 160`.
    pub fn compute(&mut self, samples: &[f32], padding: usize, out: &mut Vec<f32>) -> usize {
        let len = samples.len() + padding;
        let n = frames(samples.len(), padding);
        out.clear();
        out.resize(self.n_mels * n, 0.0);
        let at = |i: usize| samples.get(i).copied().unwrap_or(0.0);
        let half = (N_FFT / 2) as isize;
        let mut max = f32::NEG_INFINITY;
        for t in 0..n {
            let start = (t * HOP) as isize - half;
            let inside = start >= 0 && start as usize + N_FFT <= len;
            for (i, (x, w)) in self.frame.iter_mut().zip(&self.window).enumerate() {
                let j = start + i as isize;
                let v = if inside {
                    at(j as usize)
                } else {
                    at(reflect(j, len))
                };
                *x = v * w;
            }
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .unwrap_or_else(|_| unreachable!("buffers made by the plan"));
            for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            for (m, &(lo, hi)) in self.spans.iter().enumerate() {
                let row = &self.filters[m * self.power.len()..][lo..hi];
                let energy: f32 = row.iter().zip(&self.power[lo..hi]).map(|(w, p)| w * p).sum();
                let v = energy.max(1e-10).log10();
                max = max.max(v);
                out[m * n + t] = v;
            }
        }
        let floor = max - 8.0;
        for v in out.iter_mut() {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        n
    }
}

/// numpy's `reflect` padding: index `j` of the padded signal as an index into `0..len` (the
/// edge sample not repeated; repeated reflections for signals shorter than the pad).
fn reflect(j: isize, len: usize) -> usize {
    if len <= 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let j = j.rem_euclid(period);
    (if j < len as isize { j } else { period - j }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // numpy.pad(np.arange(4), 6, mode="reflect")
        let padded: Vec<usize> = (-6..10).map(|j| reflect(j, 4)).collect();
        assert_eq!(padded, [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3]);
        assert_eq!(reflect(-3, 1), 0);
    }

    #[test]
    fn filters_are_unit_area_triangles_covering_the_band() {
        for n_mels in [80, 128] {
            let f = mel_filters(16_000, N_FFT, n_mels);
            assert_eq!(f.len(), n_mels * 201);
            for row in f.chunks_exact(201) {
                let peak = row
                    .iter()
                    .position(|&w| w == row.iter().fold(0.0f32, |m, &w| m.max(w)))
                    .unwrap();
                assert!(
                    row[..peak].windows(2).all(|w| w[0] <= w[1])
                        && row[peak..].windows(2).all(|w| w[0] >= w[1])
                );
            }
            // Every bin between the first band's peak and 8 kHz feeds some band.
            let covered = (3..200).all(|k| f.chunks_exact(201).any(|row| row[k] > 0.0));
            assert!(covered, "{n_mels} bands");
        }
    }

    #[test]
    fn a_tone_lights_the_band_of_its_frequency() {
        let mut mel = LogMel::new(80);
        let tone: Vec<f32> = (0..16_000)
            .map(|i| 0.3 * (std::f32::consts::TAU * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let mut out = Vec::new();
        let n = mel.compute(&tone, FASTER_WHISPER_PADDING, &mut out);
        assert_eq!(n, 101);
        let t = 50;
        let column: Vec<f32> = (0..80).map(|m| out[m * n + t]).collect();
        let best = column
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |b, (m, &v)| if v > b.1 { (m, v) } else { b })
            .0;
        // 1 kHz is mel 15 of 45.25, so band 15 / 45.25 * 81 - 1 ≈ 26.
        assert!((25..=27).contains(&best), "peak band {best}");
        assert!(out.iter().all(|v| v.is_finite() && *v <= column[best] + 1e-6));
        // The floor: 8 below the peak in log10, (x + 4) / 4.
        let low = out.iter().fold(f32::MAX, |m, &v| m.min(v));
        assert!((column[best] - low - 2.0).abs() < 1e-5, "{} {low}", column[best]);
    }

    #[test]
    fn silence_and_short_inputs() {
        let mut mel = LogMel::new(80);
        let mut out = vec![1.0; 5];
        assert_eq!(mel.compute(&[], 0, &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(mel.compute(&[0.5], FASTER_WHISPER_PADDING, &mut out), 1);
        assert_eq!(mel.compute(&[0.0; 320], 0, &mut out), 2);
        // All zeros: log10(1e-10) = -10 everywhere, (-10 + 4) / 4.
        assert!(out.iter().all(|&v| v == -1.5));
        assert!(
            LogMel::with_filters(vec![0.0; 10], 80)
                .unwrap_err()
                .to_string()
                .contains("80 x 201")
        );
    }

    #[test]
    fn windows_are_zero_padded() {
        let mel: Vec<f32> = (0..2 * 5).map(|i| i as f32 + 1.0).collect(); // 2 bands x 5 frames
        let mut out = Vec::new();
        window_frames(&mel, 2, 2..4, &mut out);
        assert_eq!(out.len(), 2 * WINDOW_FRAMES);
        assert_eq!(&out[..3], [3.0, 4.0, 0.0]);
        assert_eq!(&out[WINDOW_FRAMES..WINDOW_FRAMES + 3], [8.0, 9.0, 0.0]);
        window_frames(&mel, 2, 3..99, &mut out);
        assert_eq!(&out[..3], [4.0, 5.0, 0.0]);
        window_frames(&mel, 2, 7..9, &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
    }
}
