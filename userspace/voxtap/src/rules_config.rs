//! The `[rules]` part of the config: TOML into [`Rules`]. Serde reads the shape (unknown keys,
//! wrong types and unknown option values fail with their line); the conversion then refuses
//! contradictions (an extension on two users, a DDI in two tenants, a device of an unknown
//! user...) naming the line of the offending value.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::{Result, bail};
use serde::Deserialize;
use toml::Spanned;
use voxtap_core::policy::{
    Ddi, DdiOption, Device, InfoRecordHeader, IpNet, Networked, Networks, OnDemand, RecordOn,
    RoleRule, RuleDirection, RuleOrigin, Rules, Settings, Tenant, TransferPolicy, User,
};

use crate::config::line_col;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSection {
    #[serde(default = "default_mode_header")]
    mode_header: Spanned<String>,
    #[serde(default)]
    networks: NetworksToml,
    #[serde(default)]
    info_record: InfoRecordToml,
    #[serde(default)]
    role_rules: Vec<RoleRuleToml>,
    #[serde(default)]
    tenants: Vec<TenantToml>,
}

fn default_mode_header() -> Spanned<String> {
    Spanned::new(0..0, Rules::default().mode_header)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct NetworksToml {
    onnet: Vec<Spanned<String>>,
    onnet_domains: Vec<String>,
    servers: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct InfoRecordToml {
    name: String,
    on: String,
    off: String,
}

impl Default for InfoRecordToml {
    fn default() -> Self {
        let d = InfoRecordHeader::default();
        Self {
            name: d.name,
            on: d.on,
            off: d.off,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleRuleToml {
    description: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    auto_roles: Vec<String>,
    #[serde(default)]
    manual_roles: Vec<String>,
    #[serde(default = "both_directions")]
    direction: DirectionToml,
    #[serde(default = "both_origins")]
    origin: OriginToml,
}

fn yes() -> bool {
    true
}

fn both_directions() -> DirectionToml {
    DirectionToml::Both
}

fn both_origins() -> OriginToml {
    OriginToml::Both
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DirectionToml {
    In,
    Out,
    Both,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OriginToml {
    Internal,
    External,
    Both,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantToml {
    name: Spanned<String>,
    #[serde(default)]
    ddis: Vec<DdiToml>,
    #[serde(default)]
    extensions: Vec<Spanned<String>>,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    settings: SettingsToml,
    #[serde(default)]
    on_demand: OnDemandToml,
    #[serde(default)]
    allow_external_to_external: bool,
    #[serde(default)]
    transfers: TransfersToml,
    #[serde(default)]
    outbound_ddi: Option<String>,
    #[serde(default)]
    users: Vec<UserToml>,
    #[serde(default)]
    devices: Vec<DeviceToml>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TransfersToml {
    #[default]
    Inherit,
    Decide,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DdiToml {
    number: Spanned<String>,
    option: DdiOptionToml,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DdiOptionToml {
    Off,
    Incoming,
    Outgoing,
    All,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct NetworkedToml {
    onnet: Option<bool>,
    offnet: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SettingsToml {
    inbound: NetworkedToml,
    outbound: NetworkedToml,
    format: Option<crate::config::FormatName>,
    record_min_sec: Option<u32>,
    time_limit: Option<Spanned<u32>>,
    record_on: Option<RecordOnToml>,
    sample_rate: Option<Spanned<u32>>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RecordOnToml {
    Answer,
    Bridge,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct OnDemandToml {
    enabled: bool,
    toggle: Spanned<String>,
    pause: Spanned<String>,
    resume: Spanned<String>,
    inband: bool,
}

impl Default for OnDemandToml {
    fn default() -> Self {
        let d = OnDemand::default();
        Self {
            enabled: d.enabled,
            toggle: Spanned::new(0..0, d.toggle),
            pause: Spanned::new(0..0, d.pause),
            resume: Spanned::new(0..0, d.resume),
            inband: d.inband,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserToml {
    name: Spanned<String>,
    #[serde(default)]
    extensions: Vec<Spanned<String>>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    settings: SettingsToml,
    #[serde(default)]
    devices: Vec<Spanned<String>>,
    #[serde(default)]
    ddi: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceToml {
    id: Spanned<String>,
    sip_user: Option<String>,
    contact: Option<String>,
    address: Option<Spanned<String>>,
    #[serde(default)]
    settings: SettingsToml,
    user: Option<Spanned<String>>,
}

/// Names the line of a value; `text` is the whole config file.
struct Locator<'t> {
    text: &'t str,
}

impl Locator<'_> {
    fn at<T>(&self, v: &Spanned<T>) -> String {
        let span = v.span();
        if span.is_empty() && span.start == 0 {
            // A default, not in the file.
            return "[rules]".into();
        }
        let (line, col) = line_col(self.text, span.start);
        format!("line {line}, column {col}")
    }
}

/// Numbers compare as the policy compares them: without a leading `+`.
fn number_key(n: &str) -> String {
    n.trim_start_matches('+').to_string()
}

impl RulesSection {
    /// Converts and checks the section; `text` is the config file, for line numbers.
    pub fn to_rules(&self, text: &str) -> Result<Rules> {
        let loc = Locator { text };
        if self.mode_header.get_ref().trim().is_empty() {
            bail!(
                "{}: rules.mode_header must not be empty",
                loc.at(&self.mode_header)
            );
        }
        if self.info_record.name.trim().is_empty()
            || self.info_record.on.is_empty()
            || self.info_record.off.is_empty()
            || self
                .info_record
                .on
                .eq_ignore_ascii_case(&self.info_record.off)
        {
            bail!("rules.info_record needs a header name and two different values for on and off");
        }
        let mut onnet = Vec::new();
        for n in &self.networks.onnet {
            match n.get_ref().parse::<IpNet>() {
                Ok(net) => onnet.push(net),
                Err(e) => bail!("{}: bad network in rules.networks.onnet: {e}", loc.at(n)),
            }
        }
        let mut servers = Vec::new();
        for n in &self.networks.servers {
            match n.get_ref().parse::<IpNet>() {
                Ok(net) => servers.push(net),
                Err(e) => bail!("{}: bad address in rules.networks.servers: {e}", loc.at(n)),
            }
        }
        let mut role_rules = Vec::new();
        for r in &self.role_rules {
            role_rules.push(RoleRule {
                description: r.description.clone(),
                enabled: r.enabled,
                auto_roles: r.auto_roles.clone(),
                manual_roles: r.manual_roles.clone(),
                direction: match r.direction {
                    DirectionToml::In => RuleDirection::In,
                    DirectionToml::Out => RuleDirection::Out,
                    DirectionToml::Both => RuleDirection::Both,
                },
                origin: match r.origin {
                    OriginToml::Internal => RuleOrigin::Internal,
                    OriginToml::External => RuleOrigin::External,
                    OriginToml::Both => RuleOrigin::Both,
                },
            });
        }
        let mut tenant_names: HashMap<&str, ()> = HashMap::new();
        // A DDI belongs to one tenant: number → tenant name.
        let mut ddi_owner: HashMap<String, &str> = HashMap::new();
        let mut tenants = Vec::new();
        for t in &self.tenants {
            let name = t.name.get_ref().as_str();
            if name.trim().is_empty() {
                bail!("{}: a tenant needs a name", loc.at(&t.name));
            }
            if tenant_names.insert(name, ()).is_some() {
                bail!("{}: tenant {name} is defined twice", loc.at(&t.name));
            }
            tenants.push(self.tenant(&loc, t, &mut ddi_owner)?);
        }
        Ok(Rules {
            networks: Networks {
                onnet,
                onnet_domains: self.networks.onnet_domains.clone(),
                servers,
            },
            tenants,
            role_rules,
            mode_header: self.mode_header.get_ref().trim().to_string(),
            info_record: InfoRecordHeader {
                name: self.info_record.name.clone(),
                on: self.info_record.on.clone(),
                off: self.info_record.off.clone(),
            },
        })
    }

    fn tenant<'s>(
        &self,
        loc: &Locator<'_>,
        t: &'s TenantToml,
        ddi_owner: &mut HashMap<String, &'s str>,
    ) -> Result<Tenant> {
        let tn = t.name.get_ref().as_str();
        let mut ddis = Vec::new();
        for d in &t.ddis {
            let number = d.number.get_ref();
            if number.trim().is_empty() {
                bail!("{}: an empty DDI number in tenant {tn}", loc.at(&d.number));
            }
            if let Some(other) = ddi_owner.insert(number_key(number), tn) {
                bail!(
                    "{}: DDI {number} of tenant {tn} is already a DDI of tenant {other}",
                    loc.at(&d.number)
                );
            }
            ddis.push(Ddi {
                number: number.clone(),
                option: match d.option {
                    DdiOptionToml::Off => DdiOption::Off,
                    DdiOptionToml::Incoming => DdiOption::Incoming,
                    DdiOptionToml::Outgoing => DdiOption::Outgoing,
                    DdiOptionToml::All => DdiOption::All,
                },
            });
        }
        // Every extension of the tenant, on the tenant itself or on a user: number → owner.
        let mut ext_owner: HashMap<String, String> = HashMap::new();
        let mut claim = |e: &Spanned<String>, owner: String| -> Result<()> {
            let n = e.get_ref();
            if n.trim().is_empty() {
                bail!("{}: an empty extension in tenant {tn}", loc.at(e));
            }
            if ddi_owner.get(&number_key(n)).is_some_and(|o| *o == tn) {
                bail!(
                    "{}: extension {n} of {owner} is also a DDI of tenant {tn}",
                    loc.at(e)
                );
            }
            if let Some(first) = ext_owner.insert(number_key(n), owner.clone()) {
                bail!(
                    "{}: extension {n} of {owner} is already an extension of {first}",
                    loc.at(e)
                );
            }
            Ok(())
        };
        for e in &t.extensions {
            claim(e, format!("tenant {tn}"))?;
        }
        let mut users = Vec::new();
        for u in &t.users {
            let un = u.name.get_ref();
            if un.trim().is_empty() {
                bail!("{}: a user of tenant {tn} needs a name", loc.at(&u.name));
            }
            if users.iter().any(|x: &User| x.name == *un) {
                bail!(
                    "{}: user {un} is defined twice in tenant {tn}",
                    loc.at(&u.name)
                );
            }
            for e in &u.extensions {
                claim(e, format!("user {un}"))?;
            }
            users.push(User {
                name: un.clone(),
                extensions: u.extensions.iter().map(|e| e.get_ref().clone()).collect(),
                roles: u.roles.clone(),
                settings: settings(loc, &u.settings)?,
                devices: u.devices.iter().map(|d| d.get_ref().clone()).collect(),
                ddi: u.ddi.clone(),
            });
        }
        let mut devices: Vec<Device> = Vec::new();
        for d in &t.devices {
            let id = d.id.get_ref();
            if id.trim().is_empty() {
                bail!("{}: a device of tenant {tn} needs an id", loc.at(&d.id));
            }
            if devices.iter().any(|x| x.id == *id) {
                bail!(
                    "{}: device {id} is defined twice in tenant {tn}",
                    loc.at(&d.id)
                );
            }
            if d.sip_user.is_none() && d.contact.is_none() && d.address.is_none() {
                bail!(
                    "{}: device {id} needs a sip_user, a contact or an address to be recognised",
                    loc.at(&d.id)
                );
            }
            let address = match &d.address {
                None => None,
                Some(a) => match a.get_ref().parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => bail!(
                        "{}: device {id}: `{}` is not an IP address",
                        loc.at(a),
                        a.get_ref()
                    ),
                },
            };
            if let Some(u) = &d.user
                && !users.iter().any(|x| x.name == *u.get_ref())
            {
                bail!(
                    "{}: device {id} belongs to unknown user {} of tenant {tn}",
                    loc.at(u),
                    u.get_ref()
                );
            }
            devices.push(Device {
                id: id.clone(),
                sip_user: d.sip_user.clone(),
                contact: d.contact.clone(),
                address,
                settings: settings(loc, &d.settings)?,
                user: d.user.as_ref().map(|u| u.get_ref().clone()),
            });
        }
        // Users name their devices: each must exist, belong to one user, and agree with the
        // device's own `user`.
        let mut device_owner: HashMap<&str, &str> = HashMap::new();
        for u in &t.users {
            let un = u.name.get_ref().as_str();
            for dref in &u.devices {
                let id = dref.get_ref().as_str();
                let Some(dev) = devices.iter().find(|d| d.id == id) else {
                    bail!("{}: user {un} names unknown device {id}", loc.at(dref));
                };
                if let Some(other) = device_owner.insert(id, un) {
                    bail!(
                        "{}: device {id} is named by users {other} and {un}",
                        loc.at(dref)
                    );
                }
                if let Some(owner) = dev.user.as_deref().filter(|o| *o != un) {
                    bail!(
                        "{}: user {un} names device {id}, which says it belongs to user {owner}",
                        loc.at(dref)
                    );
                }
            }
        }
        let od = &t.on_demand;
        let codes = [
            ("toggle", &od.toggle),
            ("pause", &od.pause),
            ("resume", &od.resume),
        ];
        for (what, code) in codes {
            let c = code.get_ref();
            if c.is_empty()
                || !c
                    .chars()
                    .all(|ch| matches!(ch, '0'..='9' | '*' | '#' | 'A'..='D'))
            {
                bail!(
                    "{}: on_demand.{what} of tenant {tn} must be DTMF digits (0-9 * # A-D), not {c:?}",
                    loc.at(code)
                );
            }
        }
        for (i, (a, ca)) in codes.iter().enumerate() {
            for (b, cb) in &codes[i + 1..] {
                let (x, y) = (ca.get_ref(), cb.get_ref());
                // Codes are matched on the tail of the digits dialled so far, after each
                // digit: a code inside another fires first, and the longer never is dialled.
                let (short, long, (ws, wl)) = if x.len() <= y.len() {
                    (x, y, (*a, *b))
                } else {
                    (y, x, (*b, *a))
                };
                if long.contains(short.as_str()) {
                    bail!(
                        "{}: on_demand.{a} ({x}) and on_demand.{b} ({y}) of tenant {tn} overlap: {ws} {short} fires while {wl} {long} is dialled, so {wl} {long} can never be dialled (see {})",
                        loc.at(cb),
                        loc.at(ca)
                    );
                }
            }
        }
        Ok(Tenant {
            name: tn.to_string(),
            ddis,
            extensions: t.extensions.iter().map(|e| e.get_ref().clone()).collect(),
            domains: t.domains.clone(),
            settings: settings(loc, &t.settings)?,
            on_demand: OnDemand {
                enabled: od.enabled,
                toggle: od.toggle.get_ref().clone(),
                pause: od.pause.get_ref().clone(),
                resume: od.resume.get_ref().clone(),
                inband: od.inband,
            },
            allow_external_to_external: t.allow_external_to_external,
            transfers: match t.transfers {
                TransfersToml::Inherit => TransferPolicy::Inherit,
                TransfersToml::Decide => TransferPolicy::Decide,
            },
            outbound_ddi: t.outbound_ddi.clone(),
            users,
            devices,
        })
    }
}

fn settings(loc: &Locator<'_>, s: &SettingsToml) -> Result<Settings> {
    let net = |n: &NetworkedToml| Networked {
        onnet: n.onnet,
        offnet: n.offnet,
    };
    if let Some(r) = &s.sample_rate
        && !matches!(*r.get_ref(), 8000 | 16000 | 32000 | 44100 | 48000)
    {
        bail!(
            "{}: sample_rate must be 8000, 16000, 32000, 44100 or 48000, not {}",
            loc.at(r),
            r.get_ref()
        );
    }
    if let Some(t) = &s.time_limit
        && *t.get_ref() == 0
    {
        bail!(
            "{}: time_limit must be above 0 (leave it out for no limit)",
            loc.at(t)
        );
    }
    Ok(Settings {
        inbound: net(&s.inbound),
        outbound: net(&s.outbound),
        format: s.format.map(crate::config::FormatName::format),
        record_min_sec: s.record_min_sec,
        time_limit: s.time_limit.as_ref().map(|t| *t.get_ref()),
        record_on: s.record_on.map(|r| match r {
            RecordOnToml::Answer => RecordOn::Answer,
            RecordOnToml::Bridge => RecordOn::Bridge,
        }),
        sample_rate: s.sample_rate.as_ref().map(|r| *r.get_ref()),
    })
}

/// One paragraph for `voxtap rules check`.
pub fn summary(rules: &Rules) -> String {
    let users: usize = rules.tenants.iter().map(|t| t.users.len()).sum();
    let devices: usize = rules.tenants.iter().map(|t| t.devices.len()).sum();
    let ddis: usize = rules.tenants.iter().map(|t| t.ddis.len()).sum();
    let mut out = format!(
        "rules OK: {} tenants, {users} users, {devices} devices, {ddis} DDIs, {} role rules, {} onnet networks, mode header {}\n",
        rules.tenants.len(),
        rules.role_rules.len(),
        rules.networks.onnet.len(),
        rules.mode_header
    );
    for t in &rules.tenants {
        out.push_str(&format!(
            "  tenant {}: {} users, {} devices, {} DDIs, {} extensions, on-demand {}, external-to-external {}\n",
            t.name,
            t.users.len(),
            t.devices.len(),
            t.ddis.len(),
            t.extensions.len() + t.users.iter().map(|u| u.extensions.len()).sum::<usize>(),
            if t.on_demand.enabled { "on" } else { "off" },
            if t.allow_external_to_external { "allowed" } else { "refused" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use voxtap_core::policy::{DdiOption, RuleDirection, RuleOrigin};

    const BASE: &str = r#"
[rules.networks]
onnet = ["10.0.0.0/8"]

[[rules.tenants]]
name = "acme"
ddis = [{ number = "+4940100", option = "incoming" }]

[[rules.tenants.users]]
name = "alice"
extensions = ["201"]

[[rules.tenants.devices]]
id = "desk"
address = "10.0.0.21"
user = "alice"
"#;

    fn err(text: &str) -> String {
        format!(
            "{:#}",
            Config::parse(text).expect_err("config must be refused")
        )
    }

    #[test]
    fn shipped_example_parses() {
        let c = Config::parse(include_str!("../../../docs/rules.example.toml")).unwrap();
        let r = c.compiled_rules.unwrap();
        assert_eq!(r.mode_header, "X-Record-Mode");
        assert_eq!(r.networks.onnet.len(), 2);
        assert_eq!(r.role_rules[0].direction, RuleDirection::Both);
        assert_eq!(r.role_rules[0].origin, RuleOrigin::External);
        let t = &r.tenants[0];
        assert_eq!(t.ddis[1].option, DdiOption::All);
        assert_eq!(t.settings.inbound.offnet, Some(true));
        assert_eq!(t.settings.inbound.onnet, None);
        assert_eq!(t.users[1].settings.inbound.offnet, Some(false));
        assert_eq!(t.devices[0].settings.outbound.offnet, Some(false));
        assert_eq!(t.devices[0].address, Some("10.20.0.21".parse().unwrap()));
        assert!(t.on_demand.enabled);
        assert_eq!(t.on_demand.pause, "*48");
    }

    #[test]
    fn without_rules_every_answered_call_is_recorded() {
        let c = Config::parse("").unwrap();
        assert!(c.compiled_rules.is_none());
        let c = Config::parse(BASE).unwrap();
        assert_eq!(c.compiled_rules.unwrap().tenants[0].users[0].name, "alice");
    }

    #[test]
    fn defaults_apply() {
        let c = Config::parse("[rules]\n").unwrap();
        let r = c.compiled_rules.unwrap();
        assert_eq!(r.mode_header, "X-Record-Mode");
        assert_eq!(r.info_record.name, "Record");
        assert!(r.tenants.is_empty());
    }

    #[test]
    fn bad_cidr_names_its_line() {
        let e = err("[rules.networks]\nonnet = [\n  \"10.0.0.0/8\",\n  \"10.0.0.0/40\",\n]\n");
        assert!(e.contains("line 4, column 3"), "{e}");
        assert!(e.contains("prefix length 40"), "{e}");
        let e = err("[rules.networks]\nonnet = [\"pbx\"]\n");
        assert!(
            e.contains("line 2") && e.contains("not an IP address"),
            "{e}"
        );
    }

    #[test]
    fn unknown_options_and_keys_name_their_line() {
        let e = err(&BASE.replace("option = \"incoming\"", "option = \"sometimes\""));
        assert!(e.contains("line 7") && e.contains("sometimes"), "{e}");
        let e = err(&format!(
            "{BASE}\n[[rules.role_rules]]\ndescription = \"x\"\ndirection = \"sideways\"\n"
        ));
        assert!(e.contains("line 20") && e.contains("sideways"), "{e}");
        let e = err(&BASE.replace(
            "extensions = [\"201\"]",
            "extensions = [\"201\"]\nmode = \"force\"",
        ));
        assert!(
            e.contains("line 12") && e.contains("unknown field `mode`"),
            "{e}"
        );
        let e = err("[[rules.tenants]]\nname = \"a\"\nsettings = { record_on = \"ring\" }\n");
        assert!(e.contains("line 3") && e.contains("ring"), "{e}");
    }

    #[test]
    fn duplicate_extension_across_users() {
        let text = format!(
            "{BASE}\n[[rules.tenants.users]]\nname = \"bob\"\nextensions = [\"202\", \"201\"]\n"
        );
        let e = err(&text);
        assert!(e.contains("line 20, column 22"), "{e}");
        assert!(
            e.contains("extension 201 of user bob is already an extension of user alice"),
            "{e}"
        );
    }

    #[test]
    fn device_of_an_unknown_user() {
        let e = err(&BASE.replace("user = \"alice\"", "user = \"carol\""));
        assert!(
            e.contains("line 16") && e.contains("device desk belongs to unknown user carol"),
            "{e}"
        );
        let e = err(&BASE.replace(
            "extensions = [\"201\"]",
            "extensions = [\"201\"]\ndevices = [\"phone\"]",
        ));
        assert!(
            e.contains("line 12") && e.contains("user alice names unknown device phone"),
            "{e}"
        );
    }

    #[test]
    fn ddi_in_two_tenants() {
        let text = format!(
            "{BASE}\n[[rules.tenants]]\nname = \"globex\"\nddis = [{{ number = \"4940100\", option = \"all\" }}]\n"
        );
        let e = err(&text);
        assert!(e.contains("line 20"), "{e}");
        assert!(
            e.contains("DDI 4940100 of tenant globex is already a DDI of tenant acme"),
            "{e}"
        );
    }

    #[test]
    fn other_contradictions() {
        let twice = format!("{BASE}\n[[rules.tenants]]\nname = \"acme\"\n");
        assert!(
            err(&twice).contains("line 19") && err(&twice).contains("tenant acme is defined twice")
        );
        let anon = "[[rules.tenants]]\nname = \"a\"\n[[rules.tenants.devices]]\nid = \"x\"\n";
        assert!(err(anon).contains("device x needs a sip_user, a contact or an address"));
        let addr = BASE.replace("address = \"10.0.0.21\"", "address = \"10.0.0.300\"");
        assert!(err(&addr).contains("line 15") && err(&addr).contains("not an IP address"));
        let code = "[[rules.tenants]]\nname = \"a\"\n[rules.tenants.on_demand]\ntoggle = \"*x\"\n";
        assert!(err(code).contains("line 4") && err(code).contains("DTMF digits"));
        let overlap =
            "[[rules.tenants]]\nname = \"a\"\n[rules.tenants.on_demand]\npause = \"*1\"\n";
        assert!(err(overlap).contains("overlap"), "{}", err(overlap));
        // A code that begins another (toggle *4, pause *48): *48 could never be dialled.
        let prefix = "[[rules.tenants]]\nname = \"a\"\n[rules.tenants.on_demand]\nenabled = true\ntoggle = \"*4\"\npause = \"*48\"\n";
        let e = err(prefix);
        assert!(
            e.contains("line 6")
                && e.contains("line 5")
                && e.contains("pause *48 can never be dialled"),
            "{e}"
        );
        // ...or sits in its middle (toggle 4, resume *49#).
        let inside = "[[rules.tenants]]\nname = \"a\"\n[rules.tenants.on_demand]\ntoggle = \"9\"\n";
        assert!(
            err(inside).contains("toggle 9 fires while"),
            "{}",
            err(inside)
        );
        let rate = "[[rules.tenants]]\nname = \"a\"\nsettings = { sample_rate = 1234 }\n";
        assert!(err(rate).contains("line 3") && err(rate).contains("sample_rate"));
        let ext_ddi = BASE.replace("extensions = [\"201\"]", "extensions = [\"+4940100\"]");
        assert!(err(&ext_ddi).contains("is also a DDI of tenant acme"));
        let header = "[rules]\nmode_header = \" \"\n";
        assert!(err(header).contains("line 2") && err(header).contains("mode_header"));
    }
}
