//! RIFF/WAVE decoding: integer PCM (8, 16, 24, 32 bits), IEEE float (32, 64 bits), the same inside
//! `WAVE_FORMAT_EXTENSIBLE`; any rate and channel count, mixed down to mono. Unknown chunks are
//! skipped. A `data` chunk that claims more bytes than the file holds (a recorder stopped before
//! it rewrote the header, or a stream's placeholder size) is read up to the end of the file.

use super::{AudioError, Pcm};

/// Channel counts above this are not audio anyone records.
pub const MAX_CHANNELS: u16 = 256;

pub(crate) const PCM: u16 = 0x0001;
pub(crate) const IEEE_FLOAT: u16 = 0x0003;
const EXTENSIBLE: u16 = 0xFFFE;
/// The tail every `KSDATAFORMAT_SUBTYPE_*` GUID of a WAVE format code shares.
const SUBTYPE_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// How the samples of the `data` chunk (or of a raw stream) are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Unsigned 8-bit, signed 16/24/32-bit little-endian integers.
    Int {
        /// Bytes per sample: 1 to 4.
        bytes: usize,
    },
    /// IEEE float, 4 or 8 bytes.
    Float {
        /// Bytes per sample: 4 or 8.
        bytes: usize,
    },
}

impl Encoding {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            Encoding::Int { bytes } | Encoding::Float { bytes } => bytes,
        }
    }
}

/// The layout of PCM samples: encoding, interleaved channels, rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// How one sample is stored.
    pub encoding: Encoding,
    /// Interleaved channels per frame (1..=[`MAX_CHANNELS`]).
    pub channels: u16,
    /// Frames per second.
    pub rate: u32,
}

impl Format {
    /// Bytes per frame (one sample of every channel).
    pub fn frame_bytes(&self) -> usize {
        self.encoding.bytes() * usize::from(self.channels)
    }

    /// The mono value of one frame (`frame_bytes` bytes): its channels averaged. `first` is the
    /// stream index of its first sample, to name a sample that is not a finite f32.
    pub(crate) fn mix(&self, frame: &[u8], first: usize) -> Result<f32, AudioError> {
        let mut sum = 0.0f64;
        for (c, s) in frame.chunks_exact(self.encoding.bytes()).enumerate() {
            let v = sample(s, self.encoding);
            // A 64-bit float beyond f32's range would become infinite when converted.
            if !(v as f32).is_finite() {
                return Err(AudioError::NotFinite {
                    index: first + c,
                    value: v,
                });
            }
            sum += v;
        }
        Ok((sum * (1.0 / f64::from(self.channels))) as f32)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, bytes) = match self.encoding {
            Encoding::Int { bytes } => ("integer", bytes),
            Encoding::Float { bytes } => ("float", bytes),
        };
        write!(
            f,
            "{}-bit {kind}, {} Hz, {} channel(s)",
            bytes * 8,
            self.rate,
            self.channels
        )
    }
}

/// A `data` size at or above this is a placeholder, not a length: a recorder writing to a pipe
/// cannot seek back to fill it in (arecord writes 0x7fffff00, sox and espeak-ng 0x7ffff000,
/// ffmpeg 0xffffffff). The samples then go on to the end of the input.
pub const PLACEHOLDER_SIZE: u32 = 0x7FFF_0000;

/// What a WAV header says: the sample format and where the samples are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The `fmt` chunk.
    pub format: Format,
    /// Offset of the first sample byte (the `data` chunk's body).
    pub data_start: usize,
    /// Bytes of samples the `data` chunk holds; `None` for a placeholder size (to the end).
    pub data_len: Option<u32>,
}

/// How far the bytes at the start of an input got through a WAV header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderScan {
    /// The whole header was there.
    Done(Header),
    /// The bytes end inside the header: what is missing (a truncated file, or a stream whose
    /// next bytes are still to come).
    Short(String),
}

