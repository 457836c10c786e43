//! `edgelm transcribe MODEL AUDIO`: speech to text with a Whisper model. The transcript goes to
//! stdout (plain text, or segments as JSON, SRT or WebVTT), timings to stderr. With `--stream` the
//! audio (a WAV stream or raw PCM) is read as it arrives (`cli::listen`): one line per utterance.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use edgelm::audio::{LogMel, load_audio, mel::FASTER_WHISPER_PADDING};
use edgelm::whisper::{
    AudioContext, Task, TranscribeOptions, Transcript, Whisper, WhisperOptions, transcribe,
};

use super::common::{invalid, load, threads};
use super::listen::{self, RawArgs, Source};

/// `--task`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum TaskArg {
    /// Text in the spoken language.
    Transcribe,
    /// English text.
    Translate,
}

/// `--audio-ctx`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum AudioCtxArg {
    /// Every window is encoded as 30 s (the audio zero-padded), as the model was trained.
    Full,
    /// A window is encoded as long as its audio plus 1 s (rounded up to 1.28 s steps): faster
    /// on short audio, but the transcript may differ.
    Auto,
}

/// Arguments of `edgelm transcribe`.
#[derive(clap::Args)]
pub struct TranscribeArgs {
    /// The packed Whisper model file.
    pub model: PathBuf,
    /// A WAV file (any rate, mono or stereo; `-`: standard input); with `--stream`, a stream.
    pub audio: PathBuf,
    /// AUDIO is a live stream, read as it arrives: a WAV stream (`arecord -f S16_LE -r 16000 -c
    /// 1`, `sox IN -t wav -`; any rate and channels, from its header) or headerless PCM
    /// (`arecord -t raw`, laid out as --raw-format, --rate and --channels say). Each utterance
    /// is transcribed when it ends (one line on stdout), partial text on stderr.
    #[arg(long, conflicts_with_all = ["json", "srt", "vtt"])]
    pub stream: bool,
    #[command(flatten)]
    pub raw: RawArgs,
    /// Worker threads (default: the physical performance cores this process may use).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Use the -t given even when it is more than the available cores (otherwise capped).
    #[arg(long)]
    pub force_threads: bool,
    /// Spoken language code (`en`, `de`, ...); detected from the first 30 s when absent.
    #[arg(long)]
    pub language: Option<String>,
    /// Transcribe, or translate into English.
    #[arg(long, value_enum, default_value = "transcribe")]
    pub task: TaskArg,
    /// Encoder positions per window: all (30 s) or as many as the audio needs.
    #[arg(long, value_enum, default_value = "full")]
    pub audio_ctx: AudioCtxArg,
    /// Print the segments as JSON (start, end, text, tokens, average log-probability).
    #[arg(long, conflicts_with_all = ["srt", "vtt"])]
    pub json: bool,
    /// Print the segments as SubRip subtitles.
    #[arg(long, conflicts_with = "vtt")]
    pub srt: bool,
    /// Print the segments as WebVTT subtitles.
    #[arg(long)]
    pub vtt: bool,
    /// Beam size of the decoding at temperature 0 (1: greedy), as faster-whisper's default.
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Temperatures tried in turn while a window's text is too repetitive or improbable
    /// (comma-separated; those above 0 sample 5 candidates).
    #[arg(long, value_delimiter = ',', default_value = "0,0.2,0.4,0.6,0.8,1")]
    pub temperature: Vec<f32>,
    /// Decode each window once, at the first temperature (no fallback).
    #[arg(long)]
    pub no_fallback: bool,
    /// Time each word from the cross-attention of the model's alignment heads, as
    /// faster-whisper's word_timestamps=True (`--json`: start, end and probability per word;
    /// the segments' start and end follow their words).
    #[arg(long, conflicts_with = "stream")]
    pub word_timestamps: bool,
}

