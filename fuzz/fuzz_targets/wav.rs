//! Bytes as a WAV file and as raw PCM: decoding never panics; accepted audio is non-empty and finite,
//! resamples to 16 kHz to the promised length and gives a finite log-mel spectrogram. The same
//! bytes as a live stream (`AudioStream`: WAV header detected, or raw stereo 44.1 kHz), handed
//! out in uneven reads: never a panic, finite samples, and a WAV file the file path
//! accepts gives the file path's samples, resampled to 16 kHz, bit for bit.
#![no_main]

use edgelm::audio::mel::{FASTER_WHISPER_PADDING, LogMel, frames};
use std::io::Read;

use edgelm::audio::{AudioStream, Format, RawFormat, read_raw, read_wav, resample};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let streamed = stream(data);
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
            // The stream clips to ±1 before resampling; within ±1 it is the file path exactly.
            if let Some(Ok(streamed)) = &streamed
                && pcm.samples.iter().all(|s| s.abs() <= 1.0)
            {
                assert!(*streamed == samples, "the stream and the file differ");
            }
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

/// The bytes as a stream, read in pieces of 1 to 64 bytes (sizes from the data itself); `None`
/// for rates whose resampler blocks are too long to fuzz quickly.
fn stream(data: &[u8]) -> Option<Result<Vec<f32>, edgelm::audio::AudioError>> {
    let raw = Format {
        encoding: RawFormat::S16Le.encoding(),
        channels: 2,
        rate: 44_100,
    };
    let reads = Uneven { data, at: 0 };
    let mut stream = match AudioStream::open(reads, raw, 256) {
        Ok(stream) => stream,
        Err(e) => return Some(Err(e)),
    };
    let rate = stream.format().rate;
    if rate / gcd(rate, 16_000) > 4096 {
        return None;
    }
    let mut out = Vec::new();
    loop {
        match stream.read_into(&mut out) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Some(Err(e)),
        }
    }
    // Clipped to ±1 before resampling: finite whatever the input.
    assert!(out.iter().all(|s| s.is_finite()), "non-finite stream sample");
    Some(Ok(out))
}

/// Hands out `data` in reads of 1 to 64 bytes.
struct Uneven<'a> {
    data: &'a [u8],
    at: usize,
}

impl Read for Uneven<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let step = 1 + usize::from(self.data.get(self.at).copied().unwrap_or(0) % 64);
        let n = step.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

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