/// Decodes a WAV file held in memory into mono samples at the file's rate.
pub fn read_wav(bytes: &[u8]) -> Result<Pcm, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty(" (empty input)"));
    }
    let header = match scan_header(bytes)? {
        HeaderScan::Done(header) => header,
        HeaderScan::Short(missing) => return Err(AudioError::Truncated(missing)),
    };
    // A size past the end of the file: read what is there.
    let data = &bytes[header.data_start..];
    let len = header.data_len.map_or(data.len(), |n| data.len().min(n as usize));
    decode(&data[..len], header.format)
}

/// Reads the WAV header at the start of `bytes`, which may be only the first part of a file or
/// stream: chunks before `data` other than `fmt ` are skipped; a `data` chunk before `fmt ` is
/// remembered (its samples are then inside `bytes`).
pub fn scan_header(bytes: &[u8]) -> Result<HeaderScan, AudioError> {
    if let Some(name) = container(bytes) {
        return Err(AudioError::Container(name));
    }
    if bytes.len() >= 4 {
        match &bytes[0..4] {
            b"RIFF" => {}
            b"RF64" | b"BW64" => return Err(AudioError::Unsupported("RF64/BW64 (WAV over 4 GiB)".into())),
            b"RIFX" => return Err(AudioError::Unsupported("big-endian RIFX".into())),
            other => {
                return Err(AudioError::NotWav(format!(
                    "starts with {:?}, not \"RIFF\"",
                    ascii(other)
                )));
            }
        }
    }
    if bytes.len() < 12 {
        return if b"RIFF".starts_with(&bytes[..bytes.len().min(4)]) {
            Ok(HeaderScan::Short(format!(
                "{} bytes, shorter than the 12-byte RIFF header",
                bytes.len()
            )))
        } else {
            Err(AudioError::NotWav(format!(
                "{} bytes, no RIFF header",
                bytes.len()
            )))
        };
    }
    if &bytes[8..12] != b"WAVE" {
        return Err(AudioError::NotWav(format!(
            "RIFF form {:?}, not \"WAVE\"",
            ascii(&bytes[8..12])
        )));
    }

    let mut format = None;
    // A data chunk met before the format: (start, size).
    let mut early_data: Option<(usize, u32)> = None;
    let mut pos = 12usize;
    let missing = |format: &Option<Format>| {
        HeaderScan::Short(
            if format.is_none() {
                "no fmt chunk before the end of the file"
            } else {
                "no data chunk"
            }
            .into(),
        )
    };
    while bytes.len() - pos >= 8 {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes([bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]]);
        let body_start = pos + 8;
        let available = bytes.len() - body_start;
        match id {
            b"fmt " => {
                if size as usize > available {
                    return Ok(HeaderScan::Short(format!(
                        "the fmt chunk claims {size} bytes, {available} remain"
                    )));
                }
                let parsed = parse_fmt(&bytes[body_start..body_start + size as usize])?;
                if let Some((data_start, size)) = early_data {
                    return Ok(HeaderScan::Done(header(parsed, data_start, size)));
                }
                format = Some(parsed);
            }
            b"data" => match format {
                Some(format) => return Ok(HeaderScan::Done(header(format, body_start, size))),
                // Samples before the format: skipped over, if they are all there.
                None if (size as usize) < available && size < PLACEHOLDER_SIZE => {
                    early_data = Some((body_start, size));
                }
                None => return Ok(missing(&format)),
            },
            _ => {}
        }
        // Chunks are padded to an even size.
        match body_start
            .checked_add(size as usize)
            .and_then(|end| end.checked_add(size as usize & 1))
        {
            Some(next) if next <= bytes.len() => pos = next,
            _ => return Ok(missing(&format)),
        }
    }
    Ok(missing(&format))
}

fn header(format: Format, data_start: usize, size: u32) -> Header {
    Header {
        format,
        data_start,
        data_len: (size < PLACEHOLDER_SIZE).then_some(size),
    }
}

