//! The audio front end against faster-whisper (tests/fixtures/whisper/make_mel_reference.py): the
//! mel filter banks, and the log-mel spectrogram of whisper.cpp's JFK sample read through
//! `load_audio` (skipped when jfk.wav is not fetched, unless EDGELM_REQUIRE_MODELS is set).

mod common;

use std::path::Path;

use edgelm::audio::{LogMel, load_audio, mel_filters, read_wav};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/whisper");

/// Largest difference allowed from faster-whisper's log-mel values (the bound). The
/// spectrogram's values span about 2 (8 in log10, divided by 4).
const MEL_TOLERANCE: f32 = 1e-4;

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn filter_banks_match_faster_whisper() {
    let reference = json("mel_filters.json");
    for n_mels in [80usize, 128] {
        let entry = &reference[n_mels.to_string()];
        let bins = entry["bins"].as_u64().unwrap() as usize;
        assert_eq!(bins, 201);
        let mut expect = vec![0.0f32; n_mels * bins];
        let bands = entry["bands"].as_array().unwrap();
        assert_eq!(bands.len(), n_mels);
        for (m, band) in bands.iter().enumerate() {
            let first = band["first"].as_u64().unwrap() as usize;
            for (k, v) in band["values"].as_array().unwrap().iter().enumerate() {
                expect[m * bins + first + k] = v.as_f64().unwrap() as f32;
            }
        }
        let ours = mel_filters(16_000, 400, n_mels);
        // f64 arithmetic rounded to f32 on both sides: equal up to the last bit of the rounding.
        let worst = ours
            .iter()
            .zip(&expect)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1e-6))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "{n_mels} bands: relative error {worst}");
        // Zeros in the same places: a band's triangle covers exactly the reference's bins.
        assert!(
            ours.iter().zip(&expect).all(|(a, b)| (*a == 0.0) == (*b == 0.0)),
            "{n_mels} bands: zeros differ"
        );
    }
}

#[test]
fn log_mel_of_jfk_matches_faster_whisper() {
    let Some(path) = common::fetched("audio/jfk.wav") else {
        return;
    };
    let meta = json("mel.json");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(read_wav(&bytes).unwrap().rate, 16_000);
    let samples = load_audio(&path).unwrap();
    assert_eq!(samples.len() as u64, meta["samples"].as_u64().unwrap());

    let mut worst_overall = 0.0f32;
    let mut mel = Vec::new();
    for slice in meta["slices"].as_array().unwrap() {
        let n_mels = slice["n_mels"].as_u64().unwrap() as usize;
        let padding = slice["padding"].as_u64().unwrap() as usize;
        let first = slice["first"].as_u64().unwrap() as usize;
        let count = slice["frames"].as_u64().unwrap() as usize;
        let file = Path::new(FIXTURES).join(slice["file"].as_str().unwrap());
        let expect: Vec<f32> = std::fs::read(&file)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(expect.len(), n_mels * count);

        let frames = LogMel::new(n_mels).compute(&samples, padding, &mut mel);
        assert_eq!(frames as u64, slice["total_frames"].as_u64().unwrap());
        let mut worst = (0.0f32, 0, 0);
        for m in 0..n_mels {
            for t in 0..count {
                let d = (mel[m * frames + first + t] - expect[m * count + t]).abs();
                if d > worst.0 {
                    worst = (d, m, first + t);
                }
            }
        }
        eprintln!(
            "{}: max abs error {:.2e} (band {}, frame {})",
            file.display(),
            worst.0,
            worst.1,
            worst.2
        );
        assert!(worst.0 <= MEL_TOLERANCE, "{}: {worst:?}", file.display());
        worst_overall = worst_overall.max(worst.0);
    }
    eprintln!("log-mel max abs error over every slice: {worst_overall:.2e}");
}

#[test]
fn the_gate_finds_the_speech_of_jfk() {
    use edgelm::audio::{Vad, VadConfig, VadEvent};
    let Some(path) = common::fetched("audio/jfk.wav") else {
        return;
    };
    let samples = load_audio(&path).unwrap();
    let mut vad = Vad::new(VadConfig::speech(16_000));
    let mut events = Vec::new();
    for piece in samples.chunks(1600) {
        vad.push(piece, &mut events);
    }
    vad.finish(&mut events);
    let spans: Vec<(f32, f32)> = events
        .iter()
        .filter_map(|e| match *e {
            VadEvent::End { start, end } => Some((start as f32 / 16_000.0, end as f32 / 16_000.0)),
            VadEvent::Start(_) => None,
        })
        .collect();
    eprintln!("JFK utterances (s): {spans:?}");
    // faster-whisper's segments span 0.0-10.6 s of the 11 s clip, with pauses between phrases.
    let speech: f32 = spans.iter().map(|(s, e)| e - s).sum();
    assert!(
        !spans.is_empty() && spans[0].0 < 1.0 && spans.last().unwrap().1 > 10.0,
        "{spans:?}"
    );
    assert!(speech < 10.6, "the pauses are speech too: {spans:?}");
}
