//! The legs of one conversation.
//!
//! What people call one call is often several SIP dialogs: a PBX or SBC (a B2BUA) answers the
//! caller on one leg and calls the callee on another; a transfer adds a consultation leg and a
//! leg to the target; a forward or a pickup adds another. Each new dialog is tied to an
//! earlier one by the strongest evidence there is, in this order:
//!
//! 1. a correlation header the B2BUA puts on its legs (`Session-ID`, `X-CID`,
//!    `P-Charging-Vector`, or configured ones): a shared value, or the other leg's Call-ID;
//! 2. `Replaces` (RFC 3891), naming the dialog it takes over (attended transfer, pickup);
//! 3. `Referred-By` (RFC 3892) or the target of a REFER seen in another dialog (RFC 3515);
//!    `Diversion` (RFC 5806) or `History-Info` (RFC 7044) naming the number another leg
//!    dialled, with the same caller (a forward);
//! 4. shared media: the same SSRC on two calls (a relay that passes it through);
//! 5. timing with matching numbers: a leg that starts within seconds of another, through the
//!    same server (one leg's far end is the other's near end) with the same caller or callee;
//!    a pickup code (`*8`) dialled while a leg through the same server rings picks up the one
//!    that has rung longest.
//!
//! A leg tied only by timing or a pickup code that then shares media with another
//! conversation moves there: the media is the stronger evidence. Every link keeps its
//! evidence, for the catalog. Nothing here reads packets or audio.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use crate::dialog::Call;
use crate::time::Timestamp;
use crate::vocab::{CallHandle, HandleMap};

/// Engine-local id of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationId(pub u64);

/// Why two legs are one conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// A correlation header: its name.
    Header(String),
    Replaces,
    ReferredBy,
    /// The target of a REFER in the other dialog.
    Refer,
    /// The same SSRC on both legs.
    Media,
    /// Started together through the same server with the same number.
    Timing,
    /// A pickup code dialled while another leg rang.
    Pickup,
    /// Diversion or History-Info names the number the other leg dialled.
    Forward(&'static str),
}

impl Evidence {
    pub fn as_str(&self) -> String {
        match self {
            Evidence::Header(h) => format!("header:{h}"),
            Evidence::Replaces => "replaces".into(),
            Evidence::ReferredBy => "referred-by".into(),
            Evidence::Refer => "refer".into(),
            Evidence::Media => "media:ssrc".into(),
            Evidence::Timing => "timing".into(),
            Evidence::Pickup => "pickup".into(),
            Evidence::Forward(h) => format!("header:{h}"),
        }
    }

    /// Evidence that the other party was put through to someone else.
    pub fn is_transfer(&self) -> bool {
        matches!(
            self,
            Evidence::Replaces
                | Evidence::ReferredBy
                | Evidence::Refer
                | Evidence::Pickup
                | Evidence::Forward(_)
        )
    }

    /// Evidence a shared SSRC outweighs.
    fn is_weak(&self) -> bool {
        matches!(self, Evidence::Timing | Evidence::Pickup)
    }
}

/// A leg tied to an earlier one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub to: CallHandle,
    pub evidence: Evidence,
    /// What matched, for a person reading the catalog.
    pub detail: String,
}

/// Legs started within this of each other, through one server, may be one conversation.
const TIMING_WINDOW: Duration = Duration::from_secs(5);
/// A REFER's target is expected to be called within this.
const REFER_WINDOW: Duration = Duration::from_secs(30);
/// Bounds on what is remembered for matching.
const MAX_RECENT: usize = 4096;
const MAX_REFERS: usize = 1024;

struct Recent {
    at: Timestamp,
    call: CallHandle,
    caller: String,
    callee: String,
    caller_ip: IpAddr,
    callee_ip: IpAddr,
}

struct PendingRefer {
    at: Timestamp,
    call: CallHandle,
    target: String,
}

