//! One recording's lifecycle: started on a decision, paused and resumed on request, stopped
//! at the call's end, its time limit or its maximum length. It owns the stereo timeline and
//! turns what the timeline hands out into [`Event::RecordingAudio`] and
//! [`Event::RecordingSilence`], and at the end says honestly what the file holds.

use std::collections::VecDeque;

use crate::event::{ChannelReport, Event, RecordingOutcome, RecordingState, StopReason};
use crate::media::{AudioSink, Placement, Timeline, TimelineConfig};
use crate::time::Timestamp;
use crate::vocab::{CallHandle, RecordingFormat, RecordingHandle, Side};

/// Turns timeline output into events, coalesced into the last event of the same recording.
struct EventSink<'a> {
    rec: RecordingHandle,
    events: &'a mut VecDeque<Event>,
}

impl AudioSink for EventSink<'_> {
    fn audio_room(&mut self, n: usize) -> &mut [i16] {
        let joins = matches!(
            self.events.back(),
            Some(Event::RecordingAudio { rec, .. }) if *rec == self.rec
        );
        if !joins {
            self.events.push_back(Event::RecordingAudio {
                rec: self.rec,
                samples: Vec::with_capacity(n),
            });
        }
        let Some(Event::RecordingAudio { samples, .. }) = self.events.back_mut() else {
            unreachable!("an audio event was just found or pushed");
        };
        let start = samples.len();
        samples.resize(start + n, 0);
        &mut samples[start..]
    }

    fn silence(&mut self, frames: u64) {
        if let Some(Event::RecordingSilence { rec, frames: f }) = self.events.back_mut()
            && *rec == self.rec
        {
            *f += frames;
            return;
        }
        self.events.push_back(Event::RecordingSilence {
            rec: self.rec,
            frames,
        });
    }
}

pub struct Recording {
    pub handle: RecordingHandle,
    pub call: CallHandle,
    pub start: Timestamp,
    pub format: RecordingFormat,
    /// While paused the timeline runs on, but silence is placed ([`Recording::pause`]).
    paused: bool,
    /// What stops the recording at its frame limit, and when that is nominally: the call's
    /// time limit or the maximum length.
    limit: Limit,
    timeline: Timeline,
    /// Why audio of a side could not be used, once per reason.
    problems: Vec<(Side, String)>,
    /// Another worker records it ([`crate::vocab::Shard`]): this one only knows that it
    /// runs, for the decisions about the other legs of its conversation.
    ghost: bool,
}

/// A recording's length limit: so many frames, for this reason, nominally ending then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub frames: u64,
    pub reason: StopReason,
    pub end: Timestamp,
}

impl Recording {
    pub fn new(
        handle: RecordingHandle,
        call: CallHandle,
        start: Timestamp,
        format: RecordingFormat,
        mut timeline: TimelineConfig,
        limit: Limit,
    ) -> Recording {
        timeline.limit_frames = Some(limit.frames);
        Recording {
            handle,
            call,
            start,
            format,
            paused: false,
            limit,
            timeline: Timeline::new(timeline, start),
            problems: Vec::new(),
            ghost: false,
        }
    }

    /// The recording of a call another worker owns: it runs, and hands nothing out.
    pub fn set_ghost(&mut self) {
        self.ghost = true;
    }

