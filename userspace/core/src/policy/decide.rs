//! From call facts and rules to a decision with its trace. Pure: the same facts and rules give
//! the same decision and the same trace.
//!
//! Precedence, first match wins: the mode header, then the DDI option, then the endpoint
//! (device over user) and the account each on its own, then role rules; a call between two
//! external parties is refused at the end unless its tenant allows it.

use std::net::IpAddr;

use super::rules::{Device, LegDirection, Mode, Network, Rules, Settings, Tenant, User};
use super::{CallFacts, Decision, ServerEvidence};
use crate::vocab::Side;

/// Who talks to whom, as the networks and the directory say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// An external party called one of ours.
    Inbound,
    /// One of ours called an external party.
    Outbound,
    /// Both parties are ours.
    Internal,
    /// Neither party is ours (a forward or a transfer through the PBX).
    ExternalToExternal,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
            Direction::ExternalToExternal => "external-to-external",
        }
    }

    /// The legs whose settings decide: (our side, how it sees the call, the other party).
    fn legs(self) -> &'static [(Side, LegDirection, Network)] {
        use LegDirection::{Inbound as In, Outbound as Out};
        use Network::{Offnet, Onnet};
        match self {
            Direction::Inbound => &[(Side::Callee, In, Offnet)],
            Direction::Outbound => &[(Side::Caller, Out, Offnet)],
            Direction::Internal => &[(Side::Caller, Out, Onnet), (Side::Callee, In, Onnet)],
            // Neither side is ours: the call enters and leaves the tenant offnet.
            Direction::ExternalToExternal => {
                &[(Side::Callee, In, Offnet), (Side::Caller, Out, Offnet)]
            }
        }
    }
}

/// The user and device a party was matched to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoint<'r> {
    pub user: Option<&'r User>,
    pub device: Option<&'r Device>,
}

impl Endpoint<'_> {
    fn is_known(&self) -> bool {
        self.user.is_some() || self.device.is_some()
    }

    fn name(&self) -> String {
        match (self.device, self.user) {
            (Some(d), Some(u)) => format!("device {} of user {}", d.id, u.name),
            (Some(d), None) => format!("device {}", d.id),
            (None, Some(u)) => format!("user {}", u.name),
            (None, None) => "no endpoint".into(),
        }
    }

    /// Device over user: an explicit device value wins, an unset one inherits the user's.
    fn records(&self, dir: LegDirection, net: Network, trace: &mut Vec<String>) -> Option<bool> {
        let cell = format!("{}.{}", dir.as_str(), net.as_str());
        let dev = self.device.and_then(|d| d.settings.records(dir, net));
        let user = self.user.and_then(|u| u.settings.records(dir, net));
        if let (Some(d), Some(v)) = (self.device, dev) {
            trace.push(format!("device {}: {cell} = {v}", d.id));
            return Some(v);
        }
        if let Some(d) = self.device {
            trace.push(format!(
                "device {}: {cell} unset, inherits the user's",
                d.id
            ));
        }
        match (self.user, user) {
            (Some(u), Some(v)) => trace.push(format!("user {}: {cell} = {v}", u.name)),
            (Some(u), None) => trace.push(format!("user {}: {cell} unset", u.name)),
            _ => {}
        }
        user
    }

    fn settings(&self) -> Settings {
        let dev = self.device.map(|d| d.settings.clone()).unwrap_or_default();
        let user = self.user.map(|u| u.settings.clone()).unwrap_or_default();
        dev.or(&user)
    }
}

/// A call's classification: its direction, tenant and the endpoint on each side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallClass<'r> {
    pub direction: Direction,
    /// Whether the caller is ours (internal) or not.
    pub caller_internal: bool,
    pub callee_internal: bool,
    pub tenant: Option<&'r Tenant>,
    pub caller_endpoint: Endpoint<'r>,
    pub callee_endpoint: Endpoint<'r>,
    /// Why each party was classified as it was.
    pub trace: Vec<String>,
    /// A pickup leg: its callee side is the person who called (see `CallFacts::picked_up`).
    pub picked_up: bool,
}

impl<'r> CallClass<'r> {
    /// The users the parties were matched to, caller's first, each once.
    pub fn users(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in [self.caller_endpoint.user, self.callee_endpoint.user]
            .into_iter()
            .flatten()
        {
            if !out.contains(&u.name) {
                out.push(u.name.clone());
            }
        }
        out
    }

    pub fn endpoint(&self, side: Side) -> &Endpoint<'r> {
        match side {
            Side::Caller => &self.caller_endpoint,
            Side::Callee => &self.callee_endpoint,
        }
    }

    /// The legs whose settings decide, on this call's signalling sides.
    pub fn legs(&self) -> Vec<(Side, LegDirection, Network)> {
        self.direction
            .legs()
            .iter()
            .map(|&(side, dir, net)| {
                let side = if self.picked_up { side.other() } else { side };
                (side, dir, net)
            })
            .collect()
    }

    pub fn is_internal(&self, side: Side) -> bool {
        match side {
            Side::Caller => self.caller_internal,
            Side::Callee => self.callee_internal,
        }
    }
}

/// One party as the classification sees it.
struct PartyView<'f> {
    side: Side,
    /// The number: for the callee, the Request-URI user if known, else the To user.
    number: &'f str,
    host: &'f str,
    addr: IpAddr,
    contact: Option<&'f str>,
    /// Its signalling address is infrastructure (a PBX, proxy or SBC).
    server: Option<ServerEvidence>,
    /// The identity the network asserts for it.
    identity: Option<&'f str>,
    media: Option<IpAddr>,
}

/// A party of another leg of the same conversation, as it was judged there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownParty {
    pub number: String,
    pub internal: bool,
    /// The other leg's SIP Call-ID, for the trace.
    pub leg: String,
}

/// What a number looks like, for a party whose address says nothing of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Up to six digits, or a feature code (`*97`, `#8`): an extension or the PBX itself.
    Short,
    /// Seven digits or more, or `+` and digits: a public number, ours or anybody's.
    Public,
    /// `anonymous`, `restricted`...: a caller that hides its number is from outside.
    Hidden,
    /// Letters: a SIP user name, judged by its domain.
    Name,
}

/// Digits beyond which a number is public rather than an extension.
const MAX_EXTENSION_DIGITS: usize = 6;