#[derive(Default)]
struct Conversation {
    legs: Vec<CallHandle>,
    /// Who called and who answered, as the people see it.
    people: [String; 2],
    /// A phone answered (not only a PBX or a carrier's number).
    answered_by_person: bool,
    /// Each leg's start and signalling addresses (caller, callee).
    hops: Vec<(CallHandle, Timestamp, IpAddr, IpAddr)>,
}

#[derive(Default)]
pub struct Conversations {
    next: u64,
    of: HandleMap<CallHandle, ConversationId>,
    convs: HashMap<ConversationId, Conversation>,
    /// Correlation tokens and Call-IDs of tracked calls (chosen by peers: SipHash).
    tokens: HashMap<String, CallHandle>,
    ssrcs: HashMap<u32, CallHandle>,
    recent: VecDeque<Recent>,
    /// How many of `recent` have each signalling address as their caller's and as their
    /// callee's: a new call shares no server with any recent leg unless its caller's address
    /// is one's callee's or its callee's one's caller's, and then the timing scan is skipped
    /// (it read all of `recent`, up to [`MAX_RECENT`], at every call start).
    recent_callers: HashMap<IpAddr, u32>,
    recent_callees: HashMap<IpAddr, u32>,
    refers: VecDeque<PendingRefer>,
    /// What each call put in `tokens` and `ssrcs`, to take it out again.
    keys: HandleMap<CallHandle, (Vec<String>, Vec<u32>)>,
    /// How each call joined its conversation, if it was tied to another leg.
    links: HandleMap<CallHandle, Link>,
}

/// The numbers a leg's parties go by: the From user and the identity the network asserts for
/// the caller; the dialled number, the To user and the forwarded-from number for the callee.
fn numbers(c: &Call) -> ([Option<&str>; 2], [Option<&str>; 3]) {
    fn nonempty(s: &str) -> Option<&str> {
        (!s.is_empty()).then_some(s)
    }
    (
        [nonempty(&c.caller.user), c.evidence.identity[0].as_deref()],
        [
            nonempty(&c.request_user),
            nonempty(&c.callee.user),
            c.evidence.diverted_from.as_deref(),
        ],
    )
}

fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && a.trim_start_matches('+') == b.trim_start_matches('+')
}

impl Conversations {
    pub fn of(&self, call: CallHandle) -> Option<ConversationId> {
        self.of.get(&call).copied()
    }

    /// The conversation's people: set from its first leg, then from each leg a person
    /// answers; returns them when they changed. A leg into the B2BUA in the middle (its
    /// callee is the caller of a later leg of the conversation) is answered by the PBX, not
    /// a person; a pickup is answered by the phone that picked up, its caller.
    pub fn on_answered(&mut self, call: &Call, picked_up: bool) -> Option<[String; 2]> {
        let id = self.of(call.handle)?;
        let conv = self.convs.get_mut(&id)?;
        let me = conv.hops.iter().find(|h| h.0 == call.handle).copied()?;
        let into_middle = conv
            .hops
            .iter()
            .any(|h| h.0 != me.0 && h.1 >= me.1 && h.2 == me.3);
        let dialled = if call.request_user.is_empty() {
            call.callee.user.as_str()
        } else {
            call.request_user.as_str()
        };
        let person = if picked_up {
            Some(call.caller.user.as_str())
        } else if into_middle {
            None
        } else {
            Some(dialled)
        };
        let callee = match person {
            Some(p) => {
                conv.answered_by_person = true;
                p.to_string()
            }
            // No phone has answered yet: the number answered stands in.
            None if !conv.answered_by_person => {
                if call.request_user.is_empty() {
                    call.callee.user.clone()
                } else {
                    call.request_user.clone()
                }
            }
            None => return None,
        };
        if conv.people[1] == callee {
            return None;
        }
        conv.people[1] = callee;
        Some(conv.people.clone())
    }

