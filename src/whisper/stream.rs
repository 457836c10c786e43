//! Live transcription of a stream of 16 kHz samples: the energy gate ([`Vad`]) finds utterances,
//! so that silence costs no encoder pass; each finished utterance (cut at 30 s by the gate) is
//! transcribed as a whole, and an utterance still open can be transcribed again as it grows
//! (partial text).
//!
//! ```text
//! push(samples) ─► Vad ─► Start: keep the audio from here (with the gate's pre-roll)
//!                      ─► End:   transcribe(utterance) ─► StreamEvent::Final
//!               ─► open utterance, `partial_every` new samples ─► transcribe ─► StreamEvent::Partial
//! ```

use std::time::{Duration, Instant};

use super::transcribe::language_token;
use super::{TranscribeOptions, Whisper, WhisperError, transcribe, whisper_config};
use crate::audio::mel::FASTER_WHISPER_PADDING;
use crate::audio::{LogMel, Vad, VadConfig, VadEvent, WHISPER_RATE};

/// How a [`Stream`] finds and transcribes utterances.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Decoding choices for each utterance.
    pub transcribe: TranscribeOptions,
    /// The energy gate (at 16 kHz); its `max_frames` cuts long utterances.
    pub vad: VadConfig,
    /// Transcribe an open utterance again after this many new samples (0: no partial text).
    pub partial_every: usize,
}

impl Default for StreamOptions {
    /// The gate's speech settings (30 s at most per utterance), partial text every second.
    fn default() -> Self {
        StreamOptions {
            transcribe: TranscribeOptions::default(),
            vad: VadConfig::speech(WHISPER_RATE),
            partial_every: WHISPER_RATE as usize,
        }
    }
}

/// Text found in the stream. Times are seconds from the start of the stream.
#[derive(Clone, Debug)]
pub enum StreamEvent {
    /// The text of the utterance still open, so far.
    Partial {
        /// Where the utterance began.
        start: f64,
        /// Its text so far (may be empty).
        text: String,
    },
    /// A finished utterance.
    Final {
        /// Where it began.
        start: f64,
        /// Where the gate closed it (after its quiet hangover, or at the 30 s cut).
        end: f64,
        /// Its text (empty when Whisper heard no speech in it).
        text: String,
        /// When the samples that closed it were handed to [`Stream::push`]: the end of speech
        /// as the gate saw it.
        detected: Instant,
    },
}

/// Counts and time of a stream so far.
#[derive(Clone, Debug, Default)]
pub struct StreamStats {
    /// Samples pushed.
    pub samples: u64,
    /// Time spent in [`Stream::push`] and [`Stream::finish`] (gate, spectrogram, encoder,
    /// decoder).
    pub compute: Duration,
    /// Utterances the gate closed and that were transcribed.
    pub utterances: usize,
    /// Utterances dropped because they overlapped audio pushed with [`Stream::push_unheard`].
    pub unheard: usize,
    /// Transcriptions of open utterances.
    pub partials: usize,
    /// Encoder passes, partial ones included.
    pub encoder_passes: usize,
}

impl StreamStats {
    /// Seconds of audio pushed.
    pub fn audio_seconds(&self) -> f64 {
        self.samples as f64 / f64::from(WHISPER_RATE)
    }
}

/// A live transcription: a Whisper runner, the gate, and the audio of the open utterance.
pub struct Stream<'m> {
    whisper: Whisper<'m>,
    options: StreamOptions,
    /// `options.transcribe` for partial text: greedy, no fallback (a draft the final text
    /// replaces should cost one decoder pass).
    draft: TranscribeOptions,
    logmel: LogMel,
    mel: Vec<f32>,
    vad: Vad,
    events: Vec<VadEvent>,
    /// Recent samples: the open utterance, or (between utterances) as much as the gate's
    /// pre-roll may reach back.
    audio: Vec<f32>,
    /// Stream index of `audio[0]`.
    audio_start: u64,
    /// Start of the open utterance.
    open: Option<u64>,
    /// Stream index up to which the open utterance was last transcribed.
    partial_at: u64,
    /// The open utterance overlaps unheard audio: it is dropped when it ends.
    deaf: bool,
    stats: StreamStats,
}

impl<'m> Stream<'m> {
    /// A stream transcribed by `whisper`.
    pub fn new(whisper: Whisper<'m>, options: StreamOptions) -> Result<Self, WhisperError> {
        let cfg = whisper_config(whisper.model().config());
        // A language the model does not know fails now, not after the first utterance.
        if let Some(code) = &options.transcribe.language {
            language_token(cfg, code)?;
        }
        let n_mels = cfg.n_mels;
        let filters = whisper.model().whisper()?.mel_filters.to_vec();
        let logmel = LogMel::with_filters(filters, n_mels).map_err(|e| WhisperError::Input(e.to_string()))?;
        let draft = TranscribeOptions {
            beam_size: 1,
            temperatures: vec![0.0],
            ..options.transcribe.clone()
        };
        Ok(Stream {
            whisper,
            draft,
            vad: Vad::new(options.vad.clone()),
            options,
            logmel,
            mel: Vec::new(),
            events: Vec::new(),
            audio: Vec::new(),
            audio_start: 0,
            open: None,
            partial_at: 0,
            deaf: false,
            stats: StreamStats::default(),
        })
    }

