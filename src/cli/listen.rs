//! What `transcribe --stream` and `assist` share: audio read on its own thread (so that it keeps
//! arriving while the models compute) and handed to a [`Stream`] in batches, partial text on
//! stderr, and the stream's real-time factor.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::Instant;

use anyhow::Context;
use edgelm::audio::resample::{MAX_RATE, MIN_RATE};
use edgelm::audio::wav::MAX_CHANNELS;
use edgelm::audio::{AudioError, AudioStream, Format, RawFormat, WHISPER_RATE, load_audio};
use edgelm::whisper::stream::{Stream, StreamEvent, StreamOptions};
use edgelm::whisper::{TranscribeOptions, Whisper};

use super::common::invalid;

/// Samples per message from the reading thread (0.1 s).
const CHUNK: usize = WHISPER_RATE as usize / 10;
/// Messages the reading thread runs ahead before it waits (60 s of audio).
const QUEUE: usize = 600;
/// Silence played after each file of a WAV list, so that the gate closes its utterance.
const GAP: usize = WHISPER_RATE as usize;

/// Where the audio comes from.
pub enum Source {
    /// A stream from a file or, for `-`, standard input: a WAV stream (`arecord`, `sox -t wav -`)
    /// or headerless PCM (`arecord -t raw`).
    Stream {
        /// The file, or `-`.
        path: PathBuf,
        /// The layout of headerless PCM.
        raw: Format,
    },
    /// WAV files played one after another, each followed by a second of silence.
    Wavs(Vec<PathBuf>),
}

/// The layout of a headerless stream (`--raw-format`, `--rate`, `--channels`).
#[derive(clap::Args, Clone, Debug)]
pub struct RawArgs {
    /// Sample format of a headerless stream: s16le or f32le [default: s16le]. A stream that
    /// starts with a WAV header (arecord without `-t raw`, `sox ... -t wav -`) is read as its
    /// header says, whatever --raw-format, --rate and --channels say.
    #[arg(long, value_parser = parse_raw_format)]
    pub raw_format: Option<RawFormat>,
    /// Sample rate of a headerless stream in Hz [default: 16000]; other rates are resampled to
    /// 16 kHz as the audio arrives.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Interleaved channels of a headerless stream [default: 1]; mixed down to mono.
    #[arg(long)]
    pub channels: Option<u16>,
}

impl RawArgs {
    /// The first of the options given, by name (they only apply to a stream).
    pub fn given(&self) -> Option<&'static str> {
        [
            (self.raw_format.is_some(), "--raw-format"),
            (self.rate.is_some(), "--rate"),
            (self.channels.is_some(), "--channels"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }

    /// The layout they describe, checked.
    pub fn format(&self) -> anyhow::Result<Format> {
        let rate = self.rate.unwrap_or(WHISPER_RATE);
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(invalid("--rate", rate, &format!("{MIN_RATE}..={MAX_RATE} Hz")));
        }
        let channels = self.channels.unwrap_or(1);
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(invalid("--channels", channels, &format!("1..={MAX_CHANNELS}")));
        }
        Ok(Format {
            encoding: self.raw_format.unwrap_or(RawFormat::S16Le).encoding(),
            channels,
            rate,
        })
    }
}

/// `--raw-format`: a [`RawFormat`] by name.
fn parse_raw_format(name: &str) -> Result<RawFormat, String> {
    RawFormat::parse(name).ok_or_else(|| format!("unknown raw sample format {name:?} (s16le or f32le)"))
}

/// What the reading thread sends: samples, or why it stopped, with the time they were read.
type Message = (Instant, Result<Vec<f32>, AudioError>);

/// Samples from the reading thread, and whether they are to be heard (see [`Listener::deafen`]).
pub struct Piece {
    /// 16 kHz samples.
    pub samples: Vec<f32>,
    /// Not read while the listener was deafened.
    pub heard: bool,
}

/// The reading thread's end of the audio.
pub struct Listener {
    rx: Receiver<Message>,
    /// Spans of time whose audio is not to be transcribed.
    deaf: Mutex<Vec<(Instant, Instant)>>,
}

