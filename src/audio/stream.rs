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
use super::wav::{Format, HeaderScan, container, scan_header};
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
        // Enough for every magic `container` knows.
        fill(&mut reader, &mut head, 12)?;
        if let Some(name) = container(&head) {
            return Err(AudioError::Container(name));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::raw::tests::Trickle;
    use crate::audio::wav::tests::{extensible, fmt, s16, wav};
    use crate::audio::wav::{IEEE_FLOAT, PCM};
    use crate::audio::{RawFormat, read_wav, resample};

    const MONO_S16: Format = Format {
        encoding: Encoding::Int { bytes: 2 },
        channels: 1,
        rate: 16_000,
    };

    /// Everything the stream gives, the input handed out `step` bytes at a time.
    fn stream(bytes: &[u8], raw: Format, step: usize) -> Result<(Vec<f32>, bool), AudioError> {
        let mut s = AudioStream::open(Trickle { bytes, step }, raw, 100)?;
        let mut out = Vec::new();
        while s.read_into(&mut out)? > 0 {}
        Ok((out, s.is_wav()))
    }

    /// As `arecord` writes to a pipe: RIFF and data sizes are placeholders.
    fn arecord(file: &[u8], data_size: u32) -> Vec<u8> {
        let mut bytes = file.to_vec();
        let at = bytes.windows(4).position(|w| w == b"data").unwrap();
        bytes[4..8].copy_from_slice(&data_size.wrapping_add(36).to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&data_size.to_le_bytes());
        bytes
    }

    /// A 440 Hz tone, `seconds` long, at `rate`.
    fn tone(rate: u32, seconds: f32) -> Vec<f32> {
        (0..(seconds * rate as f32) as usize)
            .map(|i| 0.4 * (std::f32::consts::TAU * 440.0 * i as f32 / rate as f32).sin())
            .collect()
    }

    fn quantized(samples: &[f32]) -> Vec<i16> {
        samples.iter().map(|s| (s * 32768.0).round() as i16).collect()
    }

    use crate::audio::Encoding;

    #[test]
    fn a_wav_header_with_placeholder_sizes_gives_the_format_whatever_the_reads() {
        let samples = quantized(&tone(16_000, 0.3));
        let file = wav(
            &fmt(PCM, 1, 16_000, 16),
            &[(b"LIST", b"INFOISFT\x04\0\0\0sox\0")],
            &s16(&samples),
        );
        let expect = read_wav(&file).unwrap().samples;
        // arecord (0x7fffff00), sox and espeak-ng (0x7ffff000), ffmpeg (0xffffffff); the raw
        // format given is ignored.
        let f32_raw = Format {
            encoding: RawFormat::F32Le.encoding(),
            channels: 2,
            rate: 8_000,
        };
        for size in [0x7fff_ff00, 0x7fff_f000, u32::MAX] {
            for step in [1, 3, 44, 4096] {
                let (out, is_wav) = stream(&arecord(&file, size), f32_raw, step).unwrap();
                assert!(is_wav);
                assert_eq!(out, expect, "data size {size:#x}, {step}-byte reads");
            }
        }
        // A real size ends the samples there: a chunk after them is not read as audio.
        let mut tail = file.clone();
        tail.extend_from_slice(b"LIST\x04\0\0\0abcd");
        assert_eq!(stream(&tail, MONO_S16, 5).unwrap().0, expect);
        // A data chunk before the format (rare in files, read from the header's bytes).
        let early = [&file[..12], b"data\x04\0\0\0\x00\x40\x00\xc0", &file[12..36]].concat();
        assert_eq!(stream(&early, MONO_S16, 7).unwrap().0, [0.5, -0.5]);
    }

    #[test]
    fn wav_streams_at_other_rates_and_layouts_match_the_file_path() {
        // 44.1 kHz stereo s16 (sox -r 44100 -c 2), 48 kHz float with the fmt extension and a fact
        // chunk (sox -e float), 24-bit WAVE_FORMAT_EXTENSIBLE: the stream gives what the file
        // path gives (decode whole, resample whole), bit for bit.
        let tone44: Vec<i16> = quantized(&tone(44_100, 0.5));
        let stereo: Vec<i16> = tone44.iter().flat_map(|&s| [s, s / 2]).collect();
        let floats: Vec<u8> = tone(48_000, 0.5).iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut fmt18 = fmt(IEEE_FLOAT, 1, 48_000, 32);
        fmt18.extend_from_slice(&[0, 0]);
        let s24: Vec<u8> = tone(22_050, 0.2)
            .iter()
            .flat_map(|s| (((s * 8_388_608.0) as i32) << 8).to_le_bytes())
            .collect();
        for file in [
            wav(&fmt(PCM, 2, 44_100, 16), &[], &s16(&stereo)),
            wav(&fmt18, &[(b"fact", &[0x80, 0x5d, 0, 0])], &floats),
            wav(&extensible(PCM, 1, 22_050, 32, 24), &[], &s24),
        ] {
            let pcm = read_wav(&file).unwrap();
            let expect = resample(&pcm.samples, pcm.rate, WHISPER_RATE).unwrap();
            for step in [13, 1000] {
                let (out, _) = stream(&arecord(&file, 0x7fff_f000), MONO_S16, step).unwrap();
                assert!(out == expect, "{} Hz, {step}-byte reads", pcm.rate);
            }
        }
    }

    #[test]
    fn raw_streams_take_the_layout_given() {
        let left = quantized(&tone(48_000, 0.25));
        let bytes = s16(&left.iter().flat_map(|&s| [s, 0]).collect::<Vec<_>>());
        let raw = Format {
            channels: 2,
            rate: 48_000,
            ..MONO_S16
        };
        let (out, is_wav) = stream(&bytes, raw, 333).unwrap();
        assert!(!is_wav);
        let mono: Vec<f32> = left.iter().map(|&s| f32::from(s) / 65_536.0).collect();
        assert!(out == resample(&mono, 48_000, WHISPER_RATE).unwrap());
        // 16 kHz mono goes through untouched; nothing at all is no samples.
        let (out, _) = stream(&s16(&[16384, -8192]), MONO_S16, 1).unwrap();
        assert_eq!(out, [0.5, -0.25]);
        assert!(stream(&[], MONO_S16, 1).unwrap().0.is_empty());
        // A compressed file piped in is named, not transcribed as raw PCM noise.
        let flac = b"fLaC\0\0\0\x22\x10\0\x10\0 frames";
        let e = stream(flac, MONO_S16, 3).unwrap_err().to_string();
        assert!(e.contains("FLAC audio"), "{e}");
    }

    #[test]
    fn floats_beyond_full_scale_are_clipped_and_nan_is_an_error() {
        let floats = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|s| s.to_le_bytes()).collect() };
        let file = wav(
            &fmt(IEEE_FLOAT, 1, 48_000, 32),
            &[],
            &floats(&[0.5, 3e38, -1e30, 0.0]),
        );
        let (out, _) = stream(&file, MONO_S16, 64).unwrap();
        assert!(out.iter().all(|s| s.abs() <= 1.1), "{out:?}");
        for bad in [f32::NAN, f32::INFINITY] {
            let file = wav(
                &fmt(IEEE_FLOAT, 2, 48_000, 32),
                &[],
                &floats(&[0.5, 0.0, 0.1, bad]),
            );
            let e = stream(&arecord(&file, u32::MAX), MONO_S16, 64)
                .unwrap_err()
                .to_string();
            assert!(e.contains("sample 3 is"), "{e}");
        }
    }

    fn error(bytes: &[u8]) -> String {
        stream(bytes, MONO_S16, 5).unwrap_err().to_string()
    }

    #[test]
    fn hostile_headers_get_errors_that_name_the_problem() {
        let good = wav(&fmt(PCM, 1, 16_000, 16), &[], &s16(&[1, 2, 3]));
        for cut in [4, 11, 20, 40, 43] {
            let e = error(&good[..cut]);
            assert!(
                e.contains("truncated") && e.contains("ends inside its header"),
                "{cut}: {e}"
            );
        }
        for (code, name) in [(6, "A-law"), (7, "mu-law"), (2, "ADPCM"), (0x11, "ADPCM")] {
            let e = error(&arecord(&wav(&fmt(code, 1, 8000, 8), &[], &[1, 2]), 0x7fff_ff00));
            assert!(e.contains("unsupported") && e.contains(name), "{e}");
        }
        let e = error(&wav(&fmt(PCM, 0, 16_000, 16), &[], &[1, 2]));
        assert!(e.contains("0 channels"), "{e}");
        for rate in [0, 100, 5_000_000, u32::MAX] {
            let e = error(&wav(&fmt(PCM, 1, rate, 16), &[], &[1, 2]));
            assert!(e.contains(&format!("{rate} Hz")), "{e}");
        }
        let mut rifx = good.clone();
        rifx[3] = b'X';
        assert!(error(&rifx).contains("RIFX"), "{}", error(&rifx));
        let mut form = good.clone();
        form[8..12].copy_from_slice(b"AVI ");
        assert!(error(&form).contains("not \"WAVE\""));
        // A header that never ends (a chunk before `data` claiming 4 GiB): refused at 1 MiB,
        // not buffered.
        let mut endless = good[..12].to_vec();
        endless.extend_from_slice(b"LIST\xff\xff\xff\xff");
        endless.resize(MAX_HEADER + 10_000, 0);
        let e = error(&endless);
        assert!(e.contains("no samples within the first 1048576 bytes"), "{e}");
        let mut huge_fmt = good.clone();
        huge_fmt[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(error(&huge_fmt).contains("claims 4294967295 bytes"));
    }
}