fn parse_fmt(fmt: &[u8]) -> Result<Format, AudioError> {
    if fmt.len() < 16 {
        return Err(AudioError::Truncated(format!(
            "fmt chunk of {} bytes, at least 16 needed",
            fmt.len()
        )));
    }
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let tag = u16_at(0);
    let channels = u16_at(2);
    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let bits = u16_at(14);
    let code = if tag == EXTENSIBLE {
        if fmt.len() < 40 {
            return Err(AudioError::Truncated(format!(
                "WAVE_FORMAT_EXTENSIBLE fmt chunk of {} bytes, 40 needed",
                fmt.len()
            )));
        }
        let guid = &fmt[24..40];
        if guid[2..] != SUBTYPE_TAIL {
            return Err(AudioError::Unsupported(format!(
                "WAVE_FORMAT_EXTENSIBLE with a non-standard sub-format GUID {}",
                guid.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )));
        }
        u16::from_le_bytes([guid[0], guid[1]])
    } else {
        tag
    };
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(AudioError::Invalid(format!(
            "{channels} channels (1..={MAX_CHANNELS} accepted)"
        )));
    }
    if rate == 0 {
        return Err(AudioError::Invalid("sample rate 0 Hz".into()));
    }
    let encoding = match (code, bits) {
        (PCM, 8 | 16 | 24 | 32) => Encoding::Int {
            bytes: usize::from(bits / 8),
        },
        (IEEE_FLOAT, 32 | 64) => Encoding::Float {
            bytes: usize::from(bits / 8),
        },
        (PCM, _) => {
            return Err(AudioError::Unsupported(format!(
                "{bits}-bit integer PCM (8, 16, 24, 32 are read)"
            )));
        }
        (IEEE_FLOAT, _) => {
            return Err(AudioError::Unsupported(format!(
                "{bits}-bit float (32 and 64 are read)"
            )));
        }
        (code, _) => return Err(AudioError::Unsupported(codec_name(code))),
    };
    let (align, frame) = (u16_at(12), usize::from(channels) * encoding.bytes());
    if usize::from(align) != frame {
        return Err(AudioError::Invalid(format!(
            "block align {align} bytes, but {channels} channels of {bits} bits take {frame}"
        )));
    }
    Ok(Format {
        encoding,
        channels,
        rate,
    })
}

/// The codecs a WAV file may carry that edgelm does not decode, by their format code.
fn codec_name(code: u16) -> String {
    let name = match code {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "mu-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MP3",
        0x00FF | 0x1600 | 0x1610 => "AAC",
        0x0161..=0x0163 => "Windows Media Audio",
        0xF1AC => "FLAC",
        0x674F | 0x6750 | 0x6751 | 0x676F | 0x6770 | 0x6771 => "Ogg Vorbis",
        _ => "",
    };
    if name.is_empty() {
        format!("format code 0x{code:04x}")
    } else {
        format!("{name} (format code 0x{code:04x})")
    }
}

fn decode(data: &[u8], format: Format) -> Result<Pcm, AudioError> {
    let width = format.encoding.bytes();
    let channels = usize::from(format.channels);
    let frame = width * channels;
    let frames = data.len() / frame;
    if frames == 0 {
        return Err(AudioError::Empty(if data.is_empty() {
            " (zero-length data chunk)"
        } else {
            " (the data chunk is shorter than one frame)"
        }));
    }
    let mut samples = Vec::new();
    samples
        .try_reserve_exact(frames)
        .map_err(|_| AudioError::Invalid(format!("{frames} frames do not fit in memory")))?;
    for (f, bytes) in data.chunks_exact(frame).enumerate() {
        samples.push(format.mix(bytes, f * channels)?);
    }
    Ok(Pcm {
        samples,
        rate: format.rate,
    })
}