impl Listener {
    /// Opens the source and starts reading it on its own thread.
    pub fn start(source: Source) -> anyhow::Result<Listener> {
        let (tx, rx) = sync_channel(QUEUE);
        match source {
            Source::Stream { path, raw } => {
                let input: Box<dyn Read + Send> = if path == Path::new("-") {
                    Box::new(std::io::stdin())
                } else {
                    Box::new(
                        std::fs::File::open(&path)
                            .with_context(|| format!("cannot open the audio stream {}", path.display()))?,
                    )
                };
                std::thread::spawn(move || read_stream(input, raw, &tx));
            }
            Source::Wavs(paths) => {
                std::thread::spawn(move || read_wavs(&paths, &tx));
            }
        }
        Ok(Listener {
            rx,
            deaf: Mutex::new(Vec::new()),
        })
    }

    /// Audio read from `from` to `to` is not to be transcribed (the assistant's own voice).
    pub fn deafen(&self, from: Instant, to: Instant) {
        self.deaf
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((from, to));
    }

    /// Waits for samples, then appends to `batch` all that have arrived, in order. Returns
    /// whether the reader has nothing more waiting (the models keep up), or `None` at the end of
    /// the audio.
    pub fn next(&self, batch: &mut Vec<Piece>) -> Result<Option<bool>, AudioError> {
        let Ok(first) = self.rx.recv() else {
            return Ok(None);
        };
        self.take(first, batch)?;
        loop {
            match self.rx.try_recv() {
                Ok(message) => self.take(message, batch)?,
                Err(TryRecvError::Empty) => return Ok(Some(true)),
                // The end comes with the next call.
                Err(TryRecvError::Disconnected) => return Ok(Some(false)),
            }
        }
    }

    /// Appends a message's samples to the batch, joined to the last piece if heard alike.
    fn take(&self, (read, samples): Message, batch: &mut Vec<Piece>) -> Result<(), AudioError> {
        let samples = samples?;
        let mut deaf = self.deaf.lock().unwrap_or_else(|e| e.into_inner());
        // Messages come in the order they were read: spans that ended before are done with.
        deaf.retain(|&(_, to)| to >= read);
        let heard = !deaf.iter().any(|&(from, _)| from <= read);
        match batch.last_mut() {
            Some(last) if last.heard == heard => last.samples.extend_from_slice(&samples),
            _ => batch.push(Piece { samples, heard }),
        }
        Ok(())
    }
}

/// Sends the stream's 16 kHz samples in chunks until the end, or an error (the receiver gone:
/// stop quietly). A format other than 16 kHz mono is named on stderr.
fn read_stream(input: Box<dyn Read + Send>, raw: Format, tx: &SyncSender<Message>) {
    let mut stream = match AudioStream::open(input, raw, CHUNK) {
        Ok(stream) => stream,
        Err(e) => {
            let _ = tx.send((Instant::now(), Err(e)));
            return;
        }
    };
    let format = stream.format();
    if stream.is_wav() || format.rate != WHISPER_RATE || format.channels != 1 {
        eprintln!(
            "stream: {} {format}{}",
            if stream.is_wav() { "WAV," } else { "raw," },
            if format.rate == WHISPER_RATE {
                ""
            } else {
                ", resampled to 16 kHz"
            },
        );
    }
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        match stream.read_into(&mut chunk) {
            Ok(0) => return,
            Ok(_) => {
                if tx.send((Instant::now(), Ok(chunk))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send((Instant::now(), Err(e)));
                return;
            }
        }
    }
}

/// Sends each WAV file's samples (at 16 kHz), then a second of silence.
fn read_wavs(paths: &[PathBuf], tx: &SyncSender<Message>) {
    for path in paths {
        let samples = match load_audio(path) {
            Ok(samples) => samples,
            Err(e) => {
                let _ = tx.send((Instant::now(), Err(e)));
                return;
            }
        };
        let gap = std::iter::repeat_n(0.0, GAP);
        for chunk in samples.into_iter().chain(gap).collect::<Vec<_>>().chunks(CHUNK) {
            if tx.send((Instant::now(), Ok(chunk.to_vec()))).is_err() {
                return;
            }
        }
    }
}

