//! Rules and calls shared by the policy tests: tenant acme on 10.0.0.0/8 and pbx.acme.test;
//! alice (201, role sales) on device alice-desk at 10.0.0.21; bob (202) at 10.0.0.22; the
//! carrier at 192.0.2.1; external numbers +4930555 and +4930666.

use std::net::IpAddr;

use super::rules::*;
use super::{CallFacts, PartyEvidence, ServerEvidence};
use crate::time::Timestamp;
use crate::vocab::{CallHandle, Party, Side, SipTransport, side_index};

pub const CARRIER: &str = "192.0.2.1";
pub const PBX: &str = "10.0.0.1";
pub const ALICE: &str = "10.0.0.21";
pub const BOB: &str = "10.0.0.22";

pub fn rules() -> Rules {
    let ddi = |number: &str, option| Ddi {
        number: number.into(),
        option,
    };
    Rules {
        networks: Networks {
            onnet: vec!["10.0.0.0/8".parse().unwrap()],
            onnet_domains: vec!["pbx.acme.test".into()],
            servers: Vec::new(),
        },
        tenants: vec![Tenant {
            name: "acme".into(),
            ddis: vec![
                ddi("+4940100", DdiOption::Incoming),
                ddi("+4940200", DdiOption::Outgoing),
                ddi("+4940300", DdiOption::All),
                ddi("+4940400", DdiOption::Off),
            ],
            extensions: vec!["300".into()],
            domains: vec!["acme.test".into()],
            users: vec![
                User {
                    name: "alice".into(),
                    extensions: vec!["201".into()],
                    roles: vec!["sales".into()],
                    devices: vec!["alice-desk".into()],
                    ..User::default()
                },
                User {
                    name: "bob".into(),
                    extensions: vec!["202".into()],
                    roles: vec!["support".into()],
                    ..User::default()
                },
            ],
            devices: vec![Device {
                id: "alice-desk".into(),
                address: Some(ALICE.parse().unwrap()),
                user: Some("alice".into()),
                ..Device::default()
            }],
            ..Tenant::default()
        }],
        ..Rules::default()
    }
}

pub fn acme(rules: &mut Rules) -> &mut Tenant {
    &mut rules.tenants[0]
}

pub fn alice(rules: &mut Rules) -> &mut User {
    &mut rules.tenants[0].users[0]
}

pub fn alice_desk(rules: &mut Rules) -> &mut Device {
    &mut rules.tenants[0].devices[0]
}

/// A call as the engine would describe it, owning what [`CallFacts`] borrows.
#[derive(Clone, Debug)]
pub struct Call {
    pub handle: u64,
    pub caller: Party,
    pub callee: Party,
    pub request_user: String,
    pub caller_addr: IpAddr,
    pub callee_addr: IpAddr,
    pub mode: Option<String>,
    /// Per side: whether its address is a server, its asserted identity, its media address.
    pub parties: [(Option<ServerEvidence>, Option<String>, Option<IpAddr>); 2],
    pub diverted_from: Option<String>,
    /// The conversation's other legs.
    pub conversation: Vec<Call>,
    pub transferred: bool,
    pub picked_up: bool,
}

fn party(user: &str, host: &str) -> Party {
    Party {
        user: user.into(),
        host: host.into(),
        display_name: None,
    }
}

impl Call {
    pub fn new(from: (&str, &str), to: (&str, &str)) -> Call {
        Call {
            handle: 1,
            caller: party(from.0, "example.net"),
            callee: party(to.0, "example.net"),
            request_user: to.0.into(),
            caller_addr: from.1.parse().unwrap(),
            callee_addr: to.1.parse().unwrap(),
            mode: None,
            parties: Default::default(),
            diverted_from: None,
            conversation: Vec::new(),
            transferred: false,
            picked_up: false,
        }
    }

    /// The side's signalling address is a configured server.
    pub fn via_server(mut self, side: Side) -> Call {
        self.parties[side_index(side)].0 = Some(ServerEvidence::Configured);
        self
    }

    pub fn media(mut self, side: Side, addr: &str) -> Call {
        self.parties[side_index(side)].2 = Some(addr.parse().unwrap());
        self
    }

    pub fn asserted(mut self, side: Side, user: &str) -> Call {
        self.parties[side_index(side)].1 = Some(user.into());
        self
    }

    pub fn diverted_from(mut self, user: &str) -> Call {
        self.diverted_from = Some(user.into());
        self
    }

    pub fn mode(mut self, value: &str) -> Call {
        self.mode = Some(value.into());
        self
    }

    pub fn facts(&self) -> CallFacts<'_> {
        CallFacts {
            call: CallHandle(self.handle),
            sip_call_id: "call-1",
            caller: &self.caller,
            callee: &self.callee,
            transport: SipTransport::Udp,
            answered_at: Timestamp::from_nanos(0),
            request_user: &self.request_user,
            caller_addr: self.caller_addr,
            callee_addr: self.callee_addr,
            caller_contact: None,
            callee_contact: None,
            mode_header: self.mode.as_deref(),
            parties: self
                .parties
                .each_ref()
                .map(|(server, identity, media)| PartyEvidence {
                    server: *server,
                    identity: identity.as_deref(),
                    media: *media,
                }),
            diverted_from: self.diverted_from.as_deref(),
            // Tests only: the other legs' facts live as long as the test.
            conversation: Box::leak(
                self.conversation
                    .iter()
                    .map(Call::facts)
                    .collect::<Vec<_>>()
                    .into_boxed_slice(),
            ),
            transferred: self.transferred,
            picked_up: self.picked_up,
        }
    }
}

/// +4930555 from the carrier calls alice's phone.
pub fn inbound() -> Call {
    Call::new(("+4930555", CARRIER), ("201", ALICE))
}

/// alice calls +4930555 through the carrier.
pub fn outbound() -> Call {
    Call::new(("201", ALICE), ("+4930555", CARRIER))
}

/// alice calls bob.
pub fn alice_to_bob() -> Call {
    Call::new(("201", ALICE), ("202", BOB))
}

/// bob calls alice.
pub fn bob_to_alice() -> Call {
    Call::new(("202", BOB), ("201", ALICE))
}

/// Two external numbers, seen between the carrier and another carrier, for acme's domain.
pub fn external_to_external() -> Call {
    let mut c = Call::new(("+4930555", CARRIER), ("+4930666", "198.51.100.1"));
    c.callee.host = "acme.test".into();
    c
}
