//! A live audio stream as capture tools write it: raw PCM, or a WAV stream (`arecord`, `sox -t
//! wav -`, `ffmpeg -f wav -` to a pipe) whose header says the format and whose sizes are
//! placeholders. Decoded as it arrives, mixed down to mono and resampled to 16 kHz chunk by
//! chunk, never buffered whole.
//!
//! ```text
//! bytes ─► "RIFF"? ─ yes ─► wav::scan_header (as the bytes come) ─► Format ┐
//!                  └ no ──► the raw format given ──────────────────► Format ┴► RawReader (mono)
//!          ─► clip to ±1 ─► StreamResampler (to 16 kHz) ─► samples
//! ```

use std::io::{ErrorKind, Read};

use super::raw::RawReader;
use super::resample::{MAX_RATE, MIN_RATE, StreamResampler};
use super::wav::{Format, HeaderScan, scan_header};
use super::{AudioError, WHISPER_RATE};

/// A WAV header longer than this (chunks before `data`) is refused rather than buffered.
pub const MAX_HEADER: usize = 1 << 20;

/// Bytes read at a time while looking for the end of a header.
const HEADER_READ: usize = 4096;

/// 16 kHz mono samples from a raw or WAV stream.
pub struct AudioStream<R> {
    raw: RawReader<R>,
    /// Whether a WAV header gave the format.
    wav: bool,
    resampler: StreamResampler,
    /// Samples at the input rate, before resampling.
    decoded: Vec<f32>,
    ended: bool,
}

impl<R: Read> AudioStream<R> {
    /// Opens `reader`: a WAV header at its start gives the format, otherwise the stream is raw
    /// PCM in the `raw` format. Reads up to `chunk` frames at a time. Reads the header, so it
    /// blocks until the stream's first bytes come.
    pub fn open(mut reader: R, raw: Format, chunk: usize) -> Result<Self, AudioError> {
        let mut head = Vec::new();
        fill(&mut reader, &mut head, 4)?;
        let riff = [b"RIFF", b"RIFX", b"RF64", b"BW64"]
            .iter()
            .any(|m| head.starts_with(*m));
        let (format, start, len) = if riff {
            loop {
                match scan_header(&head)? {
                    HeaderScan::Done(h) => break (h.format, h.data_start, h.data_len.map(u64::from)),
                    HeaderScan::Short(missing) if head.len() >= MAX_HEADER => {
                        return Err(AudioError::Invalid(format!(
                            "no samples within the first {MAX_HEADER} bytes of the stream ({missing})"
                        )));
                    }
                    HeaderScan::Short(missing) => {
                        let want = head.len() + 1;
                        if !fill(&mut reader, &mut head, want)? {
                            return Err(AudioError::Truncated(format!(
                                "the stream ends inside its header: {missing}"
                            )));
                        }
                    }
                }
            }
        } else {
            (raw, 0, None)
        };
        if !(MIN_RATE..=MAX_RATE).contains(&format.rate) {
            return Err(AudioError::Rate(format.rate));
        }
        Ok(AudioStream {
            raw: RawReader::after(reader, format, chunk, &head[start..], len),
            wav: riff,
            resampler: StreamResampler::new(format.rate, WHISPER_RATE)?,
            decoded: Vec::new(),
            ended: false,
        })
    }

    /// The stream's own format (before mixing down and resampling).
    pub fn format(&self) -> Format {
        self.raw.format()
    }

    /// Whether the format came from a WAV header.
    pub fn is_wav(&self) -> bool {
        self.wav
    }

    /// Appends the next 16 kHz mono samples to `out` (values beyond ±1 clipped) and returns how
    /// many; 0 means the stream ended.
    pub fn read_into(&mut self, out: &mut Vec<f32>) -> Result<usize, AudioError> {
        let before = out.len();
        while out.len() == before && !self.ended {
            self.decoded.clear();
            if self.raw.read_into(&mut self.decoded)? == 0 {
                self.ended = true;
                self.resampler.finish(out)?;
            } else {
                for s in &mut self.decoded {
                    *s = s.clamp(-1.0, 1.0);
                }
                self.resampler.push(&self.decoded, out)?;
            }
        }
        Ok(out.len() - before)
    }
}

/// Reads into `bytes` (up to [`HEADER_READ`] bytes at a time) until it holds `want` bytes; false
/// when the stream ended first.
fn fill(reader: &mut impl Read, bytes: &mut Vec<u8>, want: usize) -> Result<bool, AudioError> {
    while bytes.len() < want {
        let have = bytes.len();
        bytes.resize(have + HEADER_READ, 0);
        match reader.read(&mut bytes[have..]) {
            Ok(n) => bytes.truncate(have + n),
            Err(e) if e.kind() == ErrorKind::Interrupted => bytes.truncate(have),
            Err(cause) => {
                bytes.truncate(have);
                return Err(AudioError::Io {
                    what: "the audio stream".into(),
                    cause,
                });
            }
        }
        if bytes.len() == have {
            return Ok(false);
        }
    }
    Ok(true)
}
