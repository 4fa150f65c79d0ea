//! SIP (RFC 3261) message and SDP (RFC 4566) builders.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::rtp::{Codec, PT_TELEPHONE_EVENT};

/// A SIP message under construction. `Content-Length` is always computed
/// from the body when rendered.
#[derive(Clone, Debug)]
pub struct Msg {
    start_line: String,
    headers: Vec<(String, String)>,
    body: Option<(String, String)>, // (content type, body)
}

impl Msg {
    pub fn request(method: &str, uri: &str) -> Self {
        Msg {
            start_line: format!("{method} {uri} SIP/2.0"),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn response(code: u16, reason: &str) -> Self {
        Msg {
            start_line: format!("SIP/2.0 {code} {reason}"),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body(mut self, content_type: &str, body: String) -> Self {
        self.body = Some((content_type.to_string(), body));
        self
    }

    pub fn sdp(mut self, body: String) -> Self {
        self.body = Some(("application/sdp".to_string(), body));
        self
    }

    pub fn render(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512);
        s.push_str(&self.start_line);
        s.push_str("\r\n");
        for (n, v) in &self.headers {
            let _ = write!(s, "{n}: {v}\r\n");
        }
        match &self.body {
            Some((ct, b)) => {
                let _ = write!(
                    s,
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                );
            }
            None => s.push_str("Content-Length: 0\r\n\r\n"),
        }
        s.into_bytes()
    }
}

/// Host part of a SIP URI / Via: IPv6 literals in brackets.
pub fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

pub fn hostport(ip: IpAddr, port: u16) -> String {
    format!("{}:{port}", host(ip))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
        }
    }
}

/// How an SDP protects its audio.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Security {
    /// `RTP/AVP`.
    #[default]
    Plain,
    /// `RTP/SAVP` keyed by these `a=crypto` values (RFC 4568 §9.1), in order.
    Sdes(Vec<String>),
    /// `UDP/TLS/RTP/SAVPF` keyed by DTLS (RFC 5763 §5): the certificate's SHA-256
    /// fingerprint and the `a=setup` role (RFC 4145 §4).
    Dtls {
        fingerprint: String,
        setup: &'static str,
    },
}

impl Security {
    fn proto(&self) -> &'static str {
        match self {
            Security::Plain => "RTP/AVP",
            Security::Sdes(_) => "RTP/SAVP",
            Security::Dtls { .. } => "UDP/TLS/RTP/SAVPF",
        }
    }
}

/// Parameters of one SDP body.
#[derive(Clone, Debug)]
pub struct Sdp {
    pub user: String,
    pub session_id: u64,
    pub version: u64,
    pub addr: IpAddr,
    pub port: u16,
    pub codec: Codec,
    pub direction: Direction,
    /// Offer a long list of extra codecs (used to inflate the INVITE).
    pub many_codecs: bool,
    pub security: Security,
}

/// The extra codecs of an inflated offer: (payload type, rtpmap and fmtp lines).
const EXTRA_CODECS: [(u8, &[&str]); 17] = [
    (9, &["a=rtpmap:9 G722/8000"]),
    (18, &["a=rtpmap:18 G729/8000", "a=fmtp:18 annexb=no"]),
    (3, &["a=rtpmap:3 GSM/8000"]),
    (4, &["a=rtpmap:4 G723/8000", "a=fmtp:4 annexa=no"]),
    (
        96,
        &[
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 maxplaybackrate=16000;sprop-maxcapturerate=16000;maxaveragebitrate=20000;useinbandfec=1;usedtx=0",
        ],
    ),
    (97, &["a=rtpmap:97 iLBC/8000", "a=fmtp:97 mode=20"]),
    (98, &["a=rtpmap:98 speex/16000"]),
    (99, &["a=rtpmap:99 speex/8000"]),
    (
        100,
        &[
            "a=rtpmap:100 AMR/8000",
            "a=fmtp:100 octet-align=1;mode-change-capability=2",
        ],
    ),
    (
        102,
        &[
            "a=rtpmap:102 AMR-WB/16000",
            "a=fmtp:102 octet-align=1;mode-change-capability=2",
        ],
    ),
    (103, &["a=rtpmap:103 G726-32/8000"]),
    (104, &["a=rtpmap:104 G726-24/8000"]),
    (105, &["a=rtpmap:105 L16/8000"]),
    (
        106,
        &["a=rtpmap:106 SILK/16000", "a=fmtp:106 useinbandfec=1"],
    ),
    (107, &["a=rtpmap:107 SILK/8000"]),
    (0, &["a=rtpmap:0 PCMU/8000"]),
    (8, &["a=rtpmap:8 PCMA/8000"]),
];