/// One sample's value; integers scaled so that full scale is [-1, 1).
fn sample(s: &[u8], encoding: Encoding) -> f64 {
    match (encoding, s) {
        (Encoding::Int { .. }, &[b]) => (f64::from(b) - 128.0) / 128.0,
        (Encoding::Int { .. }, &[a, b]) => f64::from(i16::from_le_bytes([a, b])) / 32_768.0,
        (Encoding::Int { .. }, &[a, b, c]) => f64::from(i32::from_le_bytes([0, a, b, c]) >> 8) / 8_388_608.0,
        (Encoding::Int { .. }, &[a, b, c, d]) => {
            f64::from(i32::from_le_bytes([a, b, c, d])) / 2_147_483_648.0
        }
        (Encoding::Float { .. }, &[a, b, c, d]) => f64::from(f32::from_le_bytes([a, b, c, d])),
        (Encoding::Float { .. }, &[a, b, c, d, e, f, g, h]) => f64::from_le_bytes([a, b, c, d, e, f, g, h]),
        // `decode` hands over slices of the encoding's width, which `parse_fmt` limited to the above.
        _ => 0.0,
    }
}

/// The audio file format other than WAV whose magic bytes `head` starts with: files renamed
/// `.wav`, or piped in where a WAV or raw stream was expected. Only unambiguous magic: none is
/// the start of quiet raw PCM.
pub fn container(head: &[u8]) -> Option<&'static str> {
    const MAGIC: [(usize, &[u8], &str); 10] = [
        (0, b"fLaC", "FLAC"),
        (0, b"ID3", "MP3 (ID3 tag)"),
        (0, b"OggS", "Ogg (Vorbis or Opus)"),
        (4, b"ftyp", "MP4/M4A"),
        (0, &[0x1A, 0x45, 0xDF, 0xA3], "Matroska/WebM"),
        (0, b"caff", "Core Audio (CAF)"),
        (0, b".snd", "Sun/NeXT AU"),
        (0, b"#!AMR", "AMR"),
        (0, b"MAC ", "Monkey's Audio"),
        (0, b"wvpk", "WavPack"),
    ];
    let aiff = head.len() >= 12 && &head[..4] == b"FORM" && matches!(&head[8..12], b"AIFF" | b"AIFC");
    if aiff {
        return Some("AIFF");
    }
    MAGIC
        .iter()
        .find(|(at, magic, _)| head.get(*at..at + magic.len()) == Some(*magic))
        .map(|(_, _, name)| *name)
}

