//! The seam where a recording policy decides. The rules engine (tenants, users, devices, DDIs,
//! modes, on-demand control) plugs in here; until then [`RecordAnswered`] records every
//! answered call. A policy is pure: it sees call facts, never packets.

use crate::event::{CallHandle, Party, SipTransport};
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

pub trait RecordingPolicy: Send {
    /// Called once when the call is answered (2xx to the INVITE).
    fn on_answer(&mut self, facts: &CallFacts<'_>) -> Decision;
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
