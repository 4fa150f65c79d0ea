//! Which signalling addresses are infrastructure (a PBX, a proxy, an SBC) rather than a
//! party's own phone.
//!
//! A party signalled through a server is not where its address says: the callee `+44...` of
//! a phone's outbound call is signalled at the PBX, and so is the external caller the PBX
//! puts through to a phone. The policy judges such a party by its identity instead
//! (`policy::decide`). An address is a server when it is configured as one, or when the
//! traffic shows it:
//!
//! - it signals for many different users (a phone only ever speaks for its own account);
//! - it forwards requests: an INVITE it sent carries more than one Via, or Record-Route;
//! - its User-Agent or Server header names PBX, proxy or SBC software.
//!
//! Nothing here reads packets; the engine feeds it each call's signalling.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::dialog::Call;
use crate::net::IpNet;

/// Distinct users an address signals for before it counts as a server.
pub const SERVER_USERS: usize = 3;
/// Addresses remembered; the oldest is forgotten first.
const MAX_ADDRESSES: usize = 16_384;

/// Software whose User-Agent or Server header marks a PBX, proxy, B2BUA or SBC (matched
/// case-insensitively anywhere in the header). Phones and softphones are not listed.
pub const SERVER_PRODUCTS: &[&str] = &[
    "asterisk",
    "freeswitch",
    "kamailio",
    "opensips",
    "openser",
    "sip express router",
    "3cx",
    "2600hz",
    "kazoo",
    "yeastar",
    "fusionpbx",
    "portsip",
    "ivozprovider",
    "wazo",
    "issabel",
    "elastix",
    "freepbx",
    "fritz!os",
    "drachtio",
    "rtpengine",
    "audiocodes",
    "mediant",
    "sonus",
    "ribbon",
    "acme packet",
    "oracle session border",
    "sansay",
    "metaswitch",
    "broadworks",
    "cisco-sipgateway",
    "cisco-cube",
    "mitel mx-one",
    "xivo",
    "vodia",
    "sipxecs",
    "frafos",
    "anynode",
    "ingate",
];

/// Why an address counts as a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerEvidence {
    /// Listed in `[rules.networks] servers`.
    Configured,
    /// It signalled for at least [`SERVER_USERS`] different users.
    ManyUsers,
    /// An INVITE it sent had more than one Via, or Record-Route.
    Forwards,
    /// Its User-Agent or Server header names this software.
    Product(&'static str),
    /// Not an address: the party was put through by a transfer the other side asked for
    /// (REFER, a new asserted identity), so nothing of its own signalling is known.
    PutThrough,
}

impl ServerEvidence {
    pub fn describe(self) -> String {
        match self {
            ServerEvidence::Configured => "a configured server".into(),
            ServerEvidence::ManyUsers => format!("a server (signals for {SERVER_USERS}+ users)"),
            ServerEvidence::Forwards => "a server (forwards requests: Via, Record-Route)".into(),
            ServerEvidence::Product(p) => format!("a server ({p})"),
            ServerEvidence::PutThrough => "put through by a transfer".into(),
        }
    }
}

#[derive(Default)]
struct Seen {
    /// Hashes of the distinct users seen, up to [`SERVER_USERS`].
    users: Vec<u64>,
    forwards: bool,
    product: Option<&'static str>,
    /// A User-Agent or Server header was looked at already (one is enough per address).
    agent_seen: bool,
}

/// Configured and learned servers.
#[derive(Default)]
pub struct Servers {
    configured: Vec<IpNet>,
    seen: HashMap<IpAddr, Seen>,
    order: VecDeque<IpAddr>,
}

/// The product a User-Agent or Server header names, if it is server software.
pub fn server_product(agent: &str) -> Option<&'static str> {
    // One pass over the header: at each byte only the products starting with it are
    // compared. Every product found is noted, and the first in the list wins, as if each
    // were searched for in turn (a substring search per product cost 12,000 instructions a
    // header).
    let hay = agent.as_bytes();
    let mut found = 0u64;
    for (i, &b) in hay.iter().enumerate() {
        let mut candidates = PRODUCTS_BY_FIRST[usize::from(b.to_ascii_lowercase())] & !found;
        while candidates != 0 {
            let j = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let p = SERVER_PRODUCTS[j].as_bytes();
            if hay
                .get(i..i + p.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(p))
            {
                found |= 1 << j;
            }
        }
    }
    (found != 0).then(|| SERVER_PRODUCTS[found.trailing_zeros() as usize])
}

/// For each byte, the products (bits, by their place in [`SERVER_PRODUCTS`]) that start
/// with it.
static PRODUCTS_BY_FIRST: [u64; 256] = {
    assert!(SERVER_PRODUCTS.len() <= 64);
    let mut t = [0u64; 256];
    let mut j = 0;
    while j < SERVER_PRODUCTS.len() {
        let first = SERVER_PRODUCTS[j].as_bytes()[0];
        assert!(
            !first.is_ascii_uppercase(),
            "products are listed in lower case"
        );
        t[first as usize] |= 1 << j;
        j += 1;
    }
    t
};

