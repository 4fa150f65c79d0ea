//! The recording rules: networks, tenants, users, devices, DDIs, role rules and modes, as plain
//! data. The binary builds them from its TOML config; [`super::decide`] reads them.

use std::net::IpAddr;

use super::signals::InfoRecordHeader;
pub use crate::net::{IpNet, IpNetError};
use crate::vocab::RecordingFormat;

/// Everything a [`super::RulesPolicy`] decides from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub networks: Networks,
    pub tenants: Vec<Tenant>,
    pub role_rules: Vec<RoleRule>,
    /// The SIP header a PBX or IVR sets to choose a call's [`Mode`].
    pub mode_header: String,
    pub info_record: InfoRecordHeader,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            networks: Networks::default(),
            tenants: Vec::new(),
            role_rules: Vec::new(),
            mode_header: "X-Record-Mode".into(),
            info_record: InfoRecordHeader::default(),
        }
    }
}

/// Which addresses and domains are ours (the PBX, the phones); everything else is offnet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Networks {
    pub onnet: Vec<IpNet>,
    pub onnet_domains: Vec<String>,
    /// PBX, proxy, SBC and media relay addresses: infrastructure, never a party. The engine
    /// learns more from the traffic (`crate::servers`).
    pub servers: Vec<IpNet>,
}

impl Networks {
    pub fn addr_is_onnet(&self, addr: IpAddr) -> bool {
        self.onnet.iter().any(|n| n.contains(addr))
    }

    pub fn domain_is_onnet(&self, host: &str) -> bool {
        !host.is_empty()
            && self
                .onnet_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(host))
    }
}

/// An account: its numbers, extensions, domains, people and phones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub ddis: Vec<Ddi>,
    /// Extensions of the tenant that belong to no user (queues, IVRs, hunt groups).
    pub extensions: Vec<String>,
    pub domains: Vec<String>,
    /// The account-level setting: considered on its own (see `docs/rules.md`).
    pub settings: Settings,
    pub on_demand: OnDemand,
    /// Whether a call between two external parties may be recorded.
    pub allow_external_to_external: bool,
    /// What a transfer between our users does to a recording.
    pub transfers: TransferPolicy,
    /// The DDI the PBX presents on outbound calls of users that have none of their own.
    pub outbound_ddi: Option<String>,
    pub users: Vec<User>,
    pub devices: Vec<Device>,
}

/// What a transfer, forward or pickup does to the recording of a conversation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransferPolicy {
    /// The recording goes on while the external party is present, whoever of ours takes the
    /// call, and a new leg to one of ours is recorded as the conversation was
    /// (IvozProvider's automatic DDI recording).
    #[default]
    Inherit,
    /// The call is decided again with its new party: the new user's settings start or stop
    /// the recording (PortSIP).
    Decide,
}

impl TransferPolicy {
    pub fn parse(s: &str) -> Option<TransferPolicy> {
        match s {
            "inherit" => Some(TransferPolicy::Inherit),
            "decide" => Some(TransferPolicy::Decide),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransferPolicy::Inherit => "inherit",
            TransferPolicy::Decide => "decide",
        }
    }
}

/// A public number of a tenant and whether calls through it are recorded (IvozProvider).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ddi {
    pub number: String,
    pub option: DdiOption,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DdiOption {
    #[default]
    Off,
    Incoming,
    Outgoing,
    All,
}

impl DdiOption {
    pub fn as_str(self) -> &'static str {
        match self {
            DdiOption::Off => "off",
            DdiOption::Incoming => "incoming",
            DdiOption::Outgoing => "outgoing",
            DdiOption::All => "all",
        }
    }
}

/// Passive on-demand control: codes a party dials during a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnDemand {
    pub enabled: bool,
    /// Starts a recording, or stops a running one.
    pub toggle: String,
    pub pause: String,
    pub resume: String,
    /// Also count codes dialled as tones in the audio (the engine's Goertzel detector).
    pub inband: bool,
}

impl Default for OnDemand {
    fn default() -> Self {
        Self {
            enabled: false,
            toggle: "*1".into(),
            pause: "*48".into(),
            resume: "*49".into(),
            inband: false,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub extensions: Vec<String>,
    pub roles: Vec<String>,
    pub settings: Settings,
    /// Ids of the user's devices (a device may also name its user).
    pub devices: Vec<String>,
    /// The user's own DDI: calls from outside to it reach this user, and the PBX presents it
    /// on the user's outbound calls (Kazoo's external caller ID, IvozProvider's outgoing
    /// DDI). Between the phones and the PBX the wire shows neither; this says it.
    pub ddi: Option<String>,
}

/// A phone or softphone, recognised by SIP user, contact or address (any that is set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub sip_user: Option<String>,
    pub contact: Option<String>,
    pub address: Option<IpAddr>,
    pub settings: Settings,
    pub user: Option<String>,
}

/// Whether calls are recorded, per direction and network, in the Kazoo shape; `None` is unset
/// and inherits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Networked {
    pub onnet: Option<bool>,
    pub offnet: Option<bool>,
}