fn shape(number: &str) -> Shape {
    let n = number.trim();
    let lower = n.to_ascii_lowercase();
    if n.is_empty()
        || [
            "anonymous",
            "restricted",
            "unknown",
            "unavailable",
            "private",
            "withheld",
        ]
        .iter()
        .any(|w| lower.starts_with(w))
    {
        return Shape::Hidden;
    }
    let digits = n.trim_start_matches('+');
    let dialable = |b: u8| b.is_ascii_digit() || b == b'*' || b == b'#';
    if !digits.is_empty() && digits.bytes().all(dialable) {
        let count = digits.bytes().filter(u8::is_ascii_digit).count();
        if n.starts_with('+') && count > 0 || count > MAX_EXTENSION_DIGITS {
            return Shape::Public;
        }
        return Shape::Short;
    }
    Shape::Name
}

fn views<'f>(facts: &'f CallFacts<'_>) -> [PartyView<'f>; 2] {
    let callee_number = if facts.request_user.is_empty() {
        facts.callee.user.as_str()
    } else {
        facts.request_user
    };
    [
        PartyView {
            side: Side::Caller,
            number: &facts.caller.user,
            host: &facts.caller.host,
            addr: facts.caller_addr,
            contact: facts.caller_contact,
            server: facts.parties[0].server,
            identity: facts.parties[0].identity,
            media: facts.parties[0].media,
        },
        PartyView {
            side: Side::Callee,
            number: callee_number,
            host: &facts.callee.host,
            addr: facts.callee_addr,
            contact: facts.callee_contact,
            server: facts.parties[1].server,
            identity: facts.parties[1].identity,
            media: facts.parties[1].media,
        },
    ]
}

/// Numbers compare without a leading `+`.
pub(crate) fn same_number(a: &str, b: &str) -> bool {
    !a.is_empty() && a.trim_start_matches('+') == b.trim_start_matches('+')
}

fn find_device<'r>(t: &'r Tenant, p: &PartyView<'_>) -> Option<&'r Device> {
    t.devices
        .iter()
        .find(|d| {
            d.sip_user
                .as_deref()
                .is_some_and(|u| same_number(u, p.number))
        })
        .or_else(|| {
            t.devices.iter().find(|d| {
                d.contact
                    .as_deref()
                    .is_some_and(|c| p.contact.is_some_and(|pc| pc.eq_ignore_ascii_case(c)))
            })
        })
        .or_else(|| t.devices.iter().find(|d| d.address == Some(p.addr)))
}

fn find_endpoint<'r>(t: &'r Tenant, p: &PartyView<'_>) -> Endpoint<'r> {
    let device = find_device(t, p);
    let user = match device {
        Some(d) => d
            .user
            .as_deref()
            .and_then(|name| t.users.iter().find(|u| u.name == name))
            .or_else(|| t.users.iter().find(|u| u.devices.contains(&d.id))),
        None => None,
    }
    .or_else(|| {
        t.users
            .iter()
            .find(|u| u.extensions.iter().any(|e| same_number(e, p.number)))
    });
    Endpoint { user, device }
}

fn owns_number(t: &Tenant, number: &str) -> bool {
    t.ddis.iter().any(|d| same_number(&d.number, number))
        || t.extensions.iter().any(|e| same_number(e, number))
}

/// The tenant of a call: the number dialled, then each party's endpoint or number, then domain.
fn find_tenant<'r>(rules: &'r Rules, parties: &[PartyView<'_>; 2]) -> Option<(&'r Tenant, String)> {
    let [caller, callee] = parties;
    let by_number = |p: &PartyView<'_>| {
        [Some(p.number), p.identity]
            .into_iter()
            .flatten()
            .find_map(|n| {
                rules.tenants.iter().find(|t| owns_number(t, n)).map(|t| {
                    (
                        t,
                        format!("{} {n} is a number of tenant {}", p.side.as_str(), t.name),
                    )
                })
            })
    };
    let by_endpoint = |p: &PartyView<'_>| {
        rules.tenants.iter().find_map(|t| {
            let ep = find_endpoint(t, p);
            ep.is_known().then(|| {
                (
                    t,
                    format!("{} is {} of tenant {}", p.side.as_str(), ep.name(), t.name),
                )
            })
        })
    };
    let by_domain = |p: &PartyView<'_>| {
        rules
            .tenants
            .iter()
            .find(|t| {
                t.domains
                    .iter()
                    .any(|d| !p.host.is_empty() && d.eq_ignore_ascii_case(p.host))
            })
            .map(|t| {
                (
                    t,
                    format!(
                        "{} domain {} is tenant {}'s",
                        p.side.as_str(),
                        p.host,
                        t.name
                    ),
                )
            })
    };
    by_number(callee)
        .or_else(|| by_endpoint(caller))
        .or_else(|| by_endpoint(callee))
        .or_else(|| by_number(caller))
        .or_else(|| by_domain(caller))
        .or_else(|| by_domain(callee))
}