fn user_key(user: &str) -> u64 {
    // Numbers compare without a leading `+`; FNV-1a is enough for a set of three.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.trim_start_matches('+').bytes() {
        h = (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Servers {
    pub fn new(configured: Vec<IpNet>) -> Servers {
        Servers {
            configured,
            ..Servers::default()
        }
    }

    /// Whether `addr` is a server, and why. Configured servers come first.
    pub fn judge(&self, addr: IpAddr) -> Option<ServerEvidence> {
        if self.configured.iter().any(|n| n.contains(addr)) {
            return Some(ServerEvidence::Configured);
        }
        let s = self.seen.get(&addr)?;
        if let Some(p) = s.product {
            return Some(ServerEvidence::Product(p));
        }
        if s.forwards {
            return Some(ServerEvidence::Forwards);
        }
        (s.users.len() >= SERVER_USERS).then_some(ServerEvidence::ManyUsers)
    }

    /// Learns from a call's signalling: who each address spoke for, whether the caller's
    /// INVITE was forwarded, and what software each side runs. Call it when the call starts
    /// and again when it is answered (the callee's Server header comes with its responses).
    pub fn observe(&mut self, c: &Call) {
        let caller = c.caller_signalling.ip();
        let callee = c.callee_signalling.ip();
        // As the caller an address speaks for its From user; as the callee, for its To user
        // (the number dialled, to a PBX; a phone is only ever called as itself).
        self.note(
            caller,
            &c.caller.user,
            c.evidence.proxied,
            c.evidence.agent[0].as_deref(),
        );
        self.note(
            callee,
            &c.callee.user,
            false,
            c.evidence.agent[1].as_deref(),
        );
    }

    fn note(&mut self, addr: IpAddr, user: &str, forwards: bool, agent: Option<&str>) {
        if addr.is_unspecified() {
            return;
        }
        if !self.seen.contains_key(&addr) {
            if self.order.len() >= MAX_ADDRESSES
                && let Some(old) = self.order.pop_front()
            {
                self.seen.remove(&old);
            }
            self.order.push_back(addr);
        }
        let s = self.seen.entry(addr).or_default();
        if !user.is_empty() && s.users.len() < SERVER_USERS {
            let k = user_key(user);
            if !s.users.contains(&k) {
                s.users.push(k);
            }
        }
        s.forwards |= forwards;
        if !s.agent_seen
            && let Some(a) = agent
        {
            s.agent_seen = true;
            s.product = server_product(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_are_matched_anywhere_and_phones_are_not_servers() {
        assert_eq!(server_product("Asterisk PBX 18.20.0"), Some("asterisk"));
        assert_eq!(
            server_product("FreeSWITCH-mod_sofia/1.10.11"),
            Some("freeswitch")
        );
        assert_eq!(server_product("2600Hz Kazoo"), Some("2600hz"));
        assert_eq!(server_product("Yealink SIP-T46S 66.86.0.15"), None);
        assert_eq!(server_product("Linphone/5.2 (belle-sip)"), None);
        assert_eq!(server_product("PolycomVVX-VVX_411-UA/6.4"), None);
        // Two products in one header: the first listed wins, wherever it is.
        assert_eq!(server_product("FusionPBX (FreeSWITCH)"), Some("freeswitch"));
        assert_eq!(server_product("KAMAILIO"), Some("kamailio"));
        assert_eq!(server_product("at the end: ingate"), Some("ingate"));
        assert_eq!(server_product("ingat"), None);
        assert_eq!(server_product(""), None);
    }

    #[test]
    fn the_one_pass_finds_what_a_search_per_product_finds() {
        let naive = |agent: &str| {
            let lower = agent.to_ascii_lowercase();
            SERVER_PRODUCTS.iter().copied().find(|p| lower.contains(p))
        };
        let mut agents = vec![String::new()];
        for p in SERVER_PRODUCTS {
            agents.push(p.to_string());
            agents.push(format!("X {}/1.0", p.to_ascii_uppercase()));
            agents.push(p[..p.len() - 1].to_string());
            for q in SERVER_PRODUCTS {
                agents.push(format!("{q} via {p}"));
            }
        }
        agents.push("Ünïcode Asterisk ✓".to_string());
        for a in &agents {
            assert_eq!(server_product(a), naive(a), "{a}");
        }
    }

    #[test]
    fn configured_and_learned() {
        let mut s = Servers::new(vec!["10.0.0.1".parse().unwrap()]);
        let pbx: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(s.judge(pbx), Some(ServerEvidence::Configured));
        assert_eq!(s.judge(other), None);
        s.note(other, "201", false, None);
        s.note(other, "+201", false, Some("Yealink"));
        assert_eq!(s.judge(other), None, "one user, two spellings");
        s.note(other, "202", false, None);
        assert_eq!(s.judge(other), None);
        s.note(other, "+34911234567", false, None);
        assert_eq!(s.judge(other), Some(ServerEvidence::ManyUsers));
        let proxy: IpAddr = "192.0.2.7".parse().unwrap();
        s.note(proxy, "alice", true, None);
        assert_eq!(s.judge(proxy), Some(ServerEvidence::Forwards));
        let fs: IpAddr = "192.0.2.8".parse().unwrap();
        s.note(fs, "alice", false, Some("FreeSWITCH"));
        assert_eq!(s.judge(fs), Some(ServerEvidence::Product("freeswitch")));
    }
}
