//! The seam where a recording policy decides. [`RecordAnswered`] records every answered call;
//! [`RulesPolicy`] applies [`Rules`] (tenants, users, devices, DDIs, modes, on-demand control,
//! see `docs/rules.md`). A policy is pure: it sees call facts and in-call triggers, never
//! packets, and answers with decisions the engine carries out: start, stop, pause and resume.
//! Its input side, [`signals`], reads the recording commands a SIP message carries (the INFO
//! record key, media control), which the dialogs hand on as triggers.

mod control;
pub mod decide;
#[cfg(test)]
mod fixture;
pub mod rules;
pub mod signals;

use std::net::IpAddr;

pub use crate::servers::ServerEvidence;
use crate::time::Timestamp;
use crate::vocab::{Action, CallHandle, DtmfSource, Party, Side, SipTransport};

pub use control::RulesPolicy;
pub use decide::{CallClass, Direction, Endpoint, classify, decide};
pub use rules::{
    Ddi, DdiOption, Device, IpNet, IpNetError, LegDirection, Mode, Network, Networked, Networks,
    OnDemand, RecordOn, RoleRule, RuleDirection, RuleOrigin, Rules, Settings, Tenant,
    TransferPolicy, User,
};
pub use signals::InfoRecordHeader;

/// What a policy knows about a call when it decides.
#[derive(Clone, Debug)]
pub struct CallFacts<'a> {
    pub call: CallHandle,
    pub sip_call_id: &'a str,
    pub caller: &'a Party,
    pub callee: &'a Party,
    pub transport: SipTransport,
    pub answered_at: Timestamp,
    /// User part of the initial INVITE's Request-URI: the number dialled (a DDI on inbound
    /// calls). Empty when it has none; the To user stands in for it then.
    pub request_user: &'a str,
    /// Where each party's signalling was seen: the INVITE's source and destination.
    pub caller_addr: IpAddr,
    pub callee_addr: IpAddr,
    /// The Contact URI each party sent, if seen.
    pub caller_contact: Option<&'a str>,
    pub callee_contact: Option<&'a str>,
    /// Value of the mode header ([`Rules::mode_header`]) in the INVITE or its 2xx, if any.
    pub mode_header: Option<&'a str>,
    /// Per side (caller, callee): what else the signalling says of the party.
    pub parties: [PartyEvidence<'a>; 2],
    /// The number a forwarded call was first meant for (Diversion, History-Info).
    pub diverted_from: Option<&'a str>,
    /// The other legs of this leg's conversation that are still up, oldest first (their own
    /// `conversation` is empty).
    pub conversation: &'a [CallFacts<'a>],
    /// This leg follows a transfer, a forward by the PBX or a pickup of another leg
    /// (`crate::conversation::Evidence::is_transfer`).
    pub transferred: bool,
    /// This leg picks up another that rang (a pickup code, or `Replaces` of an unanswered
    /// dialog): the person who called is on its callee side, so who called whom is the
    /// other way round from its signalling.
    pub picked_up: bool,
}

/// What the signalling says of one party beyond its From or To.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartyEvidence<'a> {
    /// Its signalling address is a PBX, proxy or SBC: the party is somewhere behind it.
    pub server: Option<ServerEvidence>,
    /// The identity the network asserts for it (P-Asserted-Identity, Remote-Party-ID).
    pub identity: Option<&'a str>,
    /// Where its audio comes from (the connection address of its SDP).
    pub media: Option<IpAddr>,
}

/// A decision and the reason for it, which the catalog keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub record: bool,
    /// The rule, scope or mode that decided, in one line.
    pub reason: String,
    /// Every step the policy took, in order, naming the rule or scope it looked at.
    pub trace: Vec<String>,
    /// The settings that apply to the recording (format, limits, sample rate...), merged from
    /// the device, user and account; unset fields are the engine's defaults.
    pub settings: Settings,
    /// Which way the call goes, when the policy classified it.
    pub direction: Option<Direction>,
    /// Not recorded because it connects two external parties and the tenant does not allow
    /// that: the other legs of its conversation, which now carry the same two people, stop.
    pub external_to_external_refused: bool,
    /// The tenant the call belongs to, when the rules found one (its `name`).
    pub tenant: Option<String>,
    /// The users of the tenant the parties were matched to (caller's first), by `name`.
    pub users: Vec<String>,
}

impl Decision {
    /// A decision whose trace is its reason alone.
    pub fn new(record: bool, reason: impl Into<String>) -> Decision {
        let reason = reason.into();
        Decision {
            record,
            trace: vec![reason.clone()],
            reason,
            settings: Settings::default(),
            direction: None,
            external_to_external_refused: false,
            tenant: None,
            users: Vec::new(),
        }
    }
}

/// Something seen during an answered call that a policy may act on (on-demand recording).
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    Dtmf {
        digit: char,
        side: Side,
        source: DtmfSource,
    },
    /// A SIP INFO with the record header ([`Rules::info_record`]): the Yealink Record key.
    SipInfoRecord { on: bool, side: Side },
    /// A SIP MESSAGE asking to pause or resume recording: in dialog
    /// (`application/x-media-control`) or out of dialog (JSON, matched by `X-Session-Id`).
    MediaControl { pause: bool, side: Side },
    /// A transfer left two external parties talking. The engine raises [`Trigger::PartyChanged`]
    /// instead and lets the policy judge it; this is for callers that know it themselves.
    BecameExternalToExternal,
    /// A side now asserts another identity (P-Asserted-Identity in a re-INVITE or UPDATE): a
    /// transfer through a PBX. [`RulesPolicy`] classifies the call again with that number and,
    /// if both parties are now external, acts as on [`Trigger::BecameExternalToExternal`].
    PartyChanged { side: Side, user: String },
}

/// A policy's answer to a trigger: the action, why, and which party asked for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    pub action: Action,
    pub reason: String,
    pub requested_by: Option<Side>,
    /// The user and device of the side that asked, as the rules classified it.
    pub requested_by_user: Option<String>,
    pub requested_by_device: Option<String>,
    /// A stop because the call now has two external parties (the catalog's stop reason).
    pub external_to_external: bool,
}

pub trait RecordingPolicy: Send {
    /// Called once when the call is answered (2xx to the INVITE).
    fn on_answer(&mut self, facts: &CallFacts<'_>) -> Decision;

    /// Called for each trigger seen in an answered call. The default ignores them.
    fn on_trigger(&mut self, _facts: &CallFacts<'_>, _trigger: &Trigger) -> Option<Command> {
        None
    }

    /// Called once when the engine forgets a call, so per-call state can go with it.
    fn on_call_ended(&mut self, _call: CallHandle) {}
}

/// The default: every answered call is recorded.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordAnswered;

impl RecordingPolicy for RecordAnswered {
    fn on_answer(&mut self, _facts: &CallFacts<'_>) -> Decision {
        Decision::new(true, "default: record every answered call")
    }
}

/// Records nothing; useful for catalog-only runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordNothing;

impl RecordingPolicy for RecordNothing {
    fn on_answer(&mut self, _facts: &CallFacts<'_>) -> Decision {
        Decision::new(false, "recording disabled")
    }
}
