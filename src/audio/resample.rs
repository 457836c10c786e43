//! Sample-rate conversion with rubato's FFT resampler (synchronous, windowed-sinc quality, the
//! resampler's delay trimmed so output sample `i` lines up with input time `i / to`).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

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
    for rate in [from, to] {
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(AudioError::Rate(rate));
        }
    }
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let failed = |message: String| AudioError::Resample { from, to, message };
    // The FFT would overflow to inf/NaN, which rubato's inverse transform panics on (found by
    // the wav fuzz target with a float WAV of 1e38-size samples).
    if let Some(i) = samples.iter().position(|s| s.is_nan() || s.abs() > MAX_MAGNITUDE) {
        return Err(failed(format!(
            "sample {i} is {}, beyond ±{MAX_MAGNITUDE:e}",
            samples[i]
        )));
    }
    // FFT blocks of an even number of the rates' smallest blocks: with an odd input block the
    // output comes out shifted by half an input sample (0.016 error on a 440 Hz tone at 44.1 kHz).
    let g = gcd(from, to) as usize;
    let block = (from as usize / g) * CHUNK.div_ceil(from as usize / g).next_multiple_of(2);
    let mut resampler = Fft::<f32>::new_custom(
        from as usize,
        to as usize,
        block,
        1,
        1,
        WindowFunction::BlackmanHarris2,
        FixedSync::Input,
    )
    .map_err(|e| failed(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| failed(e.to_string()))?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| failed(e.to_string()))?;
    Ok(output.take_data())
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