/// `h:mm:ss.mmm` (or with a comma for SRT).
fn clock(seconds: f32, sep: char) -> String {
    let ms = (f64::from(seconds.max(0.0)) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Seconds to the centisecond (timestamps are 20 ms steps).
fn secs(x: f32) -> f64 {
    (f64::from(x) * 100.0).round() / 100.0
}

fn json(t: &Transcript, words: bool) -> serde_json::Value {
    let segments: Vec<_> = t
        .segments
        .iter()
        .map(|s| {
            let mut segment = serde_json::json!({
                "start": secs(s.start),
                "end": secs(s.end),
                "text": s.text,
                "tokens": s.tokens,
                "avg_logprob": s.avg_logprob,
                "no_speech_prob": s.no_speech_prob,
                "temperature": s.temperature,
                "compression_ratio": s.compression_ratio,
            });
            if words {
                segment["words"] = s
                    .words
                    .iter()
                    .map(|w| {
                        serde_json::json!({
                            "word": w.word,
                            "start": secs(w.start),
                            "end": secs(w.end),
                            "probability": w.probability,
                        })
                    })
                    .collect();
            }
            segment
        })
        .collect();
    serde_json::json!({"language": t.language, "text": t.text(), "segments": segments})
}

fn subtitles(t: &Transcript, vtt: bool) -> String {
    let mut out = String::new();
    if vtt {
        out.push_str("WEBVTT\n\n");
    }
    for (i, s) in t.segments.iter().enumerate() {
        let sep = if vtt { '.' } else { ',' };
        if !vtt {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            clock(s.start, sep),
            clock(s.end, sep),
            s.text.trim()
        ));
    }
    out
}

/// Transcribes the audio file and prints the result.
pub fn run(args: TranscribeArgs) -> anyhow::Result<()> {
    if args.threads == Some(0) {
        return Err(invalid("-t", 0, "at least 1"));
    }
    if args.beam == 0 {
        return Err(invalid("--beam", 0, "at least 1"));
    }
    if let Some(t) = args.temperature.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
        return Err(invalid("--temperature", t, "a number of at least 0"));
    }
    let mut temperatures = args.temperature.clone();
    if args.no_fallback {
        temperatures.truncate(1);
    }
    if let Some(option) = args.raw.given().filter(|_| !args.stream) {
        anyhow::bail!("{option} describes a stream: give --stream too");
    }
    let raw = args.raw.format()?;
    let defaults = TranscribeOptions::default();
    let start = Instant::now();
    let (model, _) = load(&args.model)?;
    let opts = WhisperOptions {
        threads: threads("-t", args.threads, args.force_threads)?,
        audio_ctx: match args.audio_ctx {
            AudioCtxArg::Full => AudioContext::Full,
            AudioCtxArg::Auto => AudioContext::Auto,
        },
        // A cache per beam, or per sampled candidate where a temperature samples.
        sequences: Some(if temperatures.iter().any(|&t| t > 0.0) {
            args.beam.max(defaults.best_of)
        } else {
            args.beam
        }),
        ..Default::default()
    };
    let mut whisper = Whisper::new(&model, &opts)?;
    let options = TranscribeOptions {
        language: args.language.clone(),
        task: match args.task {
            TaskArg::Transcribe => Task::Transcribe,
            TaskArg::Translate => Task::Translate,
        },
        beam_size: args.beam,
        temperatures,
        word_timestamps: args.word_timestamps,
        ..defaults
    };
    if args.stream {
        let source = Source::Stream {
            path: args.audio,
            raw,
        };
        return listen::transcribe(whisper, options, source);
    }
    let weights = model.whisper()?;
    let loaded = start.elapsed();
    let samples = load_audio(&args.audio)?;
    let n_mels = weights.mel_filters.len() / edgelm::arch::WHISPER_FFT_BINS;
    let mel_start = Instant::now();
    let mut mel = Vec::new();
    let mut logmel = LogMel::with_filters(weights.mel_filters.to_vec(), n_mels)?;
    let frames = logmel.compute(&samples, FASTER_WHISPER_PADDING, &mut mel);
    let mel_time = mel_start.elapsed();
    // faster-whisper: the last frame comes from the one-hop padding.
    let t = transcribe(&mut whisper, &mel, frames, frames.saturating_sub(1), &options)?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&json(&t, args.word_timestamps))?
        )?;
    } else if args.srt || args.vtt {
        write!(stdout, "{}", subtitles(&t, args.vtt))?;
    } else {
        writeln!(stdout, "{}", t.text())?;
    }
    stdout.flush()?;
    let audio_s = samples.len() as f64 / f64::from(edgelm::audio::WHISPER_RATE);
    let total = start.elapsed().as_secs_f64();
    eprintln!(
        "{audio_s:.1} s of audio ({}), {} thread(s): load {:.0} ms, mel {:.0} ms, encoder {:.0} ms ({} window(s)), \
decoder {:.0} ms ({} tokens, {:.1} ms/token), total {:.2} s (real-time factor {:.3})",
        t.language,
        whisper.threads(),
        loaded.as_secs_f64() * 1e3,
        mel_time.as_secs_f64() * 1e3,
        t.encode_seconds * 1e3,
        t.windows,
        t.decode_seconds * 1e3,
        t.decoded_tokens,
        t.decode_seconds * 1e3 / t.decoded_tokens.max(1) as f64,
        total,
        total / audio_s.max(1e-9),
    );
    Ok(())
}
