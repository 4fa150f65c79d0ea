//! [`RulesPolicy`]: [`super::decide`] at answer time, then passive on-demand control during
//! the call (DTMF codes, the SIP INFO record key, media-control messages) and the
//! external-to-external stop.

use std::collections::HashMap;

use std::net::{IpAddr, Ipv4Addr};

use super::decide::{Direction, KnownParty, classify, classify_in, evaluate};
use super::rules::{Mode, OnDemand, Rules, TransferPolicy};
use super::{CallFacts, Command, Decision, RecordingPolicy, ServerEvidence, Trigger};
use crate::vocab::{Action, CallHandle, DtmfSource, Party, Side, side_index as side_slot};

/// Digits kept per side; longer than any sensible code.
const DIGITS_KEPT: usize = 8;

/// What the policy remembers of an answered call.
#[derive(Debug)]
struct CallControl {
    mode: Mode,
    /// Per side (caller, callee): whether its requests count.
    on_demand: [bool; 2],
    codes: OnDemand,
    external_to_external_allowed: bool,
    recording: bool,
    paused: bool,
    /// The last digits each side sent.
    digits: [String; 2],
    /// Per side: its user and device, as classified at answer time (who asked).
    who: [(Option<String>, Option<String>); 2],
    /// Per side: its number and whether it was judged ours, for the conversation's other legs.
    parties: [(String, bool); 2],
    sip_call_id: String,
    transfers: TransferPolicy,
    /// Why the call is recorded (or not), for legs that inherit it.
    reason: String,
    /// It connects two external parties and its tenant does not record them.
    external_to_external: bool,
}

/// The rules-driven policy.
#[derive(Debug)]
pub struct RulesPolicy {
    rules: Rules,
    calls: HashMap<CallHandle, CallControl>,
}