/// A chunk or form id, printable.
fn ascii(id: &[u8]) -> String {
    id.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A WAV file: `fmt` body as given, then the chunks `extra` (id, body) and the data.
    pub(crate) fn wav(fmt: &[u8], extra: &[(&[u8; 4], &[u8])], data: &[u8]) -> Vec<u8> {
        let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
        let mut chunk = |id: &[u8; 4], body: &[u8]| {
            out.extend_from_slice(id);
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(body);
            if body.len() % 2 == 1 {
                out.push(0);
            }
        };
        chunk(b"fmt ", fmt);
        for (id, body) in extra {
            chunk(id, body);
        }
        chunk(b"data", data);
        let riff = (out.len() - 8) as u32;
        out[4..8].copy_from_slice(&riff.to_le_bytes());
        out
    }

    pub(crate) fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut f = Vec::new();
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&rate.wrapping_mul(u32::from(align)).to_le_bytes());
        f.extend_from_slice(&align.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f
    }

    pub(crate) fn extensible(code: u16, channels: u16, rate: u32, bits: u16, valid: u16) -> Vec<u8> {
        let mut f = fmt(EXTENSIBLE, channels, rate, bits);
        f.extend_from_slice(&22u16.to_le_bytes());
        f.extend_from_slice(&valid.to_le_bytes());
        f.extend_from_slice(&3u32.to_le_bytes()); // front left | front right
        f.extend_from_slice(&code.to_le_bytes());
        f.extend_from_slice(&SUBTYPE_TAIL);
        f
    }

    pub(crate) fn s16(v: &[i16]) -> Vec<u8> {
        v.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn reads_every_integer_width() {
        let expect = [0.0f32, 0.5, -1.0];
        let cases: [(u16, Vec<u8>); 4] = [
            (8, vec![128, 192, 0]),
            (16, s16(&[0, 16384, -32768])),
            (24, vec![0, 0, 0, 0, 0, 0x40, 0, 0, 0x80]),
            (
                32,
                [0i32, 1 << 30, i32::MIN]
                    .iter()
                    .flat_map(|s| s.to_le_bytes())
                    .collect(),
            ),
        ];
        for (bits, data) in cases {
            let pcm = read_wav(&wav(&fmt(PCM, 1, 8000, bits), &[], &data)).unwrap();
            assert_eq!(pcm.rate, 8000);
            assert_eq!(pcm.samples, expect, "{bits}-bit");
        }
    }

    #[test]
    fn reads_floats_and_extensible() {
        let f32s: Vec<u8> = [0.25f32, -0.75].iter().flat_map(|s| s.to_le_bytes()).collect();
        let f64s: Vec<u8> = [0.25f64, -0.75].iter().flat_map(|s| s.to_le_bytes()).collect();
        for (f, data) in [
            (fmt(IEEE_FLOAT, 1, 16000, 32), &f32s),
            (fmt(IEEE_FLOAT, 1, 16000, 64), &f64s),
            (extensible(IEEE_FLOAT, 1, 16000, 32, 32), &f32s),
        ] {
            assert_eq!(read_wav(&wav(&f, &[], data)).unwrap().samples, [0.25, -0.75]);
        }
        // 24 valid bits left-justified in a 32-bit container read as 32-bit.
        let data: Vec<u8> = [1i32 << 30].iter().flat_map(|s| s.to_le_bytes()).collect();
        let pcm = read_wav(&wav(&extensible(PCM, 1, 48000, 32, 24), &[], &data)).unwrap();
        assert_eq!((pcm.samples[0], pcm.rate), (0.5, 48000));
    }

    #[test]
    fn mixes_channels_down_and_skips_unknown_chunks() {
        let data = s16(&[16384, -16384, 16384, 0, 8192, 8192]);
        let bytes = wav(
            &fmt(PCM, 2, 44100, 16),
            &[(b"LIST", b"INFOodd"), (b"fact", &[4, 0, 0, 0])],
            &data,
        );
        let pcm = read_wav(&bytes).unwrap();
        assert_eq!(pcm.samples, [0.0, 0.25, 0.25]);
        assert_eq!(pcm.rate, 44100);
    }

    #[test]
    fn a_data_size_past_the_end_reads_what_is_there() {
        let mut bytes = wav(&fmt(PCM, 1, 16000, 16), &[], &s16(&[1000, 2000, 3000]));
        let n = bytes.len();
        bytes[n - 10..n - 6].copy_from_slice(&u32::MAX.to_le_bytes()); // the data chunk's size
        bytes.push(0x55); // half a sample: dropped
        assert_eq!(read_wav(&bytes).unwrap().samples.len(), 3);
    }

    fn error(bytes: &[u8]) -> String {
        read_wav(bytes).unwrap_err().to_string()
    }

    #[test]
    fn bad_files_get_errors_that_name_the_problem() {
        let good = wav(&fmt(PCM, 1, 16000, 16), &[], &s16(&[1, 2, 3]));
        assert!(error(&good[..6]).contains("truncated"), "{}", error(&good[..6]));
        assert!(error(&good[..30]).contains("truncated"), "{}", error(&good[..30]));
        for (head, name) in [
            (b"ID3\x04 an mp3 file".as_slice(), "MP3 (ID3 tag) audio, not WAV"),
            (b"fLaC\0\0\0\x22", "FLAC audio, not WAV"),
            (b"OggS\0\x02", "Ogg (Vorbis or Opus) audio, not WAV"),
            (b"\0\0\0\x20ftypM4A ", "MP4/M4A audio, not WAV"),
            (b"FORM\0\0\0\x10AIFFCOMM", "AIFF audio, not WAV"),
        ] {
            let e = error(head);
            assert!(e.contains(name) && e.contains("ffmpeg"), "{e}");
        }
        assert!(error(b"\xff\xfb\x90\x00 frame").contains("not a WAV"));
        assert!(error(b"").contains("empty input"));
        let mut form = good.clone();
        form[8..12].copy_from_slice(b"AVI ");
        assert!(error(&form).contains("\"AVI \""));
        for (code, name) in [
            (6, "A-law"),
            (7, "mu-law"),
            (2, "ADPCM"),
            (0x11, "ADPCM"),
            (0x55, "MP3"),
            (0x1234, "0x1234"),
        ] {
            let e = error(&wav(&fmt(code, 1, 8000, 8), &[], &[1, 2]));
            assert!(e.contains("unsupported") && e.contains(name), "{e}");
        }
        let e = error(&wav(&fmt(PCM, 1, 16000, 12), &[], &[0; 4]));
        assert!(e.contains("12-bit"), "{e}");
        let e = error(&wav(&fmt(PCM, 1, 16000, 16), &[], &[]));
        assert!(e.contains("zero-length"), "{e}");
        let e = error(&wav(&fmt(PCM, 2, 16000, 16), &[], &[1, 2]));
        assert!(e.contains("shorter than one frame"), "{e}");
        let e = error(&wav(&fmt(PCM, 0, 16000, 16), &[], &[1, 2]));
        assert!(e.contains("0 channels"), "{e}");
        let e = error(&wav(&fmt(PCM, 1, 0, 16), &[], &[1, 2]));
        assert!(e.contains("0 Hz"), "{e}");
        let nan: Vec<u8> = [0.0f32, f32::NAN].iter().flat_map(|s| s.to_le_bytes()).collect();
        let e = error(&wav(&fmt(IEEE_FLOAT, 1, 16000, 32), &[], &nan));
        assert!(e.contains("sample 1 is NaN"), "{e}");
        // Found by the wav fuzz target: finite as f64, infinite as f32.
        let huge: Vec<u8> = 1e300f64.to_le_bytes().to_vec();
        let e = error(&wav(&fmt(IEEE_FLOAT, 1, 16000, 64), &[], &huge));
        assert!(e.contains("sample 0 is 1"), "{e}");
        let inf: Vec<u8> = f64::INFINITY.to_le_bytes().to_vec();
        assert!(error(&wav(&fmt(IEEE_FLOAT, 1, 16000, 64), &[], &inf)).contains("inf"));
        let mut guid = extensible(PCM, 1, 16000, 16, 16);
        guid[30] ^= 1;
        assert!(error(&wav(&guid, &[], &[0, 0])).contains("GUID"));
        let e = error(&wav(&extensible(0x55, 1, 8000, 8, 8), &[], &[0, 0]));
        assert!(e.contains("unsupported") && e.contains("MP3"), "{e}");
        let mut align = fmt(PCM, 2, 16000, 16);
        align[12] = 2;
        let e = error(&wav(&align, &[], &[0; 8]));
        assert!(
            e.contains("block align 2 bytes, but 2 channels of 16 bits take 4"),
            "{e}"
        );
        let e = error(&wav(&fmt(PCM, 1, 16000, 16)[..14], &[], &[0, 0]));
        assert!(e.contains("fmt chunk of 14 bytes"), "{e}");
        let no_fmt = [b"RIFF\x10\0\0\0WAVE".as_slice(), b"data\x02\0\0\0\0\0"].concat();
        assert!(error(&no_fmt).contains("no fmt chunk"));
        let mut huge_fmt = good.clone();
        huge_fmt[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(error(&huge_fmt).contains("claims 4294967295 bytes"));
    }
}
