//! Headerless PCM, as `arecord -t raw` or `sox -t raw` write it: the caller names the sample format,
//! the channels and the rate. [`RawReader`] decodes a stream piece by piece (a frame split across
//! two reads is carried over), also the samples after a WAV stream's header; [`read_raw`] reads
//! mono PCM whole.

use std::io::{ErrorKind, Read};

use super::wav::{Encoding, Format};
use super::{AudioError, Pcm};

/// Sample format of headerless mono PCM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawFormat {
    /// Signed 16-bit little-endian (`arecord -f S16_LE`).
    S16Le,
    /// IEEE float 32-bit little-endian (`arecord -f FLOAT_LE`).
    F32Le,
}

impl RawFormat {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        self.encoding().bytes()
    }

    /// The sample encoding.
    pub fn encoding(self) -> Encoding {
        match self {
            RawFormat::S16Le => Encoding::Int { bytes: 2 },
            RawFormat::F32Le => Encoding::Float { bytes: 4 },
        }
    }

    /// The format by its usual names: `s16le`/`s16_le`, `f32le`/`float_le` (any case).
    pub fn parse(name: &str) -> Option<RawFormat> {
        match name.to_ascii_lowercase().replace('_', "").as_str() {
            "s16le" | "s16" => Some(RawFormat::S16Le),
            "f32le" | "f32" | "floatle" => Some(RawFormat::F32Le),
            _ => None,
        }
    }
}

/// Decodes a stream of PCM frames into mono floats (channels averaged, as [`read_wav`] does),
/// keeping the bytes of a partial frame between reads.
///
/// [`read_wav`]: super::read_wav
pub struct RawReader<R> {
    reader: R,
    format: Format,
    bytes: Vec<u8>,
    /// Bytes at the start of `bytes` not decoded yet (read ahead, or less than one frame
    /// carried over from the previous read).
    carried: usize,
    /// Bytes still to read, when the input says how many it holds (a WAV `data` size).
    left: Option<u64>,
    /// Samples decoded so far (interleaved, before mixing down), to name a bad one by its index.
    decoded: usize,
}

impl<R: Read> RawReader<R> {
    /// Reads up to `chunk` frames at a time from `reader`.
    pub fn new(reader: R, format: Format, chunk: usize) -> Self {
        Self::after(reader, format, chunk, &[], None)
    }

    /// As [`RawReader::new`], for the samples that follow a header: `ahead` are the bytes read
    /// past it already, `len` how many bytes of samples there are in all (`None`: to the end).
    pub fn after(reader: R, format: Format, chunk: usize, ahead: &[u8], len: Option<u64>) -> Self {
        let ahead = &ahead[..len.map_or(ahead.len(), |n| ahead.len().min(n as usize))];
        let mut bytes = vec![0; (chunk.max(1) * format.frame_bytes()).max(ahead.len())];
        bytes[..ahead.len()].copy_from_slice(ahead);
        RawReader {
            reader,
            format,
            bytes,
            carried: ahead.len(),
            left: len.map(|n| n - ahead.len() as u64),
            decoded: 0,
        }
    }

    /// The layout of the samples.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Appends the mono samples of one read (at most `chunk`, or what was read ahead) to `out`
    /// and returns how many; 0 means the stream ended (a trailing partial frame is dropped).
    pub fn read_into(&mut self, out: &mut Vec<f32>) -> Result<usize, AudioError> {
        let width = self.format.frame_bytes();
        loop {
            let room = self.bytes.len() - self.carried;
            let want = self.left.map_or(room, |left| room.min(left as usize));
            let n = if self.carried >= width || want == 0 {
                0
            } else {
                match self
                    .reader
                    .read(&mut self.bytes[self.carried..self.carried + want])
                {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(cause) => {
                        return Err(AudioError::Io {
                            what: "raw audio input".into(),
                            cause,
                        });
                    }
                }
            };
            if let Some(left) = &mut self.left {
                *left -= n as u64;
            }
            let filled = self.carried + n;
            let whole = filled / width * width;
            if whole == 0 && n == 0 {
                return Ok(0);
            }
            let before = out.len();
            for frame in self.bytes[..whole].chunks_exact(width) {
                let first = self.decoded + (out.len() - before) * usize::from(self.format.channels);
                out.push(self.format.mix(frame, first)?);
            }
            self.bytes.copy_within(whole..filled, 0);
            self.carried = filled - whole;
            let count = out.len() - before;
            self.decoded += count * usize::from(self.format.channels);
            if count > 0 {
                return Ok(count);
            }
        }
    }
}

/// Reads raw mono PCM to the end.
pub fn read_raw(reader: impl Read, format: RawFormat, rate: u32) -> Result<Pcm, AudioError> {
    if rate == 0 {
        return Err(AudioError::Rate(rate));
    }
    let format = Format {
        encoding: format.encoding(),
        channels: 1,
        rate,
    };
    let mut raw = RawReader::new(reader, format, 1 << 16);
    let mut samples = Vec::new();
    while raw.read_into(&mut samples)? > 0 {}
    if samples.is_empty() {
        return Err(AudioError::Empty(" (no complete sample in the raw input)"));
    }
    Ok(Pcm { samples, rate })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Hands out its bytes `step` at a time, splitting samples.
    pub(crate) struct Trickle<'a> {
        pub bytes: &'a [u8],
        pub step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn decodes_across_split_reads() {
        let bytes: Vec<u8> = [16384i16, -32768, 8192]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .chain([7])
            .collect();
        for step in 1..5 {
            let pcm = read_raw(Trickle { bytes: &bytes, step }, RawFormat::S16Le, 16000).unwrap();
            assert_eq!(pcm.samples, [0.5, -1.0, 0.25], "step {step}");
        }
        let floats: Vec<u8> = [0.125f32, -0.5].iter().flat_map(|s| s.to_le_bytes()).collect();
        let mono = Format {
            encoding: RawFormat::F32Le.encoding(),
            channels: 1,
            rate: 16000,
        };
        let mut reader = RawReader::new(
            Trickle {
                bytes: &floats,
                step: 3,
            },
            mono,
            1,
        );
        let mut out = Vec::new();
        assert_eq!(reader.read_into(&mut out).unwrap(), 1);
        assert_eq!(reader.read_into(&mut out).unwrap(), 1);
        assert_eq!(reader.read_into(&mut out).unwrap(), 0);
        assert_eq!(out, [0.125, -0.5]);
    }

    #[test]
    fn bad_raw_input_is_an_error() {
        let e = read_raw([1u8].as_slice(), RawFormat::S16Le, 16000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no complete sample"), "{e}");
        let nan: Vec<u8> = [0.0f32, 0.0, f32::INFINITY]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let e = read_raw(nan.as_slice(), RawFormat::F32Le, 16000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sample 2 is inf"), "{e}");
        assert!(read_raw([0u8, 0].as_slice(), RawFormat::S16Le, 0).is_err());
        assert_eq!(RawFormat::parse("S16_LE"), Some(RawFormat::S16Le));
        assert_eq!(RawFormat::parse("FLOAT_LE"), Some(RawFormat::F32Le));
        assert_eq!(RawFormat::parse("mp3"), None);
    }
}