/// Whether a party is ours, and why; `None` when nothing about the party itself tells (a
/// public number behind a server), for [`classify_in`] to settle from the other party.
///
/// Identity first: an endpoint, an extension or DDI of the tenant (the From/To number or the
/// asserted identity), the same number on another leg of the conversation. Then, for a party
/// whose signalling address is its own, its domain and its address. A party behind a server
/// (or a public number at an onnet address: a PBX or gateway there) is judged by where its
/// audio comes from and by what its number looks like, never by the hop's address.
fn is_internal(
    rules: &Rules,
    tenant: Option<&Tenant>,
    p: &PartyView<'_>,
    ep: &Endpoint<'_>,
    known: &[KnownParty],
) -> (Option<bool>, String) {
    let who = format!("{} {}", p.side.as_str(), p.number);
    if ep.is_known() {
        return (Some(true), format!("{who}: internal, {}", ep.name()));
    }
    let numbers = || [Some(p.number), p.identity].into_iter().flatten();
    if let Some(t) = tenant {
        for n in numbers() {
            let asserted = if n == p.number {
                String::new()
            } else {
                format!(" (asserted identity {n})")
            };
            if t.extensions.iter().any(|e| same_number(e, n)) {
                return (
                    Some(true),
                    format!(
                        "{who}: internal, an extension of tenant {}{asserted}",
                        t.name
                    ),
                );
            }
            if t.ddis.iter().any(|d| same_number(&d.number, n)) {
                return (
                    Some(true),
                    format!("{who}: internal, a DDI of tenant {}{asserted}", t.name),
                );
            }
        }
    }
    if let Some(k) = known
        .iter()
        .find(|k| numbers().any(|n| same_number(&k.number, n)))
    {
        let what = if k.internal { "internal" } else { "external" };
        return (
            Some(k.internal),
            format!(
                "{who}: {what}, as on leg {} of the same conversation",
                k.leg
            ),
        );
    }
    let shape = shape(p.number);
    let public = shape == Shape::Public;
    if public && p.server == Some(ServerEvidence::PutThrough) {
        return (
            Some(false),
            format!("{who}: external, a public number put through by a transfer"),
        );
    }
    let hop = match p.server {
        Some(ServerEvidence::PutThrough) => "put through by a transfer".to_string(),
        Some(why) => format!("signalled through {}, {}", p.addr, why.describe()),
        None if !public => {
            if rules.networks.domain_is_onnet(p.host) {
                return (
                    Some(true),
                    format!("{who}: internal, domain {} is onnet", p.host),
                );
            }
            if rules.networks.addr_is_onnet(p.addr) {
                return (
                    Some(true),
                    format!("{who}: internal, address {} is onnet", p.addr),
                );
            }
            return (
                Some(false),
                format!("{who}: external (not a known endpoint, number, domain or address)"),
            );
        }
        None if !rules.networks.addr_is_onnet(p.addr) => {
            return (
                Some(false),
                format!(
                    "{who}: external (a public number at offnet address {})",
                    p.addr
                ),
            );
        }
        None => format!(
            "a public number at onnet address {} (a PBX or gateway there)",
            p.addr
        ),
    };
    // A remote extension's audio may come from anywhere; a public number's from offnet says
    // the far end is outside.
    if let Some(m) = p.media
        && public
        && m != p.addr
        && !m.is_unspecified()
        && !rules.networks.servers.iter().any(|n| n.contains(m))
        && !rules.networks.addr_is_onnet(m)
    {
        return (
            Some(false),
            format!("{who}: external, {hop}; its audio comes from offnet address {m}"),
        );
    }
    match shape {
        Shape::Short => (
            Some(true),
            format!("{who}: internal, a short number {hop}: an extension"),
        ),
        Shape::Hidden => (
            Some(false),
            format!("{who}: external, a hidden number {hop}"),
        ),
        Shape::Name if rules.networks.domain_is_onnet(p.host) => (
            Some(true),
            format!("{who}: internal, a user of onnet domain {}, {hop}", p.host),
        ),
        Shape::Name => (
            Some(false),
            format!("{who}: external, a user of domain {}, {hop}", p.host),
        ),
        Shape::Public => (None, hop),
    }
}

/// Classifies a call: its tenant, the endpoint on each side and its direction.
pub fn classify<'r>(rules: &'r Rules, facts: &CallFacts<'_>) -> CallClass<'r> {
    classify_in(rules, facts, &[])
}

/// [`classify`], knowing how the parties of the conversation's other legs were judged.
///
/// A public number behind a server that nothing else identifies is settled by the other
/// party: the far end of a call one of ours makes or receives through the PBX is external,
/// and the number of a call that crosses from an external party to the PBX is ours (a DDI,
/// or the caller ID the PBX presents outbound). A forwarded call's caller (Diversion,
/// History-Info) is the original caller: external.
pub fn classify_in<'r>(
    rules: &'r Rules,
    facts: &CallFacts<'_>,
    known: &[KnownParty],
) -> CallClass<'r> {
    let parties = views(facts);
    let mut trace = Vec::new();
    let tenant = match find_tenant(rules, &parties)
        .or_else(|| {
            // A leg the PBX makes for a forward or transfer: the tenant of whoever it forwards
            // for, or of the conversation's other legs.
            let others = facts
                .diverted_from
                .into_iter()
                .chain(known.iter().map(|k| k.number.as_str()));
            others.into_iter().find_map(|n| {
                let belongs = |t: &&Tenant| {
                    owns_number(t, n)
                        || t.users
                            .iter()
                            .any(|u| u.extensions.iter().any(|e| same_number(e, n)))
                };
                rules.tenants.iter().find(belongs).map(|t| {
                    (
                        t,
                        format!(
                            "{n}, a party of the conversation, is a number of tenant {}",
                            t.name
                        ),
                    )
                })
            })
        })
        .or_else(|| match rules.tenants.as_slice() {
            // One PBX, one account: behind it the wire need not show a number the rules list.
            [only] => Some((only, "the only tenant".to_string())),
            _ => None,
        }) {
        Some((t, why)) => {
            trace.push(format!("tenant {}: {why}", t.name));
            Some(t)
        }
        None => {
            trace.push("no tenant: no number, endpoint or domain of the call is known".into());
            None
        }
    };
    let endpoint = |p: &PartyView<'_>| tenant.map(|t| find_endpoint(t, p)).unwrap_or_default();
    let [caller, callee] = &parties;
    let (caller_endpoint, callee_endpoint) = (endpoint(caller), endpoint(callee));
    let (c1, why_caller) = is_internal(rules, tenant, caller, &caller_endpoint, known);
    let (c2, why_callee) = is_internal(rules, tenant, callee, &callee_endpoint, known);
    let settle = |p: &PartyView<'_>, hop: &str, other: Option<bool>| -> (bool, String) {
        let who = format!("{} {}", p.side.as_str(), p.number);
        if p.side == Side::Caller
            && let Some(from) = facts.diverted_from
        {
            return (
                false,
                format!(
                    "{who}: external, the original caller of a call forwarded from {from}, {hop}"
                ),
            );
        }
        match other {
            Some(true) => (
                false,
                format!("{who}: external, a public number {hop}, the far end of one of ours"),
            ),
            Some(false) => (
                true,
                format!(
                    "{who}: internal, a public number {hop} that an external party's call crosses to: ours"
                ),
            ),
            None => {
                let onnet = rules.networks.addr_is_onnet(p.addr);
                let what = if onnet { "internal" } else { "external" };
                (
                    onnet,
                    format!(
                        "{who}: {what}, a public number {hop}; nothing else tells, so its address decides"
                    ),
                )
            }
        }
    };
    let (caller_internal, callee_internal, why_caller, why_callee) = match (c1, c2) {
        (Some(a), Some(b)) => (a, b, why_caller, why_callee),
        (None, Some(b)) => {
            let (a, why) = settle(caller, &why_caller, Some(b));
            (a, b, why, why_callee)
        }
        (Some(a), None) => {
            let (b, why) = settle(callee, &why_callee, Some(a));
            (a, b, why_caller, why)
        }
        (None, None) => {
            let (a, wa) = settle(caller, &why_caller, None);
            let (b, wb) = settle(callee, &why_callee, None);
            (a, b, wa, wb)
        }
    };
    trace.push(why_caller);
    trace.push(why_callee);
    // Who called whom: on a pickup leg the caller is on the callee side.
    let (from, to) = if facts.picked_up {
        trace.push("a pickup: the person who called is on the callee side of this leg".into());
        (callee_internal, caller_internal)
    } else {
        (caller_internal, callee_internal)
    };
    let direction = match (from, to) {
        (true, true) => Direction::Internal,
        (true, false) => Direction::Outbound,
        (false, true) => Direction::Inbound,
        (false, false) => Direction::ExternalToExternal,
    };
    trace.push(format!("direction: {}", direction.as_str()));
    CallClass {
        direction,
        caller_internal,
        callee_internal,
        tenant,
        caller_endpoint,
        callee_endpoint,
        trace,
        picked_up: facts.picked_up,
    }
}