impl Networked {
    pub fn get(&self, network: Network) -> Option<bool> {
        match network {
            Network::Onnet => self.onnet,
            Network::Offnet => self.offnet,
        }
    }
}

/// A scope's recording setting (account, user or device).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub inbound: Networked,
    pub outbound: Networked,
    pub format: Option<RecordingFormat>,
    /// Recordings shorter than this are deleted (by the store).
    pub record_min_sec: Option<u32>,
    /// Recordings stop this many seconds after the answer.
    pub time_limit: Option<u32>,
    pub record_on: Option<RecordOn>,
    pub sample_rate: Option<u32>,
}

impl Settings {
    /// Whether this scope records a leg going `dir` to an `network` party; `None` if unset.
    pub fn records(&self, dir: LegDirection, network: Network) -> Option<bool> {
        match dir {
            LegDirection::Inbound => self.inbound.get(network),
            LegDirection::Outbound => self.outbound.get(network),
        }
    }

    /// This scope's values, with unset ones taken from `fallback`.
    pub fn or(&self, fallback: &Settings) -> Settings {
        let net = |a: Networked, b: Networked| Networked {
            onnet: a.onnet.or(b.onnet),
            offnet: a.offnet.or(b.offnet),
        };
        Settings {
            inbound: net(self.inbound, fallback.inbound),
            outbound: net(self.outbound, fallback.outbound),
            format: self.format.or(fallback.format),
            record_min_sec: self.record_min_sec.or(fallback.record_min_sec),
            time_limit: self.time_limit.or(fallback.time_limit),
            record_on: self.record_on.or(fallback.record_on),
            sample_rate: self.sample_rate.or(fallback.sample_rate),
        }
    }
}

/// When a recording begins: at the 200 OK, or at the first RTP in both directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordOn {
    Answer,
    Bridge,
}

/// A leg as an endpoint sees it: a call it receives or a call it makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegDirection {
    Inbound,
    Outbound,
}

impl LegDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            LegDirection::Inbound => "inbound",
            LegDirection::Outbound => "outbound",
        }
    }
}

/// Whether the other party of a leg is ours (onnet) or not (offnet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    Onnet,
    Offnet,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Onnet => "onnet",
            Network::Offnet => "offnet",
        }
    }
}

/// A pascom-style rule: roles recorded automatically and roles that may record on demand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRule {
    pub description: String,
    pub enabled: bool,
    pub auto_roles: Vec<String>,
    pub manual_roles: Vec<String>,
    pub direction: RuleDirection,
    pub origin: RuleOrigin,
}

/// Which calls of a role-holder a rule covers: those it receives, makes, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleDirection {
    In,
    Out,
    Both,
}

impl RuleDirection {
    pub fn covers(self, dir: LegDirection) -> bool {
        matches!(
            (self, dir),
            (RuleDirection::Both, _)
                | (RuleDirection::In, LegDirection::Inbound)
                | (RuleDirection::Out, LegDirection::Outbound)
        )
    }
}

/// Which other parties a rule covers: ours (internal), others (external) or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleOrigin {
    Internal,
    External,
    Both,
}

impl RuleOrigin {
    pub fn covers(self, network: Network) -> bool {
        matches!(
            (self, network),
            (RuleOrigin::Both, _)
                | (RuleOrigin::Internal, Network::Onnet)
                | (RuleOrigin::External, Network::Offnet)
        )
    }
}

/// A call's mode (pascom MDC_MON_MODE), from the mode header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The rules decide.
    #[default]
    Auto,
    /// Always recorded; on-demand stop and pause are ignored.
    Force,
    /// Never recorded; on-demand requests are ignored.
    Deny,
    /// Not recorded until a party asks (where the tenant allows on-demand).
    Manual,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Force => "force",
            Mode::Deny => "deny",
            Mode::Manual => "manual",
        }
    }

    /// Parses a header value, ignoring case and surrounding blanks.
    pub fn parse(value: &str) -> Option<Mode> {
        let v = value.trim();
        [Mode::Auto, Mode::Force, Mode::Deny, Mode::Manual]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_ignoring_case() {
        assert_eq!(Mode::parse(" Force "), Some(Mode::Force));
        assert_eq!(Mode::parse("DENY"), Some(Mode::Deny));
        assert_eq!(Mode::parse("manual"), Some(Mode::Manual));
        assert_eq!(Mode::parse("auto"), Some(Mode::Auto));
        assert_eq!(Mode::parse("sometimes"), None);
    }

    #[test]
    fn settings_fall_back_field_by_field() {
        let dev = Settings {
            inbound: Networked {
                onnet: Some(false),
                offnet: None,
            },
            sample_rate: Some(16000),
            ..Settings::default()
        };
        let user = Settings {
            inbound: Networked {
                onnet: Some(true),
                offnet: Some(true),
            },
            sample_rate: Some(8000),
            time_limit: Some(60),
            ..Settings::default()
        };
        let m = dev.or(&user);
        assert_eq!(
            m.inbound,
            Networked {
                onnet: Some(false),
                offnet: Some(true)
            }
        );
        assert_eq!(m.sample_rate, Some(16000));
        assert_eq!(m.time_limit, Some(60));
    }
}
