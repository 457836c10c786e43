//! An energy gate that finds utterances in a stream, so that silence costs no encoder pass.
//!
//! The stream is cut into frames (20 ms by default). A frame is *loud* when its energy (dBFS) is
//! `threshold_db` above the noise floor and above `min_db`. The floor is the quietest frame of the
//! last `floor_window` frames (minimum statistics): speech dips between syllables and words, so the
//! floor stays at the noise under it, while a steady noise (engine, fan) becomes the new floor once
//! it has lasted one window. An
//! utterance starts after `onset` loud frames in a row, reaching back `pre_roll` frames for the
//! soft start of a word, and ends after `hangover` quiet frames, or when it reaches `max_frames`
//! (one 30 s window). Boundaries are absolute sample indices from the start of the stream.

/// Tuning of [`Vad`], in frames of `frame` samples.
#[derive(Clone, Debug, PartialEq)]
pub struct VadConfig {
    /// Samples per frame.
    pub frame: usize,
    /// How far above the noise floor a loud frame is, in dB.
    pub threshold_db: f32,
    /// Frames quieter than this (dBFS) are never loud, however low the floor.
    pub min_db: f32,
    /// Frames over which the quietest one is the noise floor.
    pub floor_window: usize,
    /// Loud frames in a row that start an utterance.
    pub onset: usize,
    /// Quiet frames in a row that end one.
    pub hangover: usize,
    /// Frames kept before the first loud one.
    pub pre_roll: usize,
    /// Longest utterance; a longer one is cut and a new one starts.
    pub max_frames: usize,
}

impl VadConfig {
    /// Settings for speech at `rate` Hz: 20 ms frames, 9 dB over the floor of the last 1.5 s and
    /// above -60 dBFS, 60 ms onset, 400 ms hangover, 200 ms pre-roll, 30 s at most.
    pub fn speech(rate: u32) -> VadConfig {
        let ms = |ms: u32| (rate as usize * ms as usize / 1000).max(1);
        let frame = ms(20);
        let frames = |ms_: u32| ms(ms_).div_ceil(frame);
        VadConfig {
            frame,
            threshold_db: 9.0,
            min_db: -60.0,
            floor_window: frames(1500),
            onset: frames(60),
            hangover: frames(400),
            pre_roll: frames(200),
            max_frames: frames(30_000),
        }
    }
}

/// What [`Vad::push`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VadEvent {
    /// An utterance began at this sample.
    Start(u64),
    /// The utterance that began at `start` ended at `end` (exclusive).
    End {
        /// Its first sample.
        start: u64,
        /// One past its last sample.
        end: u64,
    },
}

/// The voice-activity gate. Feed it samples with [`Vad::push`]; it keeps less than one frame.
#[derive(Clone, Debug)]
pub struct Vad {
    config: VadConfig,
    /// Sum of squares and count of the frame being filled.
    energy: f64,
    filled: usize,
    /// Index of the next frame.
    frame: u64,
    /// Energy (dBFS) of the last `floor_window` frames, a ring.
    history: Vec<f32>,
    /// Loud frames in a row.
    loud_run: usize,
    /// Quiet frames in a row inside an utterance.
    quiet_run: usize,
    /// The open utterance's first frame.
    open: Option<u64>,
    /// Frame where the last utterance ended (the pre-roll does not reach before it).
    last_end: u64,
}

impl Vad {
    /// A gate with the given tuning.
    pub fn new(config: VadConfig) -> Vad {
        Vad {
            energy: 0.0,
            filled: 0,
            frame: 0,
            history: Vec::with_capacity(config.floor_window.max(1)),
            loud_run: 0,
            quiet_run: 0,
            open: None,
            last_end: 0,
            config,
        }
    }

    /// Whether an utterance is open.
    pub fn in_speech(&self) -> bool {
        self.open.is_some()
    }

    /// The noise floor in dBFS, once a frame has been seen.
    pub fn noise_floor_db(&self) -> Option<f32> {
        self.history.iter().copied().reduce(f32::min)
    }

    /// Feeds samples; appends the boundaries they complete to `events`.
    pub fn push(&mut self, samples: &[f32], events: &mut Vec<VadEvent>) {
        for &s in samples {
            self.energy += f64::from(s) * f64::from(s);
            self.filled += 1;
            if self.filled == self.config.frame {
                let mean = self.energy / self.filled as f64;
                self.energy = 0.0;
                self.filled = 0;
                self.frame_done((10.0 * (mean + 1e-12).log10()) as f32, events);
            }
        }
    }

    /// Ends the stream: closes an open utterance at the last sample fed.
    pub fn finish(&mut self, events: &mut Vec<VadEvent>) {
        if let Some(start) = self.open.take() {
            let end = self.frame * self.config.frame as u64 + self.filled as u64;
            events.push(VadEvent::End {
                start: self.sample(start),
                end,
            });
        }
    }

    fn sample(&self, frame: u64) -> u64 {
        frame * self.config.frame as u64
    }

