//! Audio in, for speech recognition: WAV and raw PCM decoding, resampling to 16 kHz, Whisper's
//! log-mel spectrogram and an energy gate that finds utterances in a stream.
//!
//! ```text
//! bytes ──► wav::read_wav / raw::read_raw ──► Pcm (mono f32, any rate)
//!             ──► resample::resample (to 16 kHz) ──► mel::LogMel ──► [n_mels][frames] for the encoder
//! stream ──► stream::AudioStream (WAV header or raw; raw::RawReader, resample::StreamResampler)
//!             ──► vad::Vad (utterance boundaries: silence costs no encoder pass)
//! ```
//!
//! `load_audio` is the whole path from a file name (or `-` for stdin) to 16 kHz samples.

pub mod mel;
pub mod raw;
pub mod resample;
pub mod stream;
pub mod vad;
pub mod wav;

use std::io::Read;
use std::path::Path;

pub use mel::{LogMel, mel_filters};
pub use raw::{RawFormat, RawReader, read_raw};
pub use resample::{StreamResampler, resample};
pub use stream::AudioStream;
pub use vad::{Vad, VadConfig, VadEvent};
pub use wav::{Encoding, Format, read_wav};

/// The sample rate Whisper's front end works at.
pub const WHISPER_RATE: u32 = 16_000;

/// Mono audio: samples nominally in [-1, 1] (floats from a file are kept as they are), `rate` in Hz.
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm {
    /// One sample per frame, the channels of the source averaged.
    pub samples: Vec<f32>,
    /// Samples per second.
    pub rate: u32,
}

impl Pcm {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate.max(1))
    }
}

/// Why audio could not be read or processed. The message names the problem and, where there is
/// one, the offending value.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// An error in the named input (a path, or `stdin`). The message holds the cause whole, so
    /// it is not also given as the error's source (a chain printer would repeat it).
    #[error("{what}: {cause}")]
    In {
        /// The path, or `stdin`.
        what: String,
        /// What is wrong with it.
        cause: Box<AudioError>,
    },
    /// Reading the input failed.
    #[error("{what}: {cause}")]
    Io {
        /// The path, or `stdin`.
        what: String,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// Not a RIFF/WAVE file.
    #[error("not a WAV file: {0} (raw PCM has no header: give its format, e.g. s16le at 16000 Hz)")]
    NotWav(String),
    /// A compressed or other container format (FLAC, MP3, Ogg, ...), named by its magic bytes.
    #[error("{0} audio, not WAV: convert it first, e.g. `ffmpeg -i IN -ar 16000 -ac 1 OUT.wav`")]
    Container(&'static str),
    /// The header ends before a field it must hold.
    #[error("truncated WAV file: {0}")]
    Truncated(String),
    /// A WAV encoding edgelm does not decode (compressed codecs, odd sample widths).
    #[error("unsupported WAV encoding: {0} (convert it to 16-bit PCM, e.g. `sox IN -b 16 OUT.wav`)")]
    Unsupported(String),
    /// A header field with a value no real file has.
    #[error("invalid WAV header: {0}")]
    Invalid(String),
    /// No samples at all.
    #[error("the audio holds no samples{0}")]
    Empty(&'static str),
    /// A float sample that is NaN, infinite, or too large for f32.
    #[error("sample {index} is {value} (not a finite number within f32's range)")]
    NotFinite {
        /// Index of the first such sample (interleaved, before mixing down).
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A sample rate outside what the resampler accepts.
    #[error("sample rate {0} Hz is outside {min}..={max} Hz", min = resample::MIN_RATE, max = resample::MAX_RATE)]
    Rate(u32),
    /// The resampler refused the input.
    #[error("resampling {from} Hz to {to} Hz failed: {message}")]
    Resample {
        /// Source rate.
        from: u32,
        /// Target rate.
        to: u32,
        /// The resampler's message.
        message: String,
    },
    /// A mel filter bank whose size does not match the spectrogram's.
    #[error("mel filter bank has {got} values, expected {n_mels} x {bins} = {}", n_mels * bins)]
    Filters {
        /// Values given.
        got: usize,
        /// Mel bands.
        n_mels: usize,
        /// FFT bins (n_fft / 2 + 1).
        bins: usize,
    },
}

/// Reads a WAV file (`path`, or stdin when `path` is `-`) and returns its samples at 16 kHz mono,
/// the way `edgelm transcribe` loads audio. Raw PCM has no header to tell its format: read it
/// with [`read_raw`].
pub fn load_audio(path: &Path) -> Result<Vec<f32>, AudioError> {
    let (bytes, what) = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|cause| AudioError::Io {
                what: "stdin".into(),
                cause,
            })?;
        (bytes, "stdin".to_string())
    } else {
        let what = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|cause| AudioError::Io {
            what: what.clone(),
            cause,
        })?;
        (bytes, what)
    };
    let named = |e| AudioError::In {
        what: what.clone(),
        cause: Box::new(e),
    };
    let pcm = read_wav(&bytes).map_err(named)?;
    resample(&pcm.samples, pcm.rate, WHISPER_RATE).map_err(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_audio_resamples_and_names_the_file_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        // 0.1 s of a 300 Hz tone at 8 kHz, 16-bit stereo (both channels equal).
        let frames: Vec<i16> = (0..800)
            .map(|i| (8000.0 * (std::f32::consts::TAU * 300.0 * i as f32 / 8000.0).sin()) as i16)
            .collect();
        let data: Vec<u8> = frames
            .iter()
            .flat_map(|s| [s.to_le_bytes(), s.to_le_bytes()].concat())
            .collect();
        let mut bytes =
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x02\0\x40\x1f\0\0\0\x7d\0\0\x04\0\x10\0data".to_vec();
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&data);
        std::fs::write(&path, &bytes).unwrap();
        let samples = load_audio(&path).unwrap();
        assert_eq!(samples.len(), 1600);
        let peak = samples[400..1200].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - 8000.0 / 32768.0).abs() < 2e-3, "peak {peak}");

        // Printed with its chain (as the command does), each error says its cause once.
        let chain = |e: AudioError| {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            text
        };
        bytes[24..28].copy_from_slice(&1u32.to_le_bytes()); // the header's sample rate
        std::fs::write(&path, &bytes).unwrap();
        let e = chain(load_audio(&path).unwrap_err());
        assert!(e.contains("tone.wav") && e.contains("sample rate 1 Hz"), "{e}");
        std::fs::write(&path, b"not audio at all").unwrap();
        let e = chain(load_audio(&path).unwrap_err());
        assert!(
            e.contains("tone.wav") && e.matches("not a WAV").count() == 1,
            "{e}"
        );
        let e = chain(load_audio(&dir.path().join("missing.wav")).unwrap_err());
        assert!(
            e.contains("missing.wav") && e.matches("No such file").count() == 1,
            "{e}"
        );
    }
}