/// A decision and what a policy needs to carry on with the call.
#[derive(Clone, Debug)]
pub(crate) struct Evaluation<'r> {
    pub decision: Decision,
    pub class: CallClass<'r>,
    pub mode: Mode,
    /// Whether each side (caller, callee) may start, stop, pause and resume on demand.
    pub on_demand: [bool; 2],
}

/// Decides whether to record a call when it is answered.
pub fn decide(rules: &Rules, facts: &CallFacts<'_>) -> Decision {
    evaluate(rules, facts, &[]).decision
}

pub(crate) fn evaluate<'r>(
    rules: &'r Rules,
    facts: &CallFacts<'_>,
    known: &[KnownParty],
) -> Evaluation<'r> {
    let class = classify_in(rules, facts, known);
    let mut trace = class.trace.clone();
    let mode = match facts.mode_header {
        None => Mode::Auto,
        Some(v) => match Mode::parse(v) {
            Some(m) => {
                trace.push(format!(
                    "mode {}: from header {}",
                    m.as_str(),
                    rules.mode_header
                ));
                m
            }
            None => {
                trace.push(format!(
                    "header {}: unknown mode {v:?}, ignored (auto)",
                    rules.mode_header
                ));
                Mode::Auto
            }
        },
    };
    let settings = applied_settings(&class);
    let on_demand = on_demand_sides(rules, &class, mode);
    let (record, reason) = auto_decision(rules, facts, &class, mode, known, &mut trace);
    let external_to_external_refused = !record
        && mode == Mode::Auto
        && class.direction == Direction::ExternalToExternal
        && class.tenant.is_some_and(|t| !t.allow_external_to_external);
    trace.push(format!(
        "decision: {} ({reason})",
        if record { "record" } else { "do not record" }
    ));
    Evaluation {
        decision: Decision {
            record,
            reason,
            trace,
            settings,
            direction: Some(class.direction),
            external_to_external_refused,
            tenant: class.tenant.map(|t| t.name.clone()),
            users: class.users(),
        },
        class,
        mode,
        on_demand,
    }
}

/// Device, then user, then account, field by field; the first internal side's endpoint counts.
fn applied_settings(class: &CallClass<'_>) -> Settings {
    let account = class.tenant.map(|t| t.settings.clone()).unwrap_or_default();
    class
        .legs()
        .iter()
        .map(|(side, ..)| class.endpoint(*side))
        .find(|ep| ep.is_known())
        .map(|ep| ep.settings().or(&account))
        .unwrap_or(account)
}

fn auto_decision(
    rules: &Rules,
    facts: &CallFacts<'_>,
    class: &CallClass<'_>,
    mode: Mode,
    known: &[KnownParty],
    trace: &mut Vec<String>,
) -> (bool, String) {
    let header = &rules.mode_header;
    match mode {
        Mode::Force => return (true, format!("mode force ({header})")),
        Mode::Deny => return (false, format!("mode deny ({header})")),
        Mode::Manual => {
            return (
                false,
                format!("mode manual ({header}): recorded only on demand"),
            );
        }
        Mode::Auto => {}
    }
    let Some(tenant) = class.tenant else {
        return (false, "no tenant matches the call".into());
    };
    let decided = ddi_step(tenant, facts, class, known, trace)
        .or_else(|| settings_step(tenant, class, trace))
        .or_else(|| role_step(rules, class, trace));
    match decided {
        Some(_)
            if class.direction == Direction::ExternalToExternal
                && !tenant.allow_external_to_external =>
        {
            let reason = format!(
                "external-to-external call refused: tenant {} does not allow it",
                tenant.name
            );
            trace.push(reason.clone());
            (false, reason)
        }
        Some(reason) => (true, reason),
        None if class.direction == Direction::ExternalToExternal
            && !tenant.allow_external_to_external =>
        {
            (
                false,
                format!(
                    "external-to-external call refused: tenant {} does not allow it",
                    tenant.name
                ),
            )
        }
        None => (
            false,
            format!("no rule of tenant {} records this call", tenant.name),
        ),
    }
}

/// The DDI the call went through: dialled on inbound calls, presented on outbound ones.
///
/// Behind a PBX the DDI is often not the number on the leg: the PBX puts an inbound call
/// through to the extension (the DDI stays in To, Diversion or History-Info, or on the
/// carrier leg of the conversation), and presents the DDI only on the carrier leg of an
/// outbound call (the caller's asserted identity, the user's `ddi` or the tenant's
/// `outbound_ddi`). A call from outside to a user with a `ddi` came through it.
fn ddi_step(
    tenant: &Tenant,
    facts: &CallFacts<'_>,
    class: &CallClass<'_>,
    known: &[KnownParty],
    trace: &mut Vec<String>,
) -> Option<String> {
    use super::rules::DdiOption;
    let dialled = if facts.request_user.is_empty() {
        facts.callee.user.as_str()
    } else {
        facts.request_user
    };
    let leg = known
        .iter()
        .filter(|k| k.internal)
        .map(|k| k.number.as_str());
    let (numbers, incoming): (Vec<&str>, bool) = match class.direction {
        Direction::Inbound | Direction::ExternalToExternal => (
            [
                Some(dialled),
                Some(facts.callee.user.as_str()),
                facts.parties[1].identity,
                facts.diverted_from,
                class.callee_endpoint.user.and_then(|u| u.ddi.as_deref()),
            ]
            .into_iter()
            .flatten()
            .chain(leg)
            .collect(),
            true,
        ),
        Direction::Outbound => {
            let user = class.caller_endpoint.user.and_then(|u| u.ddi.as_deref());
            (
                [
                    facts.parties[0].identity,
                    Some(facts.caller.user.as_str()),
                    user,
                    tenant.outbound_ddi.as_deref(),
                ]
                .into_iter()
                .flatten()
                .chain(leg)
                .collect(),
                false,
            )
        }
        Direction::Internal => return None,
    };
    let ddi = numbers
        .iter()
        .find_map(|n| tenant.ddis.iter().find(|d| same_number(&d.number, n)))?;
    let records = match ddi.option {
        DdiOption::All => true,
        DdiOption::Incoming => incoming,
        DdiOption::Outgoing => !incoming,
        DdiOption::Off => false,
    };
    let what = if incoming { "incoming" } else { "outgoing" };
    let line = format!(
        "DDI {} (option {}): {what} call",
        ddi.number,
        ddi.option.as_str()
    );
    if records {
        trace.push(format!("{line}, records"));
        Some(format!("DDI {} records {what} calls", ddi.number))
    } else {
        trace.push(format!("{line}, does not record"));
        None
    }
}