    /// A group pickup answered: the identity the PBX asserts for the callee (the caller
    /// whose ringing the phone took) names the leg really picked up. If that leg is in
    /// another conversation, the pickup leg moves there. `unanswered` says whether a tracked
    /// call never was answered.
    pub fn confirm_pickup(
        &mut self,
        call: &Call,
        unanswered: &dyn Fn(CallHandle) -> bool,
    ) -> Option<(Link, ConversationId)> {
        if self.links.get(&call.handle)?.evidence != Evidence::Pickup {
            return None;
        }
        let caller = call.evidence.identity[1].as_deref()?;
        let mine = self.of(call.handle)?;
        let r = self.recent.iter().rev().find(|r| {
            r.call != call.handle
                && unanswered(r.call)
                && same(&r.caller, caller)
                && call.started.saturating_since(r.at) <= REFER_WINDOW
        })?;
        let (to, theirs) = (r.call, self.of(r.call)?);
        let link = Link {
            to,
            evidence: Evidence::Pickup,
            detail: format!(
                "pickup code; the PBX asserts {caller}, the caller of the leg picked up"
            ),
        };
        self.links.insert(call.handle, link.clone());
        if theirs == mine {
            return None;
        }
        let mut hop = None;
        if let Some(c) = self.convs.get_mut(&mine) {
            c.legs.retain(|h| *h != call.handle);
            hop = c
                .hops
                .iter()
                .position(|h| h.0 == call.handle)
                .map(|i| c.hops.remove(i));
            if c.legs.is_empty() {
                self.convs.remove(&mine);
            }
        }
        let conv = self.convs.entry(theirs).or_default();
        conv.legs.push(call.handle);
        conv.legs.sort();
        conv.hops.extend(hop);
        self.of.insert(call.handle, theirs);
        Some((link, theirs))
    }

    /// How a call was tied to an earlier leg.
    pub fn link_of(&self, call: CallHandle) -> Option<&Link> {
        self.links.get(&call)
    }

