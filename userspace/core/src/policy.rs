//! The seam where a recording policy decides. The rules engine (tenants, users, devices, DDIs,
//! modes, on-demand control) plugs in here; until then [`RecordAnswered`] records every
//! answered call. A policy is pure: it sees call facts and in-call triggers, never packets,
//! and answers with decisions the engine carries out: start, stop, pause and resume.

use crate::event::{CallHandle, DtmfSource, Party, Side, SipTransport};
use crate::time::Timestamp;

/// What a policy knows about a call when it decides.
#[derive(Clone, Debug)]
pub struct CallFacts<'a> {
    pub call: CallHandle,
    pub sip_call_id: &'a str,
    pub caller: &'a Party,
    pub callee: &'a Party,
    pub transport: SipTransport,
    pub answered_at: Timestamp,
}

/// A decision and the reason for it, which the catalog keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub record: bool,
    pub reason: String,
}

/// Something seen during an answered call that a policy may act on (on-demand recording).
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    Dtmf {
        digit: char,
        side: Side,
        source: DtmfSource,
    },
}

/// What a policy asks of a running call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start recording (or resume, if paused).
    Start,
    /// Stop and finalise the recording; a later `Start` begins a new file.
    Stop,
    /// Keep the timeline running but write silence until `Resume`.
    Pause,
    Resume,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }
}

/// A policy's answer to a trigger: the action, why, and which party asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub action: Action,
    pub reason: String,
    pub requested_by: Option<Side>,
}

pub trait RecordingPolicy: Send {
    /// Called once when the call is answered (2xx to the INVITE).
    fn on_answer(&mut self, facts: &CallFacts<'_>) -> Decision;

    /// Called for each trigger seen in an answered call. The default ignores them.
    fn on_trigger(&mut self, _facts: &CallFacts<'_>, _trigger: &Trigger) -> Option<Command> {
        None
    }
}

/// The default: every answered call is recorded.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordAnswered;

impl RecordingPolicy for RecordAnswered {
    fn on_answer(&mut self, _facts: &CallFacts<'_>) -> Decision {
        Decision {
            record: true,
            reason: "default: record every answered call".into(),
        }
    }
}

/// Records nothing; useful for catalog-only runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordNothing;

impl RecordingPolicy for RecordNothing {
    fn on_answer(&mut self, _facts: &CallFacts<'_>) -> Decision {
        Decision {
            record: false,
            reason: "recording disabled".into(),
        }
    }
}