/// Each leg of ours: the endpoint (device over user) and the account, each on its own.
fn settings_step(
    tenant: &Tenant,
    class: &CallClass<'_>,
    trace: &mut Vec<String>,
) -> Option<String> {
    for &(side, dir, net) in &class.legs() {
        let cell = format!("{}.{}", dir.as_str(), net.as_str());
        let ep = class.endpoint(side);
        let endpoint = ep.records(dir, net, trace);
        let account = tenant.settings.records(dir, net);
        trace.push(match account {
            Some(v) => format!("account {}: {cell} = {v}", tenant.name),
            None => format!("account {}: {cell} unset", tenant.name),
        });
        if endpoint == Some(true) {
            return Some(format!("{} records {cell}", ep.name()));
        }
        if account == Some(true) {
            let overridden = if endpoint == Some(false) {
                format!(" (on its own: {} disabled it)", ep.name())
            } else {
                String::new()
            };
            return Some(format!(
                "account {} records {cell}{overridden}",
                tenant.name
            ));
        }
    }
    None
}

fn role_step(rules: &Rules, class: &CallClass<'_>, trace: &mut Vec<String>) -> Option<String> {
    for &(side, dir, net) in &class.legs() {
        let Some(user) = class.endpoint(side).user else {
            continue;
        };
        for rule in rules.role_rules.iter().filter(|r| r.enabled) {
            if !(rule.direction.covers(dir) && rule.origin.covers(net)) {
                continue;
            }
            if let Some(role) = user.roles.iter().find(|r| rule.auto_roles.contains(r)) {
                trace.push(format!(
                    "role rule {:?}: user {} has role {role}, {} {}",
                    rule.description,
                    user.name,
                    dir.as_str(),
                    net.as_str()
                ));
                return Some(format!(
                    "role rule {:?} records role {role}",
                    rule.description
                ));
            }
        }
    }
    trace.push("role rules: none records this call".into());
    None
}