    fn frame_done(&mut self, db: f32, events: &mut Vec<VadEvent>) {
        let c = &self.config;
        let t = self.frame;
        self.frame += 1;
        let floor = self.noise_floor_db().unwrap_or(db);
        let loud = db >= c.min_db && db >= floor + c.threshold_db;
        let window = c.floor_window.max(1);
        if self.history.len() < window {
            self.history.push(db);
        } else {
            self.history[(t % window as u64) as usize] = db;
        }

        match self.open {
            None if loud => {
                self.loud_run += 1;
                if self.loud_run >= c.onset {
                    let first_loud = t + 1 - self.loud_run as u64;
                    let start = first_loud.saturating_sub(c.pre_roll as u64).max(self.last_end);
                    self.open = Some(start);
                    self.quiet_run = 0;
                    events.push(VadEvent::Start(self.sample(start)));
                }
            }
            None => self.loud_run = 0,
            Some(start) => {
                self.quiet_run = if loud { 0 } else { self.quiet_run + 1 };
                let length = t + 1 - start;
                if self.quiet_run >= c.hangover || length >= c.max_frames as u64 {
                    // End after the hangover's quiet frames (they hold the word's tail), or at the cut.
                    let end = t + 1;
                    events.push(VadEvent::End {
                        start: self.sample(start),
                        end: self.sample(end),
                    });
                    self.open = None;
                    self.last_end = end;
                    self.loud_run = 0;
                    if loud {
                        // Cut at the maximum length while still loud: speech continues.
                        self.open = Some(end);
                        events.push(VadEvent::Start(self.sample(end)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [-1, 1).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    const RATE: u32 = 16_000;

    /// Speech-like sound: a 140 Hz voice with harmonics, syllables at 4 Hz, plus background noise.
    fn speech(seconds: f32, noise: f32, rng: &mut Lcg) -> Vec<f32> {
        let n = (seconds * RATE as f32) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                let syllable = 0.55 + 0.45 * (std::f32::consts::TAU * 4.0 * t).sin();
                let voice: f32 = (1..6)
                    .map(|h| (std::f32::consts::TAU * 140.0 * h as f32 * t).sin() / h as f32)
                    .sum();
                0.15 * syllable * voice + noise * rng.next()
            })
            .collect()
    }

    fn silence(seconds: f32, noise: f32, rng: &mut Lcg) -> Vec<f32> {
        (0..(seconds * RATE as f32) as usize)
            .map(|_| noise * rng.next())
            .collect()
    }

    /// Runs the gate over `audio` fed in uneven pieces; returns the (start, end) spans in seconds.
    fn spans(audio: &[f32]) -> Vec<(f32, f32)> {
        let mut vad = Vad::new(VadConfig::speech(RATE));
        let mut events = Vec::new();
        for piece in audio.chunks(777) {
            vad.push(piece, &mut events);
        }
        vad.finish(&mut events);
        let mut out = Vec::new();
        let mut open = None;
        for e in events {
            match e {
                VadEvent::Start(s) => {
                    assert!(open.is_none(), "two starts");
                    open = Some(s);
                }
                VadEvent::End { start, end } => {
                    assert_eq!(open.take(), Some(start));
                    out.push((start as f32 / RATE as f32, end as f32 / RATE as f32));
                }
            }
        }
        out
    }

    #[test]
    fn quiet_speech_over_a_quiet_floor_is_heard() {
        // A distant talker: syllables near -57 dBFS over a -79 dBFS floor. Such speech (peaks
        // -50 dBFS) went unheard while frames below -55 dBFS could never be loud.
        let mut rng = Lcg(5);
        let noise = 0.0002;
        let mut audio = silence(1.0, noise, &mut rng);
        let voice = speech(1.5, 0.0, &mut rng);
        audio.extend(voice.iter().map(|s| s * 0.012 + noise * rng.next()));
        audio.extend(silence(1.5, noise, &mut rng));
        let found = spans(&audio);
        assert_eq!(found.len(), 1, "{found:?}");
        let (s, e) = found[0];
        assert!((0.7..=1.1).contains(&s) && (2.4..=3.0).contains(&e), "{found:?}");
    }

    #[test]
    fn finds_utterances_between_silences() {
        let mut rng = Lcg(7);
        let noise = 0.002; // about -57 dBFS
        let mut audio = silence(1.0, noise, &mut rng);
        audio.extend(speech(1.5, noise, &mut rng)); // 1.0 .. 2.5
        audio.extend(silence(1.2, noise, &mut rng));
        audio.extend(speech(0.8, noise, &mut rng)); // 3.7 .. 4.5
        audio.extend(silence(2.0, noise, &mut rng));
        let found = spans(&audio);
        assert_eq!(found.len(), 2, "{found:?}");
        for ((start, end), (s, e)) in found.iter().zip([(1.0, 2.5), (3.7, 4.5)]) {
            assert!(
                *start <= s && *start >= s - 0.25,
                "start {start} for speech at {s}"
            );
            assert!(*end >= e && *end <= e + 0.5, "end {end} for speech ending at {e}");
        }
    }

    #[test]
    fn silence_and_steady_noise_make_no_utterance() {
        let mut rng = Lcg(3);
        assert!(spans(&silence(3.0, 0.0, &mut rng)).is_empty());
        assert!(spans(&silence(3.0, 0.01, &mut rng)).is_empty());
        // A step in background noise (an engine starting) is absorbed into the floor; speech on top
        // of the louder noise is still found.
        let mut audio = silence(1.0, 0.001, &mut rng);
        audio.extend(silence(12.0, 0.03, &mut rng));
        let before = spans(&audio).len();
        assert!(before <= 1, "{:?}", spans(&audio));
        audio.extend(speech(1.0, 0.03, &mut rng));
        audio.extend(silence(1.0, 0.03, &mut rng));
        let found = spans(&audio);
        let last = found.last().copied().unwrap();
        assert!(
            found.len() == before + 1 && (last.0 - 13.0).abs() < 0.3,
            "{found:?}"
        );
    }

    #[test]
    fn long_speech_is_cut_into_windows_and_the_stream_end_closes() {
        let mut rng = Lcg(11);
        let audio = speech(65.0, 0.001, &mut rng);
        let found = spans(&audio);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().all(|(s, e)| e - s <= 30.0 + 1e-3));
        assert_eq!(found[2].1, 65.0);
        assert!(found.windows(2).all(|w| w[0].1 == w[1].0));
    }
}