    /// The other legs of a call's conversation, oldest first.
    pub fn others(&self, call: CallHandle) -> Vec<CallHandle> {
        self.of(call)
            .map(|id| {
                self.legs(id)
                    .iter()
                    .copied()
                    .filter(|&l| l != call)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The legs of a conversation, oldest first.
    pub fn legs(&self, id: ConversationId) -> &[CallHandle] {
        self.convs.get(&id).map_or(&[], |c| c.legs.as_slice())
    }

    /// A new dialog: joins the conversation of the leg the evidence ties it to, or starts its
    /// own. `live` says whether a call is still tracked and not over.
    /// `ringing` says whether a tracked call is still unanswered.
    pub fn on_started(
        &mut self,
        call: &Call,
        ts: Timestamp,
        live: &dyn Fn(CallHandle) -> bool,
        ringing: &dyn Fn(CallHandle) -> bool,
    ) -> (ConversationId, Option<Link>) {
        let link = self.find_link(call, ts, live, ringing);
        let id = match &link {
            Some(l) => match self.of.get(&l.to) {
                Some(id) => *id,
                None => self.new_id(),
            },
            None => self.new_id(),
        };
        let conv = self.convs.entry(id).or_default();
        if conv.legs.is_empty() {
            conv.people = [call.caller.user.clone(), call.callee.user.clone()];
        }
        conv.legs.push(call.handle);
        conv.hops.push((
            call.handle,
            ts,
            call.caller_signalling.ip(),
            call.callee_signalling.ip(),
        ));
        self.of.insert(call.handle, id);
        if let Some(l) = &link {
            self.links.insert(call.handle, l.clone());
        }
        self.remember(call, ts);
        (id, link)
    }

    fn new_id(&mut self) -> ConversationId {
        self.next += 1;
        ConversationId(self.next)
    }

    fn find_link(
        &self,
        call: &Call,
        ts: Timestamp,
        live: &dyn Fn(CallHandle) -> bool,
        ringing: &dyn Fn(CallHandle) -> bool,
    ) -> Option<Link> {
        let ok = |h: &CallHandle| *h != call.handle && live(*h);
        // 1. A correlation value another leg carries, or another leg's Call-ID.
        for (header, token) in &call.evidence.correlation {
            if let Some(h) = self.tokens.get(token).filter(|h| ok(h)) {
                return Some(Link {
                    to: *h,
                    evidence: crate::conversation::Evidence::Header(header.clone()),
                    detail: format!("{header} {token}"),
                });
            }
        }
        if let Some(h) = self
            .tokens
            .get(&call.sip_call_id.to_ascii_lowercase())
            .filter(|h| ok(h))
        {
            return Some(Link {
                to: *h,
                evidence: Evidence::Header("Call-ID".into()),
                detail: format!("another leg names Call-ID {}", call.sip_call_id),
            });
        }
        // 2. Replaces: the dialog this one takes over.
        if let Some(r) = &call.evidence.replaces
            && let Some(h) = self.tokens.get(&format!("call-id:{r}")).filter(|h| ok(h))
        {
            return Some(Link {
                to: *h,
                evidence: Evidence::Replaces,
                detail: format!("Replaces {r}"),
            });
        }
        // 3. A transfer: the target of a REFER seen in another dialog, or Referred-By.
        let (_, callee) = numbers(call);
        if let Some(r) = self.refers.iter().rev().find(|r| {
            ok(&r.call)
                && ts.saturating_since(r.at) <= REFER_WINDOW
                && callee.iter().flatten().any(|n| same(n, &r.target))
        }) {
            let evidence = if call.evidence.referred_by.is_some() {
                Evidence::ReferredBy
            } else {
                Evidence::Refer
            };
            return Some(Link {
                to: r.call,
                evidence,
                detail: format!("REFER to {}", r.target),
            });
        }
        // A forward: the number first dialled, on a leg from the same caller.
        let (caller, _) = numbers(call);
        if let Some(from) = &call.evidence.diverted_from
            && let Some(r) = self.recent.iter().rev().find(|r| {
                ok(&r.call)
                    && ts.saturating_since(r.at) <= REFER_WINDOW
                    && same(&r.callee, from)
                    && caller.iter().flatten().any(|n| same(n, &r.caller))
            })
        {
            let header = if call.evidence.diverted_by_history {
                "History-Info"
            } else {
                "Diversion"
            };
            return Some(Link {
                to: r.call,
                evidence: Evidence::Forward(header),
                detail: format!("forwarded from {from}"),
            });
        }
        // 4 (shared media) comes later, with the streams: see `on_stream`.
        // 5. Timing: through the same server, with the same caller or callee.
        let (caller, callee) = numbers(call);
        let pickup = callee.iter().flatten().any(|n| n.starts_with('*'));
        if pickup {
            // The leg through the same server that has rung longest.
            let rang = self.recent.iter().find(|r| {
                ts.saturating_since(r.at) <= REFER_WINDOW
                    && ok(&r.call)
                    && ringing(r.call)
                    && (call.callee_signalling.ip() == r.caller_ip
                        || call.callee_signalling.ip() == r.callee_ip)
            });
            if let Some(r) = rang {
                return Some(Link {
                    to: r.call,
                    evidence: Evidence::Pickup,
                    detail: format!("pickup code while {} rang", r.callee),
                });
            }
        }
        let may_pass = self
            .recent_callees
            .contains_key(&call.caller_signalling.ip())
            || self
                .recent_callers
                .contains_key(&call.callee_signalling.ip());
        let scan = if may_pass { self.recent.len() } else { 0 };
        for r in self.recent.iter().rev().take(scan) {
            if pickup || ts.saturating_since(r.at) > TIMING_WINDOW {
                continue;
            }
            // One leg's far end is the other's near end: the B2BUA in the middle. Compared
            // before the call is looked up: with calls arriving by the hundred a second, most
            // of the recent ones went through no server this one did.
            let through = call.caller_signalling.ip() == r.callee_ip
                || call.callee_signalling.ip() == r.caller_ip;
            if !through || !ok(&r.call) {
                continue;
            }
            let caller_match = caller.iter().flatten().any(|n| same(n, &r.caller));
            let callee_match = callee.iter().flatten().any(|n| same(n, &r.callee));
            if caller_match || callee_match {
                let what = if callee_match { &r.callee } else { &r.caller };
                return Some(Link {
                    to: r.call,
                    evidence: Evidence::Timing,
                    detail: format!(
                        "started {} ms after it through {} with number {what}",
                        ts.saturating_since(r.at).as_millis(),
                        if call.caller_signalling.ip() == r.callee_ip {
                            r.callee_ip
                        } else {
                            r.caller_ip
                        }
                    ),
                });
            }
        }
        None
    }

    fn remember(&mut self, call: &Call, ts: Timestamp) {
        let mut tokens = Vec::new();
        for (_, t) in &call.evidence.correlation {
            tokens.push(t.clone());
        }
        tokens.push(call.sip_call_id.to_ascii_lowercase());
        tokens.push(format!("call-id:{}", call.sip_call_id));
        for t in &tokens {
            self.tokens.insert(t.clone(), call.handle);
        }
        self.keys.entry(call.handle).or_default().0.extend(tokens);
        let (caller, callee) = numbers(call);
        let r = Recent {
            at: ts,
            call: call.handle,
            caller: caller[0].or(caller[1]).unwrap_or("").to_string(),
            callee: callee[0].or(callee[1]).unwrap_or("").to_string(),
            caller_ip: call.caller_signalling.ip(),
            callee_ip: call.callee_signalling.ip(),
        };
        *self.recent_callers.entry(r.caller_ip).or_default() += 1;
        *self.recent_callees.entry(r.callee_ip).or_default() += 1;
        self.recent.push_back(r);
        while self.recent.len() > MAX_RECENT
            || self
                .recent
                .front()
                .is_some_and(|r| ts.saturating_since(r.at) > TIMING_WINDOW * 4)
        {
            if let Some(r) = self.recent.pop_front() {
                self.not_recent(&r);
            }
        }
    }

    /// Takes a leg leaving `recent` out of its address counts.
    fn not_recent(&mut self, r: &Recent) {
        for (counts, ip) in [
            (&mut self.recent_callers, r.caller_ip),
            (&mut self.recent_callees, r.callee_ip),
        ] {
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }

    /// A REFER in `call`: the next dialog to `target` continues its conversation. An
    /// attended transfer's REFER names the consultation dialog it replaces (RFC 3891): its
    /// conversation joins this one, and the link is returned as [`Self::on_stream`] does.
    pub fn on_refer(
        &mut self,
        call: CallHandle,
        ts: Timestamp,
        target: &str,
        replaces: Option<&str>,
        live: &dyn Fn(CallHandle) -> bool,
    ) -> Option<(Link, ConversationId, Option<ConversationId>)> {
        self.refers.push_back(PendingRefer {
            at: ts,
            call,
            target: target.to_string(),
        });
        while self.refers.len() > MAX_REFERS
            || self
                .refers
                .front()
                .is_some_and(|r| ts.saturating_since(r.at) > REFER_WINDOW)
        {
            self.refers.pop_front();
        }
        let other = self
            .tokens
            .get(&format!("call-id:{}", replaces?))
            .copied()
            .filter(|o| *o != call && live(*o))?;
        let (keep, gone) = self.join(call, other)?;
        Some((
            Link {
                to: other,
                evidence: Evidence::Replaces,
                detail: format!("REFER to {target} replacing {}", replaces.unwrap_or("")),
            },
            keep,
            Some(gone),
        ))
    }

    /// Folds the newer of two legs' conversations into the older; `None` if they are one.
    fn join(&mut self, a: CallHandle, b: CallHandle) -> Option<(ConversationId, ConversationId)> {
        let (mine, theirs) = (self.of(a)?, self.of(b)?);
        if mine == theirs {
            return None;
        }
        let (keep, gone) = if theirs < mine {
            (theirs, mine)
        } else {
            (mine, theirs)
        };
        let moved = self.convs.remove(&gone).unwrap_or_default();
        for h in &moved.legs {
            self.of.insert(*h, keep);
        }
        let conv = self.convs.entry(keep).or_default();
        conv.legs.extend(moved.legs);
        conv.legs.sort();
        conv.hops.extend(moved.hops);
        if !conv.answered_by_person && moved.answered_by_person {
            conv.people[1] = moved.people[1].clone();
            conv.answered_by_person = true;
        }
        Some((keep, gone))
    }

    /// A new RTP stream of `call`: the same SSRC on another live call is a relay passing the
    /// audio through, so the two are one conversation. Returns the link, with the conversation
    /// the call now belongs to and the one merged into it, if any.
    pub fn on_stream(
        &mut self,
        call: CallHandle,
        ssrc: u32,
        live: &dyn Fn(CallHandle) -> bool,
    ) -> Option<(Link, ConversationId, Option<ConversationId>)> {
        let other = self.ssrcs.get(&ssrc).copied();
        self.ssrcs.insert(ssrc, call);
        self.keys.entry(call).or_default().1.push(ssrc);
        let other = other.filter(|o| *o != call && live(*o))?;
        let link = Link {
            to: other,
            evidence: Evidence::Media,
            detail: format!("SSRC {ssrc:#010x} on both"),
        };
        let (mine, theirs) = (self.of(call)?, self.of(other)?);
        if mine == theirs {
            return None;
        }
        // A leg tied only by timing or a pickup code was tied to the wrong leg: it moves.
        let weak = self.links.get(&call).is_some_and(|l| l.evidence.is_weak());
        if weak && self.legs(mine).len() > 1 {
            let mut hop = None;
            if let Some(c) = self.convs.get_mut(&mine) {
                c.legs.retain(|h| *h != call);
                hop = c
                    .hops
                    .iter()
                    .position(|h| h.0 == call)
                    .map(|i| c.hops.remove(i));
            }
            let conv = self.convs.entry(theirs).or_default();
            conv.legs.push(call);
            conv.legs.sort();
            conv.hops.extend(hop);
            self.of.insert(call, theirs);
            self.links.insert(call, link.clone());
            return Some((link, theirs, None));
        }
        // The newer conversation folds into the older one.
        let (keep, gone) = self.join(call, other)?;
        self.links.entry(call).or_insert_with(|| link.clone());
        Some((link, keep, Some(gone)))
    }

    /// Forgets a call (its conversation keeps its other legs).
    pub fn forget(&mut self, call: CallHandle) {
        if let Some((tokens, ssrcs)) = self.keys.remove(&call) {
            for t in tokens {
                if self.tokens.get(&t) == Some(&call) {
                    self.tokens.remove(&t);
                }
            }
            for s in ssrcs {
                if self.ssrcs.get(&s) == Some(&call) {
                    self.ssrcs.remove(&s);
                }
            }
        }
        if let Some(id) = self.of.remove(&call)
            && let Some(c) = self.convs.get_mut(&id)
        {
            c.legs.retain(|h| *h != call);
            c.hops.retain(|h| h.0 != call);
            if c.legs.is_empty() {
                self.convs.remove(&id);
            }
        }
        self.links.remove(&call);
        self.refers.retain(|r| r.call != call);
        while let Some(i) = self.recent.iter().position(|r| r.call == call)
            && let Some(r) = self.recent.remove(i)
        {
            self.not_recent(&r);
        }
    }
}