/// On demand counts where the tenant allows it, for our own parties only, never under force or
/// deny; if any enabled role rule names manual roles, only those roles may use it.
fn on_demand_sides(rules: &Rules, class: &CallClass<'_>, mode: Mode) -> [bool; 2] {
    let Some(tenant) = class.tenant else {
        return [false; 2];
    };
    if !tenant.on_demand.enabled || matches!(mode, Mode::Force | Mode::Deny) {
        return [false; 2];
    }
    if class.direction == Direction::ExternalToExternal && !tenant.allow_external_to_external {
        return [false; 2];
    }
    let restricted = rules
        .role_rules
        .iter()
        .any(|r| r.enabled && !r.manual_roles.is_empty());
    let side_ok = |side: Side| {
        if !class.is_internal(side) {
            return false;
        }
        if !restricted {
            return true;
        }
        let Some(user) = class.endpoint(side).user else {
            return false;
        };
        class
            .legs()
            .iter()
            .filter(|(s, ..)| *s == side)
            .any(|&(_, dir, net)| {
                rules.role_rules.iter().any(|r| {
                    r.enabled
                        && r.direction.covers(dir)
                        && r.origin.covers(net)
                        && user.roles.iter().any(|role| r.manual_roles.contains(role))
                })
            })
    };
    [side_ok(Side::Caller), side_ok(Side::Callee)]
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::rules::*;
    use super::*;

    const CELLS: [(LegDirection, Network); 4] = [
        (LegDirection::Inbound, Network::Onnet),
        (LegDirection::Inbound, Network::Offnet),
        (LegDirection::Outbound, Network::Onnet),
        (LegDirection::Outbound, Network::Offnet),
    ];

    fn set(s: &mut Settings, dir: LegDirection, net: Network, v: bool) {
        let n = match dir {
            LegDirection::Inbound => &mut s.inbound,
            LegDirection::Outbound => &mut s.outbound,
        };
        match net {
            Network::Onnet => n.onnet = Some(v),
            Network::Offnet => n.offnet = Some(v),
        }
    }

    fn all(v: bool) -> Settings {
        let mut s = Settings::default();
        for (d, n) in CELLS {
            set(&mut s, d, n, v);
        }
        s
    }

    /// The four calls of the matrix, and the cell that alice's side sees in each.
    fn matrix_calls() -> [(&'static str, Call, (LegDirection, Network)); 4] {
        [
            (
                "inbound",
                inbound(),
                (LegDirection::Inbound, Network::Offnet),
            ),
            (
                "outbound",
                outbound(),
                (LegDirection::Outbound, Network::Offnet),
            ),
            (
                "alice->bob",
                alice_to_bob(),
                (LegDirection::Outbound, Network::Onnet),
            ),
            (
                "bob->alice",
                bob_to_alice(),
                (LegDirection::Inbound, Network::Onnet),
            ),
        ]
    }

    fn decided(rules: &Rules, call: &Call) -> Decision {
        decide(rules, &call.facts())
    }

    #[test]
    fn classification_of_the_fixture_calls() {
        let r = rules();
        let cases = [
            (inbound(), Direction::Inbound),
            (outbound(), Direction::Outbound),
            (alice_to_bob(), Direction::Internal),
            (external_to_external(), Direction::ExternalToExternal),
        ];
        for (call, dir) in cases {
            let c = classify(&r, &call.facts());
            assert_eq!(c.direction, dir, "{:?}", c.trace);
            assert_eq!(
                c.tenant.map(|t| t.name.as_str()),
                Some("acme"),
                "{:?}",
                c.trace
            );
        }
        let c = classify(&r, &inbound().facts());
        assert_eq!(c.callee_endpoint.device.unwrap().id, "alice-desk");
        assert_eq!(c.callee_endpoint.user.unwrap().name, "alice");
        assert_eq!(c.caller_endpoint, Endpoint::default());
        let c = classify(&r, &alice_to_bob().facts());
        assert_eq!(c.callee_endpoint.user.unwrap().name, "bob");
        assert!(c.callee_endpoint.device.is_none());
        // The decision carries them for dispatch (per-user email) and the catalog: a device
        // counts as its user.
        let d = decided(&r, &alice_to_bob());
        assert_eq!(
            (d.tenant.as_deref(), d.users),
            (Some("acme"), vec!["alice".to_owned(), "bob".to_owned()])
        );
        let d = decided(&r, &inbound());
        assert_eq!(d.users, ["alice"]);
        assert!(decided(&r, &external_to_external()).users.is_empty());
    }

    #[test]
    fn classification_by_domain_and_address() {
        let mut r = rules();
        // An unknown number on an onnet domain is ours; an unknown number at an onnet address too.
        let mut call = Call::new(("555", CARRIER), ("+4930555", CARRIER));
        call.caller.host = "pbx.acme.test".into();
        call.callee.host = "acme.test".into();
        let c = classify(&r, &call.facts());
        assert_eq!(c.direction, Direction::Outbound, "{:?}", c.trace);
        assert!(
            c.trace
                .iter()
                .any(|l| l.contains("domain pbx.acme.test is onnet"))
        );
        let call = Call::new(("+4930555", CARRIER), ("777", "10.9.9.9"));
        let c = classify(&r, &call.facts());
        assert_eq!(c.direction, Direction::Inbound, "{:?}", c.trace);
        assert!(
            c.trace
                .iter()
                .any(|l| l.contains("address 10.9.9.9 is onnet"))
        );
        // With no tenant at all, nothing is recorded and the trace says so.
        r.tenants.clear();
        let d = decided(&r, &call);
        assert!(!d.record);
        assert_eq!(d.reason, "no tenant matches the call");
    }

    #[test]
    fn account_matrix_every_cell() {
        for (dir, net) in CELLS {
            let mut r = rules();
            set(&mut acme(&mut r).settings, dir, net, true);
            for (name, call, _) in matrix_calls() {
                let d = decided(&r, &call);
                // The account covers both legs of an internal call.
                let expected = match name {
                    "inbound" => (dir, net) == (LegDirection::Inbound, Network::Offnet),
                    "outbound" => (dir, net) == (LegDirection::Outbound, Network::Offnet),
                    _ => net == Network::Onnet,
                };
                assert_eq!(
                    d.record, expected,
                    "account {dir:?} {net:?}, call {name}: {:#?}",
                    d.trace
                );
                if expected {
                    assert!(d.reason.starts_with("account acme records"), "{}", d.reason);
                }
            }
            // The same cell set to false records nothing.
            let mut r = rules();
            set(&mut acme(&mut r).settings, dir, net, false);
            for (name, call, _) in matrix_calls() {
                assert!(
                    !decided(&r, &call).record,
                    "account {dir:?} {net:?} false, call {name}"
                );
            }
        }
    }

    #[test]
    fn user_matrix_every_cell() {
        for (dir, net) in CELLS {
            let mut r = rules();
            set(&mut alice(&mut r).settings, dir, net, true);
            for (name, call, cell) in matrix_calls() {
                let d = decided(&r, &call);
                assert_eq!(
                    d.record,
                    cell == (dir, net),
                    "user {dir:?} {net:?}, call {name}: {:#?}",
                    d.trace
                );
                if d.record {
                    assert_eq!(
                        d.reason,
                        format!(
                            "device alice-desk of user alice records {}.{}",
                            dir.as_str(),
                            net.as_str()
                        )
                    );
                    assert!(d.trace.iter().any(|l| l.contains("inherits the user's")));
                }
            }
        }
    }

    #[test]
    fn device_matrix_every_cell() {
        for (dir, net) in CELLS {
            let mut r = rules();
            set(&mut alice_desk(&mut r).settings, dir, net, true);
            for (name, call, cell) in matrix_calls() {
                let d = decided(&r, &call);
                assert_eq!(
                    d.record,
                    cell == (dir, net),
                    "device {dir:?} {net:?}, call {name}: {:#?}",
                    d.trace
                );
                if d.record {
                    let line = format!(
                        "device alice-desk: {}.{} = true",
                        dir.as_str(),
                        net.as_str()
                    );
                    assert!(d.trace.contains(&line), "{:#?}", d.trace);
                }
            }
        }
    }

    #[test]
    fn explicit_device_setting_wins_over_the_user() {
        let mut r = rules();
        alice(&mut r).settings = all(true);
        alice_desk(&mut r).settings.inbound.offnet = Some(false);
        let d = decided(&r, &inbound());
        assert!(!d.record, "{:#?}", d.trace);
        assert!(
            d.trace
                .contains(&"device alice-desk: inbound.offnet = false".to_string())
        );
        // The device said nothing about outbound: the user's yes is inherited.
        let d = decided(&r, &outbound());
        assert!(d.record, "{:#?}", d.trace);

        let mut r = rules();
        alice(&mut r).settings = all(false);
        alice_desk(&mut r).settings.outbound.offnet = Some(true);
        assert!(decided(&r, &outbound()).record);
        assert!(!decided(&r, &inbound()).record);
    }

    #[test]
    fn a_user_without_the_device_uses_its_own_setting() {
        let mut r = rules();
        alice(&mut r).settings.inbound.offnet = Some(true);
        // alice on another phone (not alice-desk): matched by extension.
        let call = Call::new(("+4930555", CARRIER), ("201", "10.0.0.77"));
        let d = decided(&r, &call);
        assert!(d.record, "{:#?}", d.trace);
        assert_eq!(d.reason, "user alice records inbound.offnet");
    }

    #[test]
    fn account_is_considered_on_its_own() {
        let mut r = rules();
        acme(&mut r).settings = all(true);
        alice(&mut r).settings = all(false);
        alice_desk(&mut r).settings = all(false);
        for (name, call, _) in matrix_calls() {
            let d = decided(&r, &call);
            assert!(d.record, "{name}: {:#?}", d.trace);
            assert!(d.reason.starts_with("account acme records"), "{}", d.reason);
            if name != "bob->alice" {
                assert!(
                    d.reason
                        .contains("on its own: device alice-desk of user alice disabled it"),
                    "{}",
                    d.reason
                );
            }
        }
        // An account that records nothing does not stop an endpoint that records.
        let mut r = rules();
        acme(&mut r).settings = all(false);
        alice(&mut r).settings = all(true);
        assert!(decided(&r, &inbound()).record);
    }

    #[test]
    fn modes_from_the_header() {
        let mut r = rules();
        let d = decided(&r, &inbound().mode("force"));
        assert!(d.record);
        assert_eq!(d.reason, "mode force (X-Record-Mode)");
        assert!(
            d.trace
                .contains(&"mode force: from header X-Record-Mode".to_string())
        );

        acme(&mut r).settings = all(true);
        let d = decided(&r, &inbound().mode("Deny"));
        assert!(!d.record);
        assert_eq!(d.reason, "mode deny (X-Record-Mode)");
        let d = decided(&r, &inbound().mode("manual"));
        assert!(!d.record);
        assert!(d.reason.starts_with("mode manual"));
        let d = decided(&r, &inbound().mode("auto"));
        assert!(d.record);
        assert!(d.reason.starts_with("account acme"));
        let d = decided(&r, &inbound().mode("sometimes"));
        assert!(d.record);
        assert!(
            d.trace
                .iter()
                .any(|l| l.contains("unknown mode \"sometimes\", ignored"))
        );

        // Force wins over the external-to-external refusal, and a renamed header is named.
        r.mode_header = "X-Rec".into();
        let d = decided(&r, &external_to_external().mode("force"));
        assert!(d.record);
        assert_eq!(d.reason, "mode force (X-Rec)");
    }

    #[test]
    fn ddi_options() {
        let r = rules();
        let inbound_to = |ddi: &str| Call::new(("+4930555", CARRIER), (ddi, PBX));
        let outbound_from = |ddi: &str| Call::new((ddi, PBX), ("+4930555", CARRIER));
        let cases = [
            ("+4940100", true, false),
            ("+4940200", false, true),
            ("+4940300", true, true),
            ("+4940400", false, false),
        ];
        for (ddi, incoming, outgoing) in cases {
            let d = decided(&r, &inbound_to(ddi));
            assert_eq!(d.record, incoming, "inbound to {ddi}: {:#?}", d.trace);
            if incoming {
                assert_eq!(d.reason, format!("DDI {ddi} records incoming calls"));
            } else {
                assert!(d.trace.iter().any(
                    |l| l.starts_with(&format!("DDI {ddi}")) && l.ends_with("does not record")
                ));
            }
            let d = decided(&r, &outbound_from(ddi));
            assert_eq!(d.record, outgoing, "outbound from {ddi}: {:#?}", d.trace);
            if outgoing {
                assert_eq!(d.reason, format!("DDI {ddi} records outgoing calls"));
            }
        }
        // The dialled number is the Request-URI user, not the To user, and `+` is optional.
        let mut call = inbound_to("201");
        call.request_user = "4940300".into();
        assert!(decided(&r, &call).record);
    }

    #[test]
    fn ddi_comes_before_endpoint_settings() {
        let mut r = rules();
        acme(&mut r).settings = all(true);
        let d = decided(&r, &Call::new(("+4930555", CARRIER), ("+4940100", PBX)));
        assert_eq!(d.reason, "DDI +4940100 records incoming calls");
    }

    fn sales_rule() -> RoleRule {
        RoleRule {
            description: "sales inbound from customers".into(),
            enabled: true,
            auto_roles: vec!["sales".into()],
            manual_roles: vec![],
            direction: RuleDirection::In,
            origin: RuleOrigin::External,
        }
    }

    #[test]
    fn role_rules() {
        let mut r = rules();
        r.role_rules.push(sales_rule());
        let d = decided(&r, &inbound());
        assert!(d.record, "{:#?}", d.trace);
        assert_eq!(
            d.reason,
            "role rule \"sales inbound from customers\" records role sales"
        );
        // Out of the rule's direction or origin, or for another role: not recorded.
        assert!(!decided(&r, &outbound()).record);
        assert!(!decided(&r, &bob_to_alice()).record);
        let bob = Call::new(("+4930555", CARRIER), ("202", BOB));
        assert!(!decided(&r, &bob).record);
        r.role_rules[0].direction = RuleDirection::Both;
        r.role_rules[0].origin = RuleOrigin::Both;
        assert!(decided(&r, &outbound()).record);
        assert!(decided(&r, &bob_to_alice()).record);
        // A disabled rule does nothing.
        r.role_rules[0].enabled = false;
        let d = decided(&r, &inbound());
        assert!(!d.record);
        assert!(
            d.trace
                .contains(&"role rules: none records this call".to_string())
        );
    }

    #[test]
    fn external_to_external_is_refused_unless_allowed() {
        let mut r = rules();
        acme(&mut r).settings = all(true);
        let d = decided(&r, &external_to_external());
        assert!(!d.record, "{:#?}", d.trace);
        assert_eq!(
            d.reason,
            "external-to-external call refused: tenant acme does not allow it"
        );
        assert!(
            d.trace
                .iter()
                .any(|l| l.starts_with("direction: external-to-external"))
        );
        acme(&mut r).allow_external_to_external = true;
        let d = decided(&r, &external_to_external());
        assert!(d.record, "{:#?}", d.trace);
        assert!(d.reason.starts_with("account acme records inbound.offnet"));
    }

    #[test]
    fn nothing_set_records_nothing_and_says_so() {
        let r = rules();
        let d = decided(&r, &inbound());
        assert!(!d.record);
        assert_eq!(d.reason, "no rule of tenant acme records this call");
        assert_eq!(
            d.trace.last().unwrap(),
            "decision: do not record (no rule of tenant acme records this call)"
        );
    }

    #[test]
    fn applied_settings_merge_device_user_account() {
        let mut r = rules();
        acme(&mut r).settings.time_limit = Some(3600);
        acme(&mut r).settings.sample_rate = Some(8000);
        alice(&mut r).settings.sample_rate = Some(16000);
        alice(&mut r).settings.record_min_sec = Some(5);
        alice_desk(&mut r).settings.record_min_sec = Some(2);
        alice_desk(&mut r).settings.record_on = Some(RecordOn::Bridge);
        let s = decided(&r, &inbound()).settings;
        assert_eq!(s.time_limit, Some(3600));
        assert_eq!(s.sample_rate, Some(16000));
        assert_eq!(s.record_min_sec, Some(2));
        assert_eq!(s.record_on, Some(RecordOn::Bridge));
    }

    fn direction_of(r: &Rules, call: &Call) -> (Direction, Vec<String>) {
        let c = classify(r, &call.facts());
        (c.direction, c.trace)
    }

    /// The mirror between the phones and the PBX: every callee of an outbound call and every
    /// caller of an inbound one is signalled at the PBX, whether or not it is known as a
    /// server. The hop's address never makes the far end ours.
    #[test]
    fn parties_behind_the_pbx_are_judged_by_identity() {
        let r = rules();
        for known in [false, true] {
            let tag = |c: Call, side| if known { c.via_server(side) } else { c };
            let out = tag(
                Call::new(("201", ALICE), ("+34674014728", PBX)),
                Side::Callee,
            );
            let (dir, trace) = direction_of(&r, &out);
            assert_eq!(dir, Direction::Outbound, "{trace:#?}");
            assert!(
                !trace
                    .iter()
                    .any(|l| l.contains("address 10.0.0.1 is onnet")),
                "{trace:#?}"
            );
            assert!(
                trace
                    .iter()
                    .any(|l| l.contains("callee +34674014728: external")
                        && l.contains("the far end of one of ours")),
                "{trace:#?}"
            );
            if known {
                assert!(
                    trace
                        .iter()
                        .any(|l| l.contains("signalled through 10.0.0.1, a configured server")),
                    "{trace:#?}"
                );
            }
            let national = tag(Call::new(("201", ALICE), ("0911234567", PBX)), Side::Callee);
            assert_eq!(direction_of(&r, &national).0, Direction::Outbound);
            let inbound = tag(Call::new(("+4930555", PBX), ("201", ALICE)), Side::Caller);
            assert_eq!(direction_of(&r, &inbound).0, Direction::Inbound);
        }
        // An unlisted short number behind the PBX is an extension; so is a feature code.
        for callee in ["250", "*97"] {
            let c = Call::new(("201", ALICE), (callee, PBX)).via_server(Side::Callee);
            let (dir, trace) = direction_of(&r, &c);
            assert_eq!(dir, Direction::Internal, "{callee}: {trace:#?}");
            assert!(
                trace.iter().any(|l| l.contains("an extension")),
                "{trace:#?}"
            );
        }
        // A hidden caller put through by the PBX is from outside.
        let c = Call::new(("anonymous", PBX), ("201", ALICE)).via_server(Side::Caller);
        assert_eq!(direction_of(&r, &c).0, Direction::Inbound);
        // ...unless the network asserts one of our numbers for it.
        let c = Call::new(("anonymous", PBX), ("202", BOB))
            .via_server(Side::Caller)
            .asserted(Side::Caller, "+4940100");
        let (dir, trace) = direction_of(&r, &c);
        assert_eq!(dir, Direction::Internal, "{trace:#?}");
        assert!(
            trace
                .iter()
                .any(|l| l.contains("asserted identity +4940100")),
            "{trace:#?}"
        );
        // Audio from offnet settles a public number the PBX signals for.
        let c = Call::new(("+4930555", PBX), ("+4940999", CARRIER))
            .via_server(Side::Caller)
            .media(Side::Caller, "198.51.100.7");
        let (dir, trace) = direction_of(&r, &c);
        assert_eq!(dir, Direction::ExternalToExternal, "{trace:#?}");
        assert!(
            trace
                .iter()
                .any(|l| l.contains("offnet address 198.51.100.7")),
            "{trace:#?}"
        );
    }

    /// The mirror between the PBX and the carrier: the PBX signals for our side. A public
    /// number it presents to the carrier, or that the carrier calls it on, is ours even when
    /// it is not configured; a forward's caller is the original, external caller.
    #[test]
    fn parties_between_the_pbx_and_the_carrier() {
        let r = rules();
        for (caller, want) in [
            ("+4940999", Direction::Outbound),
            ("201", Direction::Outbound),
        ] {
            let c = Call::new((caller, PBX), ("+4930555", CARRIER)).via_server(Side::Caller);
            let (dir, trace) = direction_of(&r, &c);
            assert_eq!(dir, want, "{caller}: {trace:#?}");
        }
        let c = Call::new(("+4930555", CARRIER), ("+4940999", PBX)).via_server(Side::Callee);
        let (dir, trace) = direction_of(&r, &c);
        assert_eq!(dir, Direction::Inbound, "{trace:#?}");
        assert!(
            trace.iter().any(|l| l.contains("crosses to: ours")),
            "{trace:#?}"
        );

        let forward = Call::new(("+4930555", PBX), ("+4930666", CARRIER))
            .via_server(Side::Caller)
            .diverted_from("201");
        let c = classify(&r, &forward.facts());
        assert_eq!(c.direction, Direction::ExternalToExternal, "{:#?}", c.trace);
        assert_eq!(
            c.tenant.map(|t| t.name.as_str()),
            Some("acme"),
            "{:#?}",
            c.trace
        );
        assert!(
            c.trace.iter().any(|l| l.contains("forwarded from 201")),
            "{:#?}",
            c.trace
        );
        let mut r2 = rules();
        acme(&mut r2).settings = all(true);
        let d = decided(&r2, &forward);
        assert!(!d.record, "{:#?}", d.trace);
        assert!(
            d.reason.starts_with("external-to-external call refused"),
            "{}",
            d.reason
        );
        acme(&mut r2).allow_external_to_external = true;
        assert!(decided(&r2, &forward).record);
    }

    /// Another leg of the conversation says who a number is.
    #[test]
    fn the_conversation_tells_who_a_number_is() {
        let r = rules();
        let known = [KnownParty {
            number: "+4930555".into(),
            internal: false,
            leg: "leg-1@pbx".into(),
        }];
        // Without Diversion, a forward's caller would look like our caller ID to the carrier.
        let forward = Call::new(("+4930555", PBX), ("+4930666", CARRIER)).via_server(Side::Caller);
        assert_eq!(direction_of(&r, &forward).0, Direction::Outbound);
        let c = classify_in(&r, &forward.facts(), &known);
        assert_eq!(c.direction, Direction::ExternalToExternal, "{:#?}", c.trace);
        assert!(
            c.trace.iter().any(|l| l.contains("as on leg leg-1@pbx")),
            "{:#?}",
            c.trace
        );
    }

    /// The DDI of an inbound call is often not on the leg to the phone, and the DDI of an
    /// outbound call only on the carrier leg: the To user, the asserted identity, the
    /// conversation and the user's `outbound_ddi` stand in for it.
    #[test]
    fn ddi_found_behind_the_pbx() {
        let mut r = rules();
        // Inbound: the PBX calls alice's phone; To still names the DDI.
        let mut c = Call::new(("+4930555", PBX), ("201", ALICE)).via_server(Side::Caller);
        c.callee.user = "+4940100".into();
        let d = decided(&r, &c);
        assert!(d.record, "{:#?}", d.trace);
        assert_eq!(d.reason, "DDI +4940100 records incoming calls");
        // Outbound: the phone leg shows 201 only.
        let c = Call::new(("201", ALICE), ("+4930555", PBX)).via_server(Side::Callee);
        assert!(!decided(&r, &c).record);
        alice(&mut r).ddi = Some("+4940200".into());
        let d = decided(&r, &c);
        assert!(d.record, "{:#?}", d.trace);
        assert_eq!(d.reason, "DDI +4940200 records outgoing calls");
        // ...or the carrier leg of the same conversation shows it.
        let r = rules();
        let known = [KnownParty {
            number: "+4940300".into(),
            internal: true,
            leg: "carrier-leg".into(),
        }];
        let d = evaluate(&r, &c.facts(), &known).decision;
        assert!(d.record, "{:#?}", d.trace);
    }
}