/// Runs `stream` over the listener's audio, handing each event to `on_event`, until the audio
/// ends. Partial text is only asked for while the models keep up with the audio. A read error
/// still closes the stream (the final text of the open utterance) before it is returned.
pub fn listen(
    stream: &mut Stream<'_>,
    listener: &Listener,
    mut on_event: impl FnMut(StreamEvent) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (mut batch, mut events) = (Vec::new(), Vec::new());
    loop {
        batch.clear();
        let read = listener.next(&mut batch);
        for (i, piece) in batch.iter().enumerate() {
            if piece.heard {
                // Partial text only after the newest samples.
                let caught_up = matches!(read, Ok(Some(true))) && i + 1 == batch.len();
                stream.push(&piece.samples, caught_up, &mut events)?;
            } else {
                stream.push_unheard(&piece.samples)?;
            }
        }
        if !matches!(read, Ok(Some(_))) {
            stream.finish(&mut events)?;
        }
        for event in events.drain(..) {
            on_event(event)?;
        }
        match read {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Partial text on stderr: rewritten in place on a terminal, one `partial:` line each otherwise.
pub struct Partials {
    tty: bool,
    shown: bool,
}

impl Partials {
    /// For this process's stderr.
    pub fn new() -> Partials {
        Partials {
            tty: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    /// Shows the open utterance's text so far.
    pub fn show(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        // Progress on stderr: a failed write is no reason to stop.
        let _ = if self.tty {
            self.shown = true;
            write!(err, "\r\x1b[K… {text}").and_then(|()| err.flush())
        } else {
            writeln!(err, "partial: {text}")
        };
    }

    /// Takes the partial text off the terminal before other output.
    pub fn clear(&mut self) {
        if std::mem::take(&mut self.shown) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K").and_then(|()| err.flush());
        }
    }
}

/// The stream's totals and real-time factor, on stderr.
pub fn report(stream: &Stream<'_>) {
    let s = stream.stats();
    let (audio, compute) = (s.audio_seconds(), s.compute.as_secs_f64());
    if s.samples == 0 {
        eprintln!("stream: 0.0 s of audio (no complete sample)");
        return;
    }
    eprintln!(
        "stream: {audio:.1} s of audio, {} utterance(s){}, {} encoder pass(es) ({} for partial text), {} thread(s): \
compute {compute:.2} s, {} (real-time factor {:.3})",
        s.utterances,
        match s.unheard {
            0 => String::new(),
            n => format!(" (and {n} heard while the assistant spoke, not transcribed)"),
        },
        s.encoder_passes,
        s.partials,
        stream.whisper().threads(),
        pace(audio, compute),
        compute / audio.max(1e-9),
    );
}

/// How the compute time compares with the audio's duration, as a ratio above 1: a loaded machine
/// or a large model can be slower than real time.
fn pace(audio: f64, compute: f64) -> String {
    if audio >= compute {
        format!("{:.1}x faster than real time", audio / compute.max(1e-9))
    } else {
        format!("{:.1}x slower than real time", compute / audio.max(1e-9))
    }
}

/// `edgelm transcribe --stream`: the final text of each utterance on stdout, one line each.
pub fn transcribe(whisper: Whisper<'_>, options: TranscribeOptions, source: Source) -> anyhow::Result<()> {
    let listener = Listener::start(source)?;
    let mut stream = Stream::new(
        whisper,
        StreamOptions {
            transcribe: options,
            ..StreamOptions::default()
        },
    )?;
    let mut partials = Partials::new();
    let mut stdout = std::io::stdout();
    let result = listen(&mut stream, &listener, |event| {
        match event {
            StreamEvent::Partial { text, .. } => partials.show(&text),
            StreamEvent::Final { text, .. } => {
                partials.clear();
                if !text.is_empty() {
                    writeln!(stdout, "{text}")?;
                    stdout.flush()?;
                }
            }
        }
        Ok(())
    });
    partials.clear();
    report(&stream);
    result
}

#[cfg(test)]
mod tests {
    use super::pace;

    #[test]
    fn pace_says_slower_when_compute_outlasts_the_audio() {
        assert_eq!(pace(4.2, 11.41), "2.7x slower than real time");
        assert_eq!(pace(61.5, 29.05), "2.1x faster than real time");
        assert_eq!(pace(2.0, 2.0), "1.0x faster than real time");
    }
}