    /// The runner (threads, model).
    pub fn whisper(&self) -> &Whisper<'m> {
        &self.whisper
    }

    /// Counts and time so far.
    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// Feeds 16 kHz mono samples (values beyond ±1 are clipped) and appends what they complete
    /// to `out`: the final text of each utterance they close, then, when `partial` allows it
    /// and `partial_every` samples have come since the last time, the text of the open one.
    pub fn push(
        &mut self,
        samples: &[f32],
        partial: bool,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), WhisperError> {
        self.feed(samples, true, partial, out)
    }

    /// Feeds samples that must not be transcribed (captured while the assistant's own voice
    /// played): the gate hears them, so its noise floor stays right, but an utterance that
    /// overlaps them is dropped when it ends.
    pub fn push_unheard(&mut self, samples: &[f32]) -> Result<(), WhisperError> {
        self.feed(samples, false, false, &mut Vec::new())
    }

    fn feed(
        &mut self,
        samples: &[f32],
        heard: bool,
        partial: bool,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), WhisperError> {
        let started = Instant::now();
        let from = self.audio.len();
        self.audio.extend(samples.iter().map(|s| s.clamp(-1.0, 1.0)));
        self.stats.samples += samples.len() as u64;
        self.deaf |= !heard && self.open.is_some();
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        self.vad.push(&self.audio[from..], &mut events);
        let result = self.boundaries(&events, started, heard, out).and_then(|()| {
            self.forget();
            match self.open {
                Some(start)
                    if partial
                        && !self.deaf
                        && self.options.partial_every > 0
                        && self.stats.samples - self.partial_at >= self.options.partial_every as u64 =>
                {
                    self.partial_at = self.stats.samples;
                    self.stats.partials += 1;
                    let text = self.transcribe(start, self.stats.samples, true)?;
                    out.push(StreamEvent::Partial {
                        start: seconds(start),
                        text,
                    });
                    Ok(())
                }
                _ => Ok(()),
            }
        });
        self.events = events;
        self.stats.compute += started.elapsed();
        result
    }

    /// Ends the stream: the open utterance, if any, is closed at the last sample and its final
    /// text appended to `out`.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), WhisperError> {
        let started = Instant::now();
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        self.vad.finish(&mut events);
        let result = self.boundaries(&events, started, true, out);
        self.events = events;
        self.stats.compute += started.elapsed();
        result
    }

    /// Opens and closes utterances at the gate's boundaries (`heard`: in audio to transcribe).
    fn boundaries(
        &mut self,
        events: &[VadEvent],
        detected: Instant,
        heard: bool,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), WhisperError> {
        for &event in events {
            match event {
                VadEvent::Start(start) => {
                    let start = start.max(self.audio_start);
                    self.open = Some(start);
                    self.partial_at = start;
                    self.deaf = !heard;
                }
                VadEvent::End { .. } if self.deaf || !heard => {
                    self.open = None;
                    self.deaf = false;
                    self.stats.unheard += 1;
                }
                VadEvent::End { start, end } => {
                    self.open = None;
                    self.stats.utterances += 1;
                    let text = self.transcribe(start, end, false)?;
                    out.push(StreamEvent::Final {
                        start: seconds(start),
                        end: seconds(end),
                        text,
                        detected,
                    });
                }
            }
        }
        Ok(())
    }

    /// Drops the samples no utterance can need any more.
    fn forget(&mut self) {
        let c = &self.options.vad;
        let reach = ((c.onset + c.pre_roll + 1) * c.frame) as u64;
        let keep_from = self.open.unwrap_or(self.stats.samples.saturating_sub(reach));
        if keep_from > self.audio_start {
            let drop = ((keep_from - self.audio_start) as usize).min(self.audio.len());
            self.audio.drain(..drop);
            self.audio_start += drop as u64;
        }
    }

    /// The text of the samples `start..end` (stream indices, clamped to what is kept); a
    /// `draft` (partial text) is decoded greedily.
    fn transcribe(&mut self, start: u64, end: u64, draft: bool) -> Result<String, WhisperError> {
        let at = |i: u64| (i.saturating_sub(self.audio_start) as usize).min(self.audio.len());
        let (a, b) = (at(start), at(end));
        if a >= b {
            return Ok(String::new());
        }
        let frames = self
            .logmel
            .compute(&self.audio[a..b], FASTER_WHISPER_PADDING, &mut self.mel);
        // As `edgelm transcribe` does (faster-whisper): the last frame comes from the padding.
        let t = transcribe(
            &mut self.whisper,
            &self.mel,
            frames,
            frames.saturating_sub(1),
            if draft {
                &self.draft
            } else {
                &self.options.transcribe
            },
        )?;
        self.stats.encoder_passes += t.windows;
        Ok(t.text())
    }
}

/// Seconds at a stream index.
fn seconds(sample: u64) -> f64 {
    sample as f64 / f64::from(WHISPER_RATE)
}
