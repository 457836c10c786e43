//! Bytes as a WAV file and as raw PCM: decoding never panics; accepted audio is non-empty and finite,
//! resamples to 16 kHz to the promised length and gives a finite log-mel spectrogram.
#![no_main]

use edgelm::audio::mel::{FASTER_WHISPER_PADDING, LogMel, frames};
use edgelm::audio::{RawFormat, read_raw, read_wav, resample};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(pcm) = read_wav(data) {
        assert!(!pcm.samples.is_empty() && pcm.rate > 0);
        assert!(
            pcm.samples.iter().all(|s| s.is_finite()),
            "non-finite sample accepted"
        );
        // Rates whose FFT blocks are long (no common factor with 16 kHz) are slow, not wrong: skip them.
        let block = pcm.rate / gcd(pcm.rate, 16_000);
        if block <= 4096
            && let Ok(samples) = resample(&pcm.samples, pcm.rate, 16_000)
        {
            let expect = (pcm.samples.len() as u64 * 16_000).div_ceil(u64::from(pcm.rate));
            assert_eq!(samples.len() as u64, expect);
            spectrogram(&samples);
        }
    }
    for format in [RawFormat::S16Le, RawFormat::F32Le] {
        if let Ok(pcm) = read_raw(data, format, 16_000) {
            assert_eq!(pcm.samples.len(), data.len() / format.bytes());
            spectrogram(&pcm.samples);
        }
    }
});

/// The mel of finite samples is finite, within Whisper's range (the floor is 2 below the top).
fn spectrogram(samples: &[f32]) {
    let samples = &samples[..samples.len().min(16_000)];
    if samples.iter().any(|s| !s.is_finite() || s.abs() > 1e6) {
        return; // floats from a file may be any finite value; squares of huge ones overflow f32
    }
    let mut out = Vec::new();
    let n = LogMel::new(80).compute(samples, FASTER_WHISPER_PADDING, &mut out);
    assert_eq!(n, frames(samples.len(), FASTER_WHISPER_PADDING));
    assert_eq!(out.len(), 80 * n);
    let top = out.iter().copied().fold(f32::MIN, f32::max);
    assert!(
        out.iter().all(|v| v.is_finite() && *v >= top - 2.0 - 1e-5),
        "mel out of range"
    );
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}
