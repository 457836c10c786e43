//! `edgelm assist --asr WHISPER --llm CHAT [AUDIO…]`: an offline voice assistant. It listens on a
//! stream (`cli::listen`), transcribes each utterance with Whisper, answers it with the chat model
//! (one conversation across utterances, as `edgelm chat` holds it), prints the answer on stdout as
//! it is generated, optionally speaks it through a command (`--tts`), and prints the latency of
//! each stage on stderr.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgelm::whisper::stream::{Stream, StreamEvent, StreamOptions};
use edgelm::whisper::{TranscribeOptions, Whisper, WhisperOptions};

use super::chat::{Conversation, TurnOptions};
use super::common::{LoopGuardArgs, SamplingArgs, SessionArgs, load};
use super::listen::{Listener, Partials, RawArgs, Source, listen, report};

/// What the assistant is told before the first utterance, unless `--system` says otherwise.
const SYSTEM: &str = "You are a voice assistant. Answer in one or two short sentences.";

/// Arguments of `edgelm assist`.
#[derive(clap::Args)]
pub struct AssistArgs {
    /// The packed Whisper model file (speech recognition).
    #[arg(long)]
    pub asr: PathBuf,
    /// The packed chat model file (answers).
    #[arg(long)]
    pub llm: PathBuf,
    /// Where to listen: `-` for a live stream on stdin (a WAV stream, `arecord -f S16_LE -r
    /// 16000 -c 1`, or headerless PCM laid out as --raw-format, --rate and --channels say), or
    /// WAV files, played one after another with a second of silence between.
    #[arg(default_value = "-")]
    pub audio: Vec<PathBuf>,
    #[command(flatten)]
    pub raw: RawArgs,
    /// A shell command that speaks each answer, given as its standard input (`sh -c`), e.g.
    /// `espeak-ng --stdout | aplay`. On the live stream (`-`), what is heard while it runs (the
    /// assistant's own voice) is not transcribed.
    #[arg(long)]
    pub tts: Option<String>,
    /// Spoken language code (`en`, ...); detected per utterance when absent.
    #[arg(long)]
    pub language: Option<String>,
    /// System prompt of the conversation.
    #[arg(long, default_value = SYSTEM)]
    pub system: String,
    /// Most tokens per answer.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub loop_guard: LoopGuardArgs,
}

/// Listens, transcribes, answers, speaks, until the audio ends.
pub fn run(args: AssistArgs) -> anyhow::Result<()> {
    let live = matches!(args.audio.as_slice(), [one] if one.as_os_str() == "-");
    if let Some(option) = args.raw.given().filter(|_| !live) {
        anyhow::bail!("{option} describes the live stream (`-`), not WAV files");
    }
    let raw = args.raw.format()?;
    let (asr, _) = load(&args.asr)?;
    let (llm, _) = load(&args.llm)?;
    let whisper = Whisper::new(
        &asr,
        &WhisperOptions {
            threads: super::common::threads("-t", args.session.threads, args.session.force_threads)?,
            ..Default::default()
        },
    )?;
    let options = StreamOptions {
        transcribe: TranscribeOptions {
            language: args.language.clone(),
            ..Default::default()
        },
        ..StreamOptions::default()
    };
    let mut stream = Stream::new(whisper, options)?;
    let turn = TurnOptions {
        max_tokens: args.max_tokens,
        // A full context starts a new conversation, as `chat` does without --keep.
        keep: None,
        special: false,
        loop_guard: args.loop_guard.guard(true)?,
    };
    let system = Some(args.system.as_str()).filter(|s| !s.is_empty());
    let mut chat = Conversation::new(&llm, &args.session, &args.sampling, system, turn)?;
    let source = if live {
        Source::Stream {
            path: "-".into(),
            raw,
        }
    } else {
        Source::Wavs(args.audio.clone())
    };
    let listener = Listener::start(source)?;
    eprintln!(
        "edgelm assist: listening ({} speech, {} answers, {} threads)",
        args.asr.display(),
        args.llm.display(),
        chat.session.threads()
    );
    let mut partials = Partials::new();
    let result = listen(&mut stream, &listener, |event| match event {
        StreamEvent::Partial { text, .. } => {
            partials.show(&text);
            Ok(())
        }
        StreamEvent::Final { text, detected, .. } => {
            partials.clear();
            if text.is_empty() {
                return Ok(());
            }
            let heard = detected.elapsed();
            eprintln!("heard: {text}");
            let deaf = live.then_some(&listener);
            answer(&mut chat, &text, args.tts.as_deref(), deaf, heard)
        }
    });
    partials.clear();
    report(&stream);
    result
}

/// Answers one utterance on stdout, speaks it (telling `deaf`, the live stream, when), and
/// prints the latency of each stage.
fn answer(
    chat: &mut Conversation<'_>,
    text: &str,
    tts: Option<&str>,
    deaf: Option<&Listener>,
    heard: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut first = None;
    let mut spoken = String::new();
    let mut stdout = std::io::stdout();
    let mut written = Ok(());
    let stats = chat.reply(text, None, |piece| {
        first.get_or_insert_with(|| start.elapsed());
        spoken.push_str(piece);
        written = stdout.write_all(piece.as_bytes()).and_then(|()| stdout.flush());
        if written.is_err() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    // A closed stdout ends the assistant (quietly, see main).
    written?;
    writeln!(stdout)?;
    let total = start.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut line = format!(
        "[latency: end of speech → transcript {:.0} ms, transcript → first answer token {}, answer {:.0} ms ({} tokens)",
        ms(heard),
        first.map_or("-".into(), |d| format!("{:.0} ms", ms(d))),
        ms(total),
        stats.map_or(0, |s| s.generated_tokens),
    );
    if let Some(command) = tts {
        let started = Instant::now();
        let spoke = speak(command, spoken.trim());
        if let Some(listener) = deaf {
            listener.deafen(started, Instant::now());
        }
        match spoke {
            Ok(()) => line.push_str(&format!(", tts {:.0} ms", ms(started.elapsed()))),
            Err(e) => eprintln!("warning: the --tts command failed: {e:#}"),
        }
    }
    eprintln!("{line}]");
    Ok(())
}

/// Runs `command` with `sh -c`, `text` on its standard input, and waits for it.
fn speak(command: &str, text: &str) -> anyhow::Result<()> {
    let mut child = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start `sh -c {command:?}`: {e}"))?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    // A command that does not read its input (or exits early) is judged by its exit status.
    let _ = stdin
        .write_all(text.as_bytes())
        .and_then(|()| stdin.write_all(b"\n"));
    drop(stdin);
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "`{command}` exited with {status}");
    Ok(())
}