impl RulesPolicy {
    pub fn new(rules: Rules) -> RulesPolicy {
        RulesPolicy {
            rules,
            calls: HashMap::new(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Calls the policy holds state for.
    pub fn calls_tracked(&self) -> usize {
        self.calls.len()
    }

    /// How the parties of the conversation's other legs were judged: as this policy judged
    /// them when they were answered (and since, on a transfer), or now for a leg still ringing.
    fn known(&self, facts: &CallFacts<'_>) -> Vec<KnownParty> {
        let mut out = Vec::new();
        for other in facts.conversation {
            let parties = match self.calls.get(&other.call) {
                Some(c) => c.parties.clone(),
                None => {
                    let class = classify(&self.rules, other);
                    [
                        (other.caller.user.clone(), class.caller_internal),
                        (dialled(other), class.callee_internal),
                    ]
                }
            };
            for (number, internal) in parties {
                if !number.is_empty() {
                    out.push(KnownParty {
                        number,
                        internal,
                        leg: other.sip_call_id.to_string(),
                    });
                }
            }
        }
        out
    }

    fn control(&mut self, facts: &CallFacts<'_>) -> (&mut CallControl, Option<Decision>) {
        let mut decision = None;
        if !self.calls.contains_key(&facts.call) {
            let known = self.known(facts);
            let mut eval = evaluate(&self.rules, facts, &known);
            self.inherit(facts, &mut eval);
            self.refuse_if_external_conversation(facts, &mut eval);
            let callee_number = dialled(facts);
            let c = CallControl {
                mode: eval.mode,
                on_demand: eval.on_demand,
                codes: eval
                    .class
                    .tenant
                    .map(|t| t.on_demand.clone())
                    .unwrap_or_default(),
                external_to_external_allowed: eval
                    .class
                    .tenant
                    .is_some_and(|t| t.allow_external_to_external),
                recording: eval.decision.record,
                paused: false,
                digits: Default::default(),
                who: [&eval.class.caller_endpoint, &eval.class.callee_endpoint].map(|ep| {
                    (
                        ep.user.map(|u| u.name.clone()),
                        ep.device.map(|d| d.id.clone()),
                    )
                }),
                parties: [
                    (facts.caller.user.clone(), eval.class.caller_internal),
                    (callee_number, eval.class.callee_internal),
                ],
                sip_call_id: facts.sip_call_id.to_string(),
                transfers: eval.class.tenant.map(|t| t.transfers).unwrap_or_default(),
                reason: eval.decision.reason.clone(),
                external_to_external: eval.decision.external_to_external_refused,
            };
            self.calls.insert(facts.call, c);
            decision = Some(eval.decision);
        }
        (
            self.calls.get_mut(&facts.call).expect("inserted above"),
            decision,
        )
    }
}

impl RulesPolicy {
    /// A leg of a conversation another leg of which already connects two external parties
    /// (a forward or transfer out, refused there) carries those same people: refused too.
    fn refuse_if_external_conversation(
        &self,
        facts: &CallFacts<'_>,
        eval: &mut super::decide::Evaluation<'_>,
    ) {
        if !eval.decision.record || eval.mode != Mode::Auto {
            return;
        }
        let Some(other) = facts.conversation.iter().find(|f| {
            self.calls
                .get(&f.call)
                .is_some_and(|c| c.external_to_external)
        }) else {
            return;
        };
        let reason = format!(
            "external-to-external conversation refused: leg {} connects two external parties and its tenant does not allow recording them",
            other.sip_call_id
        );
        eval.decision.trace.push(reason.clone());
        eval.decision.record = false;
        eval.decision.reason = reason;
        eval.decision.external_to_external_refused = true;
    }

    /// A leg that follows a transfer, forward or pickup in a tenant whose transfers inherit:
    /// recorded as the conversation's recorded leg is, unless the decision refused it for a
    /// reason of its own (a mode, or two external parties).
    fn inherit(&self, facts: &CallFacts<'_>, eval: &mut super::decide::Evaluation<'_>) {
        let inherits = eval
            .class
            .tenant
            .is_some_and(|t| t.transfers == TransferPolicy::Inherit);
        if !facts.transferred || !inherits || eval.decision.record || eval.mode != Mode::Auto {
            return;
        }
        if eval.class.direction == Direction::ExternalToExternal
            && !eval
                .class
                .tenant
                .is_some_and(|t| t.allow_external_to_external)
        {
            return;
        }
        let Some(from) = facts
            .conversation
            .iter()
            .filter_map(|f| self.calls.get(&f.call))
            .find(|c| c.recording)
        else {
            return;
        };
        let reason = format!(
            "inherits the recording of leg {} ({}): transfers inherit in tenant {}",
            from.sip_call_id,
            from.reason,
            eval.class.tenant.map_or("", |t| t.name.as_str())
        );
        eval.decision.trace.push(reason.clone());
        eval.decision.record = true;
        eval.decision.reason = reason;
    }
}

impl CallControl {
    /// Turns an on-demand request into a command, if the side may ask and it changes anything.
    fn request(&mut self, side: Side, action: Action, what: &str) -> Option<Command> {
        if !self.on_demand[side_slot(side)] {
            return None;
        }
        let action = match (action, self.recording, self.paused) {
            (Action::Start, false, _) | (Action::Start, true, true) => Action::Start,
            (Action::Stop, true, _) => Action::Stop,
            (Action::Pause, true, false) => Action::Pause,
            (Action::Resume, true, true) => Action::Resume,
            _ => return None,
        };
        match action {
            Action::Start => (self.recording, self.paused) = (true, false),
            Action::Stop => (self.recording, self.paused) = (false, false),
            Action::Pause => self.paused = true,
            Action::Resume => self.paused = false,
        }
        let (user, device) = self.who[side_slot(side)].clone();
        Some(Command {
            action,
            reason: format!("on demand: {what} from the {}", side.as_str()),
            requested_by: Some(side),
            requested_by_user: user,
            requested_by_device: device,
            external_to_external: false,
        })
    }

    fn became_external_to_external(&mut self) -> Option<Command> {
        self.on_demand = [false; 2];
        self.external_to_external |= !self.external_to_external_allowed;
        if self.external_to_external_allowed || self.mode == Mode::Force || !self.recording {
            return None;
        }
        (self.recording, self.paused) = (false, false);
        Some(Command {
            action: Action::Stop,
            reason: "a transfer left two external parties talking; the tenant does not allow recording them".into(),
            external_to_external: true,
            ..Command::default()
        })
    }

    fn digit(&mut self, side: Side, digit: char, source: &str) -> Option<Command> {
        if !self.on_demand[side_slot(side)] {
            return None;
        }
        let buf = &mut self.digits[side_slot(side)];
        buf.push(digit);
        if buf.len() > DIGITS_KEPT {
            buf.remove(0);
        }
        let codes = [
            (&self.codes.toggle, None),
            (&self.codes.pause, Some(Action::Pause)),
            (&self.codes.resume, Some(Action::Resume)),
        ];
        let (code, action) = codes
            .into_iter()
            .find(|(code, _)| !code.is_empty() && buf.ends_with(code.as_str()))?;
        let code = code.clone();
        buf.clear();
        let action = action.unwrap_or(if self.recording && !self.paused {
            Action::Stop
        } else {
            Action::Start
        });
        self.request(side, action, &format!("code {code} ({source})"))
    }
}

/// The callee's number: the one dialled, else the To user.
fn dialled(facts: &CallFacts<'_>) -> String {
    if facts.request_user.is_empty() {
        facts.callee.user.clone()
    } else {
        facts.request_user.to_string()
    }
}

/// The call's facts once `side` is `user`: the new party is judged by its number and domain
/// only, as one put through by a transfer. Its signalling address, Contact, asserted identity
/// and media are still those of the PBX or the phone that put it through.
fn moved<'f>(facts: &CallFacts<'f>, side: Side, party: &'f Party) -> CallFacts<'f> {
    let unknown = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut moved = facts.clone();
    let i = side_slot(side);
    moved.parties[i] = super::PartyEvidence {
        server: Some(ServerEvidence::PutThrough),
        identity: None,
        media: None,
    };
    match side {
        Side::Caller => {
            (moved.caller, moved.caller_addr, moved.caller_contact) = (party, unknown, None);
            moved.diverted_from = None;
        }
        Side::Callee => {
            (moved.callee, moved.callee_addr, moved.callee_contact) = (party, unknown, None);
            // The number dialled no longer names the callee.
            moved.request_user = "";
        }
    }
    moved
}

impl RecordingPolicy for RulesPolicy {
    fn on_answer(&mut self, facts: &CallFacts<'_>) -> Decision {
        // A re-answered handle starts afresh.
        self.calls.remove(&facts.call);
        let (_, decision) = self.control(facts);
        decision.expect("fresh call is evaluated")
    }

    fn on_trigger(&mut self, facts: &CallFacts<'_>, trigger: &Trigger) -> Option<Command> {
        let (c, _) = self.control(facts);
        match *trigger {
            // In-band digits count only where the tenant listens for them.
            Trigger::Dtmf {
                source: DtmfSource::InBand,
                ..
            } if !c.codes.inband => None,
            Trigger::Dtmf {
                digit,
                side,
                source,
            } => c.digit(side, digit, source.as_str()),
            Trigger::SipInfoRecord { on, side } => {
                let action = if on { Action::Start } else { Action::Stop };
                c.request(
                    side,
                    action,
                    &format!("SIP INFO record {}", if on { "on" } else { "off" }),
                )
            }
            Trigger::MediaControl { pause, side } => {
                let (action, what) = if pause {
                    (Action::Pause, "pause-audio-recording")
                } else {
                    (Action::Resume, "resume-audio-recording")
                };
                c.request(side, action, &format!("media control {what}"))
            }
            Trigger::BecameExternalToExternal => c.became_external_to_external(),
            Trigger::PartyChanged { side, ref user } => {
                let party = Party {
                    user: user.clone(),
                    ..match side {
                        Side::Caller => facts.caller,
                        Side::Callee => facts.callee,
                    }
                    .clone()
                };
                let moved = moved(facts, side, &party);
                let known = self.known(facts);
                let class = classify_in(&self.rules, &moved, &known);
                let (internal, e2e) = (
                    class.is_internal(side),
                    class.direction == Direction::ExternalToExternal,
                );
                // Decided again with the new party (PortSIP): its settings start or stop.
                let again = evaluate(&self.rules, &moved, &known).decision;
                let (c, _) = self.control(facts);
                c.parties[side_slot(side)] = (user.clone(), internal);
                if e2e {
                    return c.became_external_to_external();
                }
                if c.transfers == TransferPolicy::Inherit
                    || c.mode != Mode::Auto
                    || again.record == c.recording
                {
                    return None;
                }
                c.recording = again.record;
                c.paused = false;
                c.reason = again.reason.clone();
                Some(Command {
                    action: if again.record {
                        Action::Start
                    } else {
                        Action::Stop
                    },
                    reason: format!(
                        "transfer to {user}: decided again (transfers decide): {}",
                        again.reason
                    ),
                    ..Command::default()
                })
            }
        }
    }

    fn on_call_ended(&mut self, call: CallHandle) {
        self.calls.remove(&call);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::rules::*;
    use super::*;

    fn policy(on_demand: bool, tune: impl FnOnce(&mut Rules)) -> RulesPolicy {
        let mut r = rules();
        acme(&mut r).on_demand.enabled = on_demand;
        tune(&mut r);
        RulesPolicy::new(r)
    }

    fn dial(p: &mut RulesPolicy, call: &Call, side: Side, digits: &str) -> Vec<Command> {
        digits
            .chars()
            .filter_map(|digit| {
                let t = Trigger::Dtmf {
                    digit,
                    side,
                    source: DtmfSource::Rfc4733,
                };
                p.on_trigger(&call.facts(), &t)
            })
            .collect()
    }

    fn dial_inband(p: &mut RulesPolicy, call: &Call, side: Side, digits: &str) -> Vec<Command> {
        digits
            .chars()
            .filter_map(|digit| {
                let t = Trigger::Dtmf {
                    digit,
                    side,
                    source: DtmfSource::InBand,
                };
                p.on_trigger(&call.facts(), &t)
            })
            .collect()
    }

    #[test]
    fn inband_digits_count_only_where_the_tenant_listens_for_them() {
        let call = inbound();
        let mut deaf = policy(true, |_| {});
        assert!(!deaf.on_answer(&call.facts()).record);
        assert!(dial_inband(&mut deaf, &call, Side::Callee, "*1").is_empty());
        // The signalled codes still work.
        assert_eq!(
            actions(&dial(&mut deaf, &call, Side::Callee, "*1")),
            [Action::Start]
        );

        let mut listening = policy(true, |r| acme(r).on_demand.inband = true);
        assert!(!listening.on_answer(&call.facts()).record);
        let cmds = dial_inband(&mut listening, &call, Side::Callee, "*1");
        assert_eq!(actions(&cmds), [Action::Start]);
        assert_eq!(
            cmds[0].reason,
            "on demand: code *1 (inband) from the callee"
        );
    }

    fn actions(cmds: &[Command]) -> Vec<Action> {
        cmds.iter().map(|c| c.action).collect()
    }

    #[test]
    fn a_transfer_to_an_external_party_stops_unless_allowed() {
        let mut p = policy(true, |r| acme(r).settings.inbound.offnet = Some(true));
        let call = inbound();
        assert!(p.on_answer(&call.facts()).record);
        // alice's phone now asserts bob: still ours, nothing happens.
        let to_bob = Trigger::PartyChanged {
            side: Side::Callee,
            user: "202".into(),
        };
        assert_eq!(p.on_trigger(&call.facts(), &to_bob), None);
        let out = Trigger::PartyChanged {
            side: Side::Callee,
            user: "+4930666".into(),
        };
        let cmd = p.on_trigger(&call.facts(), &out).expect("a stop");
        assert_eq!(cmd.action, Action::Stop);
        assert!(cmd.reason.contains("two external parties"), "{cmd:?}");
        // On-demand control is over for the call.
        assert!(dial(&mut p, &call, Side::Callee, "*1").is_empty());

        let mut p = policy(true, |r| {
            acme(r).settings.inbound.offnet = Some(true);
            acme(r).allow_external_to_external = true;
        });
        assert!(p.on_answer(&call.facts()).record);
        assert_eq!(p.on_trigger(&call.facts(), &out), None);
    }

    /// PortSIP decides the call again with its new party; IvozProvider keeps recording while
    /// the external party is on the call.
    #[test]
    fn transfers_between_our_users_inherit_or_decide() {
        let to = |user: &str| Trigger::PartyChanged {
            side: Side::Callee,
            user: user.into(),
        };
        for transfers in [TransferPolicy::Inherit, TransferPolicy::Decide] {
            let mut p = policy(false, |r| {
                acme(r).transfers = transfers;
                alice(r).settings.inbound.offnet = Some(true);
            });
            let call = inbound();
            assert!(p.on_answer(&call.facts()).record);
            let cmd = p.on_trigger(&call.facts(), &to("202"));
            match transfers {
                TransferPolicy::Inherit => assert_eq!(cmd, None),
                TransferPolicy::Decide => {
                    let cmd = cmd.expect("bob does not record");
                    assert_eq!(cmd.action, Action::Stop);
                    assert!(
                        cmd.reason.starts_with("transfer to 202: decided again"),
                        "{cmd:?}"
                    );
                    assert!(!cmd.external_to_external);
                    let back = p
                        .on_trigger(&call.facts(), &to("201"))
                        .expect("alice records");
                    assert_eq!(back.action, Action::Start);
                }
            }

            // A new leg the PBX makes to bob after alice transferred the caller.
            let mut leg = Call::new(("+4930555", PBX), ("202", BOB)).via_server(Side::Caller);
            leg.handle = 2;
            leg.conversation = vec![inbound()];
            leg.transferred = true;
            let d = p.on_answer(&leg.facts());
            match transfers {
                TransferPolicy::Inherit => {
                    assert!(d.record, "{:#?}", d.trace);
                    assert!(
                        d.reason.starts_with("inherits the recording of leg call-1"),
                        "{}",
                        d.reason
                    );
                }
                TransferPolicy::Decide => assert!(!d.record, "{:#?}", d.trace),
            }
            // A forward to an external number is refused on the new leg as well.
            let mut out =
                Call::new(("+4930555", PBX), ("+4930666", CARRIER)).via_server(Side::Caller);
            out.handle = 3;
            out.conversation = vec![inbound()];
            out.transferred = true;
            let d = p.on_answer(&out.facts());
            assert!(!d.record, "{:#?}", d.trace);
            assert_eq!(
                d.direction,
                Some(Direction::ExternalToExternal),
                "{:#?}",
                d.trace
            );
        }
    }

    #[test]
    fn toggle_pause_resume_codes() {
        let mut p = policy(true, |_| {});
        let call = inbound();
        assert!(!p.on_answer(&call.facts()).record);
        // alice is the callee; stray digits before a code do not matter.
        let cmds = dial(&mut p, &call, Side::Callee, "12*1");
        assert_eq!(actions(&cmds), [Action::Start]);
        assert_eq!(cmds[0].requested_by, Some(Side::Callee));
        // Who asked: alice on her desk phone.
        assert_eq!(cmds[0].requested_by_user.as_deref(), Some("alice"));
        assert_eq!(cmds[0].requested_by_device.as_deref(), Some("alice-desk"));
        assert_eq!(
            cmds[0].reason,
            "on demand: code *1 (rfc4733) from the callee"
        );
        assert_eq!(
            actions(&dial(&mut p, &call, Side::Callee, "*48")),
            [Action::Pause]
        );
        // Pausing twice changes nothing.
        assert!(dial(&mut p, &call, Side::Callee, "*48").is_empty());
        assert_eq!(
            actions(&dial(&mut p, &call, Side::Callee, "*49")),
            [Action::Resume]
        );
        assert_eq!(
            actions(&dial(&mut p, &call, Side::Callee, "*1")),
            [Action::Stop]
        );
        assert!(dial(&mut p, &call, Side::Callee, "*49").is_empty());
        assert_eq!(
            actions(&dial(&mut p, &call, Side::Callee, "*1")),
            [Action::Start]
        );
    }

    #[test]
    fn toggle_stops_a_call_recorded_by_the_rules() {
        let mut p = policy(true, |r| alice(r).settings.outbound.offnet = Some(true));
        let call = outbound();
        assert!(p.on_answer(&call.facts()).record);
        let cmds = dial(&mut p, &call, Side::Caller, "*1");
        assert_eq!(actions(&cmds), [Action::Stop]);
        assert_eq!(cmds[0].requested_by, Some(Side::Caller));
    }

    #[test]
    fn custom_codes_and_digits_per_side() {
        let mut p = policy(true, |r| {
            let od = &mut acme(r).on_demand;
            od.toggle = "#7".into();
            od.pause = "#8".into();
        });
        let call = alice_to_bob();
        p.on_answer(&call.facts());
        // A code split between the two sides is no code.
        assert!(dial(&mut p, &call, Side::Caller, "#").is_empty());
        assert!(dial(&mut p, &call, Side::Callee, "7").is_empty());
        assert!(dial(&mut p, &call, Side::Caller, "*1").is_empty());
        assert_eq!(
            actions(&dial(&mut p, &call, Side::Callee, "#7")),
            [Action::Start]
        );
        assert_eq!(
            actions(&dial(&mut p, &call, Side::Caller, "#8")),
            [Action::Pause]
        );
    }

    #[test]
    fn on_demand_refused_where_not_allowed() {
        // The tenant does not allow it.
        let mut p = policy(false, |_| {});
        let call = inbound();
        p.on_answer(&call.facts());
        assert!(dial(&mut p, &call, Side::Callee, "*1").is_empty());
        assert!(
            p.on_trigger(
                &call.facts(),
                &Trigger::SipInfoRecord {
                    on: true,
                    side: Side::Callee
                }
            )
            .is_none()
        );
        // The external party may not control our recording.
        let mut p = policy(true, |_| {});
        p.on_answer(&call.facts());
        assert!(dial(&mut p, &call, Side::Caller, "*1").is_empty());
        // Deny and force take on-demand away.
        for mode in ["deny", "force"] {
            let mut p = policy(true, |_| {});
            let call = inbound().mode(mode);
            p.on_answer(&call.facts());
            assert!(
                dial(&mut p, &call, Side::Callee, "*1*48").is_empty(),
                "{mode}"
            );
        }
        // Manual mode: nothing recorded until asked.
        let mut p = policy(true, |_| {});
        let call = inbound().mode("manual");
        assert!(!p.on_answer(&call.facts()).record);
        assert_eq!(
            actions(&dial(&mut p, &call, Side::Callee, "*1")),
            [Action::Start]
        );
    }

    #[test]
    fn manual_roles_restrict_on_demand() {
        let rule = RoleRule {
            description: "support may record".into(),
            enabled: true,
            auto_roles: vec![],
            manual_roles: vec!["support".into()],
            direction: RuleDirection::Both,
            origin: RuleOrigin::Both,
        };
        let mut p = policy(true, |r| r.role_rules.push(rule));
        let call = alice_to_bob();
        p.on_answer(&call.facts());
        // alice (sales) may not; bob (support) may.
        assert!(dial(&mut p, &call, Side::Caller, "*1").is_empty());
        assert_eq!(
            actions(&dial(&mut p, &call, Side::Callee, "*1")),
            [Action::Start]
        );
    }

    #[test]
    fn sip_info_record_and_media_control() {
        let mut p = policy(true, |_| {});
        let call = inbound();
        let f = call.facts();
        p.on_answer(&f);
        let on = p
            .on_trigger(
                &f,
                &Trigger::SipInfoRecord {
                    on: true,
                    side: Side::Callee,
                },
            )
            .unwrap();
        assert_eq!(
            (on.action, on.requested_by),
            (Action::Start, Some(Side::Callee))
        );
        assert_eq!(on.reason, "on demand: SIP INFO record on from the callee");
        let pause = p
            .on_trigger(
                &f,
                &Trigger::MediaControl {
                    pause: true,
                    side: Side::Callee,
                },
            )
            .unwrap();
        assert_eq!(pause.action, Action::Pause);
        assert!(pause.reason.contains("pause-audio-recording"));
        let resume = p
            .on_trigger(
                &f,
                &Trigger::MediaControl {
                    pause: false,
                    side: Side::Callee,
                },
            )
            .unwrap();
        assert_eq!(resume.action, Action::Resume);
        let off = p
            .on_trigger(
                &f,
                &Trigger::SipInfoRecord {
                    on: false,
                    side: Side::Callee,
                },
            )
            .unwrap();
        assert_eq!(off.action, Action::Stop);
        assert!(
            p.on_trigger(
                &f,
                &Trigger::SipInfoRecord {
                    on: false,
                    side: Side::Callee
                }
            )
            .is_none()
        );
    }

    #[test]
    fn becoming_external_to_external_stops_unless_allowed() {
        let mut p = policy(true, |r| acme(r).settings.inbound.offnet = Some(true));
        let call = inbound();
        let f = call.facts();
        assert!(p.on_answer(&f).record);
        let stop = p
            .on_trigger(&f, &Trigger::BecameExternalToExternal)
            .unwrap();
        assert_eq!((stop.action, stop.requested_by), (Action::Stop, None));
        assert!(stop.reason.contains("two external parties"));
        // Nobody can restart it afterwards.
        assert!(dial(&mut p, &call, Side::Callee, "*1").is_empty());

        let mut p = policy(true, |r| {
            acme(r).settings.inbound.offnet = Some(true);
            acme(r).allow_external_to_external = true;
        });
        p.on_answer(&f);
        assert!(
            p.on_trigger(&f, &Trigger::BecameExternalToExternal)
                .is_none()
        );

        let mut p = policy(true, |_| {});
        let forced = inbound().mode("force");
        p.on_answer(&forced.facts());
        assert!(
            p.on_trigger(&forced.facts(), &Trigger::BecameExternalToExternal)
                .is_none()
        );
    }

    #[test]
    fn state_is_per_call_and_forgotten_at_the_end() {
        let mut p = policy(true, |_| {});
        let a = inbound();
        let mut b = inbound();
        b.handle = 2;
        p.on_answer(&a.facts());
        p.on_answer(&b.facts());
        assert_eq!(
            actions(&dial(&mut p, &a, Side::Callee, "*1")),
            [Action::Start]
        );
        // Call b has its own state: its *1 starts too.
        assert_eq!(
            actions(&dial(&mut p, &b, Side::Callee, "*1")),
            [Action::Start]
        );
        assert_eq!(p.calls_tracked(), 2);
        p.on_call_ended(CallHandle(1));
        p.on_call_ended(CallHandle(2));
        assert_eq!(p.calls_tracked(), 0);
    }
}