    pub fn is_ghost(&self) -> bool {
        self.ghost
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    pub fn sample_rate(&self) -> u32 {
        self.timeline.sample_rate()
    }

    /// Frames handed out so far.
    pub fn frames(&self) -> u64 {
        self.timeline.emitted()
    }

    pub fn at_limit(&self) -> bool {
        self.timeline.at_limit()
    }

    /// Why the recording stops at its limit.
    pub fn limit_reason(&self) -> StopReason {
        self.limit.reason
    }

    /// Where the recording is at capture time `ts`, in frames.
    pub fn frame_at(&self, ts: Timestamp) -> i64 {
        self.timeline.frame_at(ts)
    }

    /// Places decoded audio of `side` (see [`Timeline::place`]); silence while paused.
    pub fn place(
        &mut self,
        side: Side,
        source: u64,
        pos: i64,
        arrival: Timestamp,
        pcm: &[i16],
        events: &mut VecDeque<Event>,
    ) -> Placement {
        let mut sink = EventSink {
            rec: self.handle,
            events,
        };
        self.timeline
            .place(side, source, pos, arrival, pcm, &mut sink)
    }

    /// Pauses at `ts`: silence in the file from where the recording is then.
    pub fn pause(&mut self, ts: Timestamp) {
        self.paused = true;
        let at = self.timeline.frame_at(ts);
        self.timeline.mute_from(at);
    }

    /// Resumes at `ts`.
    pub fn resume(&mut self, ts: Timestamp) {
        self.paused = false;
        let at = self.timeline.frame_at(ts);
        self.timeline.unmute_at(at);
    }

    /// Seconds into the file of capture time `ts`: where events sit on the recording.
    pub fn offset_s(&self, ts: Timestamp) -> f64 {
        self.timeline.frame_at(ts).max(0) as f64 / self.timeline.sample_rate() as f64
    }

    /// The sender of `side` said it is silent (comfort noise).
    pub fn mark_quiet(&mut self, side: Side, arrival: Timestamp) {
        self.timeline.mark_quiet(side, arrival);
    }

    /// A stream of `side` carried audio that cannot be in the file, and why.
    pub fn note_problem(&mut self, side: Side, why: &str) {
        if !self.problems.iter().any(|(s, w)| *s == side && w == why) && self.problems.len() < 8 {
            self.problems.push((side, why.to_string()));
        }
    }

    /// Hands out what is final, once at least `chunk` frames are.
    pub fn drain(
        &mut self,
        now: Timestamp,
        last_activity: Timestamp,
        chunk: u64,
        events: &mut VecDeque<Event>,
    ) {
        if self.ghost {
            return;
        }
        let mut sink = EventSink {
            rec: self.handle,
            events,
        };
        self.timeline.drain(now, last_activity, chunk, &mut sink);
    }

    /// Finishes the file at `end` (or at the limit) and reports what it holds.
    pub fn stop(mut self, end: Timestamp, reason: StopReason, events: &mut VecDeque<Event>) {
        if self.ghost {
            return;
        }
        let end = end.max(self.start);
        let mut sink = EventSink {
            rec: self.handle,
            events,
        };
        // A call that ended keeps all its audio; a stop on request or at a limit keeps what
        // came before it.
        let cut = reason != StopReason::CallEnded;
        let frames = self.timeline.finish(end, cut, &mut sink);
        let (end, reason) = if self.timeline.at_limit() {
            (self.limit.end, self.limit.reason)
        } else {
            (end, reason)
        };
        let outcome = self.outcome();
        events.push_back(Event::RecordingStopped {
            rec: self.handle,
            call: self.call,
            ts: end,
            frames,
            reason,
            outcome,
        });
    }

    /// Complete only when audio was decoded; otherwise why not.
    fn outcome(&self) -> RecordingOutcome {
        let channels = [Side::Caller, Side::Callee].map(|side| {
            let f = self.timeline.figures(side);
            ChannelReport {
                heard_frames: f.placed_frames - f.muted_frames,
                slips: f.slips,
                slip_frames: f.slip_frames,
                shifts: f.shifts,
                shift_frames: f.shift_frames,
                reanchors: f.reanchors,
            }
        });
        let why: Vec<String> = self
            .problems
            .iter()
            .map(|(side, w)| format!("{}: {w}", side.as_str()))
            .collect();
        let heard = channels.iter().any(|c| c.heard_frames > 0);
        let state = match (heard, why.is_empty()) {
            (true, true) => RecordingState::Complete,
            (true, false) => RecordingState::Partial,
            (false, _) => RecordingState::NoAudio,
        };
        let reason = if !why.is_empty() {
            Some(why.join("; "))
        } else if !heard {
            Some("no RTP audio reached this recording".to_string())
        } else {
            None
        };
        RecordingOutcome {
            state,
            reason,
            channels,
        }
    }
}