impl Sdp {
    pub fn render(&self) -> String {
        let fam = if self.addr.is_ipv6() { "IP6" } else { "IP4" };
        let mut s = String::new();
        let _ = write!(
            s,
            "v=0\r\no={} {} {} IN {fam} {}\r\ns=voxtap-gen\r\nc=IN {fam} {}\r\nt=0 0\r\n",
            self.user, self.session_id, self.version, self.addr, self.addr
        );
        let pt = self.codec.payload_type();
        let proto = self.security.proto();
        if self.many_codecs && self.codec.is_g711() {
            let other = if self.codec == Codec::Pcmu { 8 } else { 0 };
            let _ = write!(
                s,
                "m=audio {} {proto} {pt} {other} 9 18 3 4 96 97 98 99 100 102 103 104 105 106 107 {PT_TELEPHONE_EVENT}\r\n",
                self.port
            );
            for p in [pt, other] {
                let _ = write!(
                    s,
                    "a=rtpmap:{p} {}/8000\r\n",
                    if p == 0 { "PCMU" } else { "PCMA" }
                );
            }
            for (_, lines) in &EXTRA_CODECS[..15] {
                for l in *lines {
                    s.push_str(l);
                    s.push_str("\r\n");
                }
            }
        } else if self.many_codecs {
            // The codec first, then the others whose payload type it does not take.
            let extra: Vec<_> = EXTRA_CODECS[15..]
                .iter()
                .chain(&EXTRA_CODECS[..15])
                .filter(|(p, _)| *p != pt)
                .collect();
            let _ = write!(s, "m=audio {} {proto} {pt}", self.port);
            for (p, _) in &extra {
                let _ = write!(s, " {p}");
            }
            let _ = write!(s, " {PT_TELEPHONE_EVENT}\r\n");
            self.codec_lines(&mut s);
            for (_, lines) in &extra {
                for l in *lines {
                    s.push_str(l);
                    s.push_str("\r\n");
                }
            }
        } else {
            let _ = write!(
                s,
                "m=audio {} {proto} {pt} {PT_TELEPHONE_EVENT}\r\n",
                self.port
            );
            self.codec_lines(&mut s);
        }
        // RFC 4733 §2.1: telephone-event runs on the audio's clock.
        let _ = write!(
            s,
            "a=rtpmap:{PT_TELEPHONE_EVENT} telephone-event/{}\r\na=fmtp:{PT_TELEPHONE_EVENT} 0-16\r\na=ptime:20\r\na={}\r\n",
            self.codec.clock_rate(),
            self.direction.attr()
        );
        match &self.security {
            Security::Plain => {}
            Security::Sdes(lines) => {
                for l in lines {
                    let _ = write!(s, "a=crypto:{l}\r\n");
                }
            }
            Security::Dtls { fingerprint, setup } => {
                let _ = write!(
                    s,
                    "a=setup:{setup}\r\na=fingerprint:sha-256 {fingerprint}\r\na=rtcp-mux\r\n"
                );
            }
        }
        s
    }

    fn codec_lines(&self, s: &mut String) {
        let pt = self.codec.payload_type();
        let _ = write!(s, "a=rtpmap:{pt} {}\r\n", self.codec.rtpmap());
        let fmtp = self.codec.fmtp();
        if !fmtp.is_empty() {
            let _ = write!(s, "a=fmtp:{pt} {fmtp}\r\n");
        }
    }
}

/// Split a rendered SIP message into (headers, body) and return the
/// declared Content-Length, if any (test helper and sanity checks).
pub fn content_length_of(msg: &[u8]) -> Option<(usize, usize)> {
    let text = std::str::from_utf8(msg).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let cl = head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        (n.eq_ignore_ascii_case("Content-Length") || n == "l")
            .then(|| v.trim().parse::<usize>().ok())?
    })?;
    Some((cl, body.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_matches_body() {
        let sdp = Sdp {
            user: "1000".into(),
            session_id: 1,
            version: 1,
            addr: "10.1.1.1".parse().unwrap(),
            port: 16384,
            codec: Codec::Pcmu,
            direction: Direction::SendRecv,
            many_codecs: false,
            security: Security::Plain,
        }
        .render();
        let m = Msg::request("INVITE", "sip:2000@10.2.1.1:5060")
            .header("Call-ID", "x@y")
            .sdp(sdp.clone())
            .render();
        assert_eq!(content_length_of(&m), Some((sdp.len(), sdp.len())));
        let r = Msg::response(100, "Trying")
            .header("Call-ID", "x@y")
            .render();
        assert_eq!(content_length_of(&r), Some((0, 0)));
    }

    #[test]
    fn sdp_ipv6() {
        let sdp = Sdp {
            user: "u".into(),
            session_id: 1,
            version: 2,
            addr: "fd00:1::1".parse().unwrap(),
            port: 16384,
            codec: Codec::Pcma,
            direction: Direction::SendOnly,
            many_codecs: false,
            security: Security::Plain,
        }
        .render();
        assert!(sdp.contains("c=IN IP6 fd00:1::1\r\n"));
        assert!(sdp.contains("m=audio 16384 RTP/AVP 8 101\r\n"));
        assert!(sdp.contains("a=sendonly\r\n"));
        assert!(sdp.contains("a=ptime:20\r\n"));
    }
}
