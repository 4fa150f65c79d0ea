//! SDP (RFC 8866, formerly RFC 4566) reduced to what a recorder needs: where media flows,
//! which codecs, and in which direction. Parsing is lenient line by line and bounded.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bodies larger than this are refused.
pub const MAX_BODY: usize = 64 * 1024;
/// More m= sections than this is `TooLarge`.
pub const MAX_MEDIA: usize = 16;
/// Formats beyond this many per m= line are dropped (the first are the preferred ones).
pub const MAX_FORMATS: usize = 64;
/// rtpmap attributes beyond this many per m= section are dropped.
pub const MAX_RTPMAPS: usize = 64;
/// fmtp and crypto attributes beyond this many per m= section are dropped.
pub const MAX_FMTPS: usize = 64;
pub const MAX_CRYPTOS: usize = 16;
/// Attribute values longer than this are not kept (fmtp, crypto).
pub const MAX_ATTR_LEN: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Does not start with `v=` (RFC 8866 §5.1).
    NotSdp,
    /// Has `v=` but neither a usable o= nor m= line.
    Malformed,
    /// Body over [`MAX_BODY`] or more than [`MAX_MEDIA`] m= sections.
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NotSdp => "not an SDP body",
            Error::Malformed => "malformed SDP",
            Error::TooLarge => "SDP body too large",
        })
    }
}

impl std::error::Error for Error {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction attributes of RFC 8866 §6.7.
    pub fn parse(attr: &str) -> Option<Direction> {
        match attr {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Does the side that wrote this SDP send media?
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Does the side that wrote this SDP want to receive media?
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
    Image,
    Application,
    Other,
}

impl MediaKind {
    pub fn parse(s: &str) -> MediaKind {
        if s.eq_ignore_ascii_case("audio") {
            MediaKind::Audio
        } else if s.eq_ignore_ascii_case("video") {
            MediaKind::Video
        } else if s.eq_ignore_ascii_case("image") {
            MediaKind::Image
        } else if s.eq_ignore_ascii_case("application") {
            MediaKind::Application
        } else {
            MediaKind::Other
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    /// As written; compare case-insensitively (RFC 8866 §6.6).
    pub encoding: String,
    pub clock_rate: u32,
    /// 1 when not given.
    pub channels: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    pub kind: MediaKind,
    /// 0 means the stream is disabled (RFC 3264 §5.1); also used for an unparseable m= line.
    pub port: u16,
    pub port_count: u16,
    pub proto: String,
    /// Numeric payload types 0..=127 in offer order; non-numeric formats are ignored.
    pub formats: Vec<u8>,
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    pub direction: Option<Direction>,
    pub rtcp_mux: bool,
    pub rtcp_port: Option<u16>,
    /// `a=crypto` values (RFC 4568 §9.1): SDES keys for SRTP, in offer order.
    pub crypto: Vec<String>,
    /// `a=fmtp:<pt> <params>` (RFC 8866 §6.15): the parameters, per payload type.
    pub fmtps: Vec<(u8, String)>,
    /// Keys negotiated outside SDP, which a passive observer cannot learn: DTLS-SRTP
    /// (`a=fingerprint`, RFC 5763) or ZRTP (`a=zrtp-hash`, RFC 6189 §8).
    pub key_exchange: Option<KeyExchange>,
}

/// How an SRTP session gets keys when the SDP does not carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyExchange {
    DtlsSrtp,
    Zrtp,
}

impl KeyExchange {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyExchange::DtlsSrtp => "dtls-srtp",
            KeyExchange::Zrtp => "zrtp",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SessionDescription {
    pub origin_session: Option<(u64, u64)>,
    pub connection: Option<IpAddr>,
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Media-level attribute, else session-level, else sendrecv (RFC 8866 §6.7).
    pub fn direction_of(&self, m: &MediaDescription) -> Direction {
        m.direction.or(self.direction).unwrap_or_default()
    }

    /// Media-level c= overrides session-level c= (RFC 8866 §5.7).
    pub fn address_of(&self, m: &MediaDescription) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }

    /// The first audio section that is not disabled (port 0).
    pub fn first_audio(&self) -> Option<&MediaDescription> {
        self.media
            .iter()
            .find(|m| m.kind == MediaKind::Audio && m.port != 0)
    }
}

/// RFC 3551 §6 static payload types: (pt, encoding, clock rate).
const STATIC_PTS: [(u8, &str, u32); 24] = [
    (0, "PCMU", 8000),
    (3, "GSM", 8000),
    (4, "G723", 8000),
    (5, "DVI4", 8000),
    (6, "DVI4", 16000),
    (7, "LPC", 8000),
    (8, "PCMA", 8000),
    // G.722 samples at 16 kHz but its RTP clock is 8000 (RFC 3551 §4.5.2).
    (9, "G722", 8000),
    (10, "L16", 44100),
    (11, "L16", 44100),
    (12, "QCELP", 8000),
    (13, "CN", 8000),
    (14, "MPA", 90000),
    (15, "G728", 8000),
    (16, "DVI4", 11025),
    (17, "DVI4", 22050),
    (18, "G729", 8000),
    (25, "CelB", 90000),
    (26, "JPEG", 90000),
    (28, "nv", 90000),
    (31, "H261", 90000),
    (32, "MPV", 90000),
    (33, "MP2T", 90000),
    (34, "H263", 90000),
];

/// Encoding and clock rate of a static payload type (RFC 3551 §6), for RTP whose SDP lists none.
pub fn static_codec(pt: u8) -> Option<(&'static str, u32)> {
    STATIC_PTS.iter().find(|s| s.0 == pt).map(|s| (s.1, s.2))
}

impl MediaDescription {
    fn new(kind: MediaKind, port: u16, port_count: u16, proto: String) -> MediaDescription {
        MediaDescription {
            kind,
            port,
            port_count,
            proto,
            formats: Vec::new(),
            connection: None,
            rtpmaps: Vec::new(),
            direction: None,
            rtcp_mux: false,
            rtcp_port: None,
            crypto: Vec::new(),
            fmtps: Vec::new(),
            key_exchange: None,
        }
    }

    /// Port 0 rejects or removes the stream (RFC 3264 §6).
    pub fn is_disabled(&self) -> bool {
        self.port == 0
    }

    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|r| r.payload_type == pt)
    }

    /// Encoding and clock rate: the rtpmap, else the RFC 3551 static table.
    pub fn codec(&self, pt: u8) -> Option<(&str, u32)> {
        if let Some(r) = self.rtpmap(pt) {
            return Some((r.encoding.as_str(), r.clock_rate));
        }
        static_codec(pt)
    }

    /// The fmtp parameters of a payload type, if any.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps.iter().find(|f| f.0 == pt).map(|f| f.1.as_str())
    }

    /// The telephone-event payload type (RFC 4733 §7.1.1), preferring one listed in the m= line.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        let is_te = |r: &&RtpMap| r.encoding.eq_ignore_ascii_case("telephone-event");
        let offered = self
            .rtpmaps
            .iter()
            .filter(is_te)
            .find(|r| self.formats.contains(&r.payload_type));
        offered
            .or_else(|| self.rtpmaps.iter().find(is_te))
            .map(|r| r.payload_type)
    }

    /// The first offered payload type that is not comfort noise or telephone-event.
    pub fn primary_pt(&self) -> Option<u8> {
        self.formats
            .iter()
            .copied()
            .find(|&pt| match self.codec(pt) {
                Some((enc, _)) => {
                    !enc.eq_ignore_ascii_case("telephone-event") && !enc.eq_ignore_ascii_case("CN")
                }
                None => true,
            })
    }
}

/// Parses an SDP body. Unknown, non-UTF-8 or malformed lines are skipped; a malformed m= line
/// still yields a disabled placeholder so m= indices stay aligned for offer/answer (RFC 3264 §6).
pub fn parse(body: &[u8]) -> Result<SessionDescription, Error> {
    if body.len() > MAX_BODY {
        return Err(Error::TooLarge);
    }
    let mut lines = body
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).trim_ascii());
    // RFC 8866 §5: v= comes first.
    match lines.by_ref().find(|l| !l.is_empty()) {
        Some([b'v', b'=', ..]) => {}
        _ => return Err(Error::NotSdp),
    }
    let mut sd = SessionDescription::default();
    let mut usable = false;
    // Lines of a section whose m= line was unusable are dropped with it.
    let mut placeholder = false;
    for line in lines {
        let [kind, b'=', value @ ..] = line else {
            continue;
        };
        let value = core::str::from_utf8(value).ok();
        if *kind == b'm' {
            if sd.media.len() >= MAX_MEDIA {
                return Err(Error::TooLarge);
            }
            let parsed = value.and_then(parse_media);
            placeholder = parsed.is_none();
            usable |= !placeholder;
            sd.media.push(
                parsed.unwrap_or_else(|| {
                    MediaDescription::new(MediaKind::Other, 0, 1, String::new())
                }),
            );
            continue;
        }
        let Some(value) = value.filter(|_| !placeholder) else {
            continue;
        };
        let media = sd.media.last_mut();
        match (kind, media) {
            (b'o', None) => {
                sd.origin_session = parse_origin(value);
                usable |= sd.origin_session.is_some();
            }
            (b'c', None) => sd.connection = sd.connection.or(parse_connection(value)),
            (b'c', Some(m)) => m.connection = m.connection.or(parse_connection(value)),
            (b'a', None) => {
                if let Some(d) = Direction::parse(value) {
                    sd.direction = Some(d);
                }
            }
            (b'a', Some(m)) => media_attribute(m, value),
            _ => {}
        }
    }
    if usable {
        Ok(sd)
    } else {
        Err(Error::Malformed)
    }
}

/// `o=<user> <sess-id> <sess-version> <nettype> <addrtype> <addr>` (RFC 8866 §5.2).
fn parse_origin(v: &str) -> Option<(u64, u64)> {
    let mut it = v.split_ascii_whitespace().skip(1);
    let id = it.next()?.parse().ok()?;
    let version = it.next()?.parse().ok()?;
    Some((id, version))
}

/// `c=IN IP4 <addr>[/ttl[/n]]` (RFC 8866 §5.7); host names are not resolved.
fn parse_connection(v: &str) -> Option<IpAddr> {
    let mut it = v.split_ascii_whitespace();
    if !it.next()?.eq_ignore_ascii_case("IN") {
        return None;
    }
    let addrtype = it.next()?;
    let addr = it.next()?.split('/').next()?;
    if addrtype.eq_ignore_ascii_case("IP4") {
        addr.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else if addrtype.eq_ignore_ascii_case("IP6") {
        addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        None
    }
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...` (RFC 8866 §5.14).
fn parse_media(v: &str) -> Option<MediaDescription> {
    let mut it = v.split_ascii_whitespace();
    let kind = MediaKind::parse(it.next()?);
    let ports = it.next()?;
    let (port, count) = match ports.split_once('/') {
        Some((p, n)) => (p.parse().ok()?, n.parse().ok()?),
        None => (ports.parse().ok()?, 1),
    };
    let proto = it.next()?;
    if proto.len() > 64 {
        return None;
    }
    let mut m = MediaDescription::new(kind, port, count, proto.to_owned());
    m.formats = it
        .filter_map(|f| f.parse::<u8>().ok())
        .filter(|&pt| pt <= 127)
        .take(MAX_FORMATS)
        .collect();
    Some(m)
}

fn media_attribute(m: &mut MediaDescription, v: &str) {
    let (name, value) = match v.split_once(':') {
        Some((n, val)) => (n, Some(val.trim())),
        None => (v, None),
    };
    match (name, value) {
        ("rtpmap", Some(val)) => {
            if m.rtpmaps.len() < MAX_RTPMAPS
                && let Some(r) = parse_rtpmap(val)
                && m.rtpmap(r.payload_type).is_none()
            {
                m.rtpmaps.push(r);
            }
        }
        ("rtcp-mux", None) => m.rtcp_mux = true,
        // RFC 3605 §2.1: `a=rtcp:<port> [nettype addrtype addr]`.
        ("rtcp", Some(val)) => {
            m.rtcp_port = val
                .split_ascii_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
        }
        // RFC 4568 §9.1 SDES keys, kept as written for the SRTP layer to parse.
        ("crypto", Some(val)) if m.crypto.len() < MAX_CRYPTOS && val.len() <= MAX_ATTR_LEN => {
            m.crypto.push(val.to_owned());
        }
        ("fmtp", Some(val)) => {
            if m.fmtps.len() < MAX_FMTPS
                && val.len() <= MAX_ATTR_LEN
                && let Some((pt, params)) = val.split_once(|c: char| c.is_ascii_whitespace())
                && let Ok(pt) = pt.parse::<u8>()
                && !m.fmtps.iter().any(|f| f.0 == pt)
            {
                m.fmtps.push((pt, params.trim().to_owned()));
            }
        }
        ("fingerprint", Some(_)) => {
            m.key_exchange.get_or_insert(KeyExchange::DtlsSrtp);
        }
        ("zrtp-hash", Some(_)) => m.key_exchange = Some(KeyExchange::Zrtp),
        (attr, None) => {
            if let Some(d) = Direction::parse(attr) {
                m.direction = Some(d);
            }
        }
        _ => {}
    }
}

/// `<pt> <encoding>/<clock>[/<channels>]` (RFC 8866 §6.6).
fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, rest) = v.split_once(|c: char| c.is_ascii_whitespace())?;
    let payload_type = pt.parse::<u8>().ok().filter(|&pt| pt <= 127)?;
    let mut it = rest.trim().split('/');
    let encoding = it.next()?.trim();
    if encoding.is_empty() || encoding.len() > 32 {
        return None;
    }
    let clock_rate = it.next()?.trim().parse().ok().filter(|&c| c > 0)?;
    let channels = match it.next() {
        Some(c) => c.trim().parse().ok().filter(|&c| c > 0)?,
        None => 1,
    };
    Some(RtpMap {
        payload_type,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(body: &[u8]) -> SessionDescription {
        parse(body).unwrap_or_else(|e| panic!("parse failed: {e:?}"))
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }

    const OFFER: &[u8] = b"v=0\r\n\
o=- 1303892069 1303892070 IN IP4 178.45.73.241\r\n\
s=Opal SIP Session\r\n\
c=IN IP4 178.45.73.241\r\n\
t=0 0\r\n\
m=audio 5092 RTP/AVP 8 0 9 18 101 120\r\n\
a=sendrecv\r\n\
a=rtpmap:8 PCMA/8000/1\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16,32,36\r\n\
a=rtpmap:120 NSE/8000\r\n\
a=rtcp:5093 IN IP4 178.45.73.241\r\n\
m=video 5094 RTP/AVP 119 31\r\n\
c=IN IP4 10.1.2.3\r\n\
a=rtpmap:119 theora/90000\r\n\
a=recvonly\r\n";

    #[test]
    fn offer_with_audio_and_video() {
        let s = sdp(OFFER);
        assert_eq!(s.origin_session, Some((1303892069, 1303892070)));
        assert_eq!(s.connection, v4(178, 45, 73, 241));
        assert_eq!(s.media.len(), 2);
        let a = s.first_audio().expect("audio");
        assert_eq!(
            (a.kind, a.port, a.port_count, a.proto.as_str()),
            (MediaKind::Audio, 5092, 1, "RTP/AVP")
        );
        assert_eq!(a.formats, vec![8, 0, 9, 18, 101, 120]);
        assert_eq!(a.codec(8), Some(("PCMA", 8000)));
        assert_eq!(a.codec(0), Some(("PCMU", 8000)));
        assert_eq!(a.codec(9), Some(("G722", 8000)));
        assert_eq!(a.codec(18), Some(("G729", 8000)));
        assert_eq!(a.codec(120), Some(("NSE", 8000)));
        assert_eq!(a.codec(96), None);
        assert_eq!(a.telephone_event_pt(), Some(101));
        assert_eq!(a.primary_pt(), Some(8));
        assert_eq!(a.rtcp_port, Some(5093));
        assert_eq!(a.rtpmap(8).map(|r| r.channels), Some(1));
        assert_eq!(s.direction_of(a), Direction::SendRecv);
        // Session c= applies when the media has none; media c= wins otherwise.
        assert_eq!(s.address_of(a), v4(178, 45, 73, 241));
        let v = &s.media[1];
        assert_eq!(v.kind, MediaKind::Video);
        assert_eq!(s.address_of(v), v4(10, 1, 2, 3));
        assert_eq!(s.direction_of(v), Direction::RecvOnly);
        assert_eq!(v.codec(31), Some(("H261", 90000)));
        assert_eq!(v.telephone_event_pt(), None);
    }

    #[test]
    fn hold_and_directions() {
        let hold = b"v=0\no=- 1 2 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\na=sendonly\nm=audio 4000 RTP/AVP 0\n";
        let s = sdp(hold);
        let a = s.first_audio().expect("audio");
        assert_eq!(a.direction, None);
        assert_eq!(s.direction_of(a), Direction::SendOnly);
        assert!(s.direction_of(a).sends() && !s.direction_of(a).receives());

        let inactive = b"v=0\r\no=- 1 3 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=inactive\r\n";
        let s = sdp(inactive);
        assert_eq!(s.direction_of(&s.media[0]), Direction::Inactive);

        // RFC 2543 style hold: c=0.0.0.0 is kept for the engine to interpret.
        let zero =
            b"v=0\r\no=- 1 4 IN IP4 10.0.0.1\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let s = sdp(zero);
        assert_eq!(s.address_of(&s.media[0]), v4(0, 0, 0, 0));
    }

    #[test]
    fn dynamic_pt_ipv6_multicast_and_srtp() {
        let body = b"v=0\r\n\
o=- 99 1 IN IP6 2001:db8::1\r\n\
c=IN IP6 2001:db8::1\r\n\
m=audio 49170 RTP/SAVP 111 96 0\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:96 Telephone-Event/48000\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n\
a=rtcp-mux\r\n\
m=audio 5000/2 RTP/AVP 0\r\n\
c=IN IP4 224.2.1.1/127/3\r\n";
        let s = sdp(body);
        let a = &s.media[0];
        assert_eq!(
            s.address_of(a),
            Some(IpAddr::V6("2001:db8::1".parse().expect("v6")))
        );
        assert_eq!(a.codec(111), Some(("opus", 48000)));
        assert_eq!(a.rtpmap(111).map(|r| r.channels), Some(2));
        assert_eq!(a.telephone_event_pt(), Some(96));
        assert_eq!(a.primary_pt(), Some(111));
        assert_eq!(
            a.crypto,
            ["1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"]
        );
        assert!(a.rtcp_mux);
        let m = &s.media[1];
        assert_eq!((m.port, m.port_count), (5000, 2));
        assert_eq!(m.connection, v4(224, 2, 1, 1));
        assert!(m.crypto.is_empty() && !m.rtcp_mux);
    }

    #[test]
    fn fmtp_and_key_exchange() {
        let body = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\n\
m=audio 7000 RTP/AVP 100 101\r\n\
a=rtpmap:100 AMR-WB/16000\r\n\
a=fmtp:100 mode-set=\"0,1,2\";octet-align=1\r\n\
a=fmtp:100 ignored=1\r\n\
m=audio 7002 UDP/TLS/RTP/SAVPF 111\r\n\
a=fingerprint:sha-256 22:7A:01\r\n\
m=audio 7004 RTP/SAVP 0\r\n\
a=zrtp-hash:1.10 fe30efd02423cb054e50efd0248742ac7a52c8f91bc2df881ae642c371ba46df\r\n";
        let s = sdp(body);
        assert_eq!(
            s.media[0].fmtp(100),
            Some("mode-set=\"0,1,2\";octet-align=1")
        );
        assert_eq!(s.media[0].fmtp(101), None);
        assert_eq!(s.media[0].key_exchange, None);
        assert_eq!(s.media[1].key_exchange, Some(KeyExchange::DtlsSrtp));
        assert_eq!(s.media[2].key_exchange, Some(KeyExchange::Zrtp));
    }

    #[test]
    fn disabled_and_image_streams() {
        let body = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\nm=image 6000 udptl t38\r\nm=audio 7000 RTP/AVP 8\r\n";
        let s = sdp(body);
        assert!(s.media[0].is_disabled());
        assert_eq!(s.media[1].kind, MediaKind::Image);
        assert_eq!(s.media[1].proto, "udptl");
        assert!(s.media[1].formats.is_empty());
        assert_eq!(s.first_audio().map(|m| m.port), Some(7000));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let body = b"v=0\r\n\
o=- 1 1 IN IP4 1.2.3.4\r\n\
this line has no equals\r\n\
c=IN IP4 not.an.address\r\n\
x=unknown\r\n\
m=audio 70000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
m=audio 4000 RTP/AVP 0 8 abc 300 96\r\n\
a=rtpmap:bad\r\n\
a=rtpmap:96 \xff\xfe/8000\r\n\
a=rtpmap:96 AMR/0\r\n\
a=rtcp:notaport\r\n\
c=IN IP4 5.6.7.8\r\n";
        let s = sdp(body);
        assert_eq!(s.connection, None);
        // The m= line with port 70000 keeps its index as a disabled placeholder.
        assert_eq!(s.media.len(), 2);
        assert_eq!((s.media[0].kind, s.media[0].port), (MediaKind::Other, 0));
        assert!(s.media[0].rtpmaps.is_empty());
        let m = &s.media[1];
        assert_eq!(m.formats, vec![0, 8, 96]);
        assert!(m.rtpmaps.is_empty());
        assert_eq!(m.rtcp_port, None);
        assert_eq!(s.address_of(m), v4(5, 6, 7, 8));
    }

    #[test]
    fn errors_and_bounds() {
        assert_eq!(parse(b""), Err(Error::NotSdp));
        assert_eq!(
            parse(b"o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n"),
            Err(Error::NotSdp)
        );
        assert_eq!(parse(b"\xff\xfe\x00"), Err(Error::NotSdp));
        assert_eq!(parse(b"v=0\r\ns=-\r\n"), Err(Error::Malformed));
        assert_eq!(
            parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n"),
            Err(Error::Malformed)
        );
        assert_eq!(parse(&vec![b'a'; MAX_BODY + 1]), Err(Error::TooLarge));

        let mut many_m = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n".to_vec();
        for _ in 0..=MAX_MEDIA {
            many_m.extend_from_slice(b"m=audio 4000 RTP/AVP 0\r\n");
        }
        assert_eq!(parse(&many_m), Err(Error::TooLarge));

        let mut many_fmts = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP".to_vec();
        for i in 0..10_000 {
            many_fmts.extend_from_slice(format!(" {}", i % 128).as_bytes());
        }
        many_fmts.extend_from_slice(b"\r\n");
        for i in 0..200 {
            many_fmts.extend_from_slice(format!("a=rtpmap:{} X{i}/8000\r\n", i % 128).as_bytes());
        }
        let s = sdp(&many_fmts);
        assert_eq!(s.media[0].formats.len(), MAX_FORMATS);
        assert!(s.media[0].rtpmaps.len() <= MAX_RTPMAPS);

        // Leading blank lines and trailing garbage without a newline are tolerated.
        let s = sdp(b"\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\nq");
        assert_eq!(s.media[0].port, 1);
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..800)) {
                let _ = parse(&data);
            }

            #[test]
            fn sdp_shaped_never_panics(lines in proptest::collection::vec("[vocmat]=[ -~]{0,40}", 0..30)) {
                let body = format!("v=0\r\n{}", lines.join("\r\n"));
                if let Ok(s) = parse(body.as_bytes()) {
                    prop_assert!(s.media.len() <= MAX_MEDIA);
                    for m in &s.media {
                        prop_assert!(m.formats.len() <= MAX_FORMATS && m.rtpmaps.len() <= MAX_RTPMAPS);
                        let _ = (s.direction_of(m), s.address_of(m), m.telephone_event_pt(), m.primary_pt());
                        for &pt in &m.formats { let _ = m.codec(pt); }
                    }
                }
            }

            #[test]
            fn round_trip(
                port in 1u16..,
                pts in proptest::collection::vec(0u8..128, 1..10),
                dynamic in 96u8..128,
                clock in 1000u32..200_000,
                addr in any::<[u8; 4]>(),
                dir in prop_oneof![Just("sendrecv"), Just("sendonly"), Just("recvonly"), Just("inactive")],
                id in any::<u64>(),
            ) {
                let fmts: Vec<String> = pts.iter().map(u8::to_string).collect();
                let ip = std::net::Ipv4Addr::from(addr);
                let body = format!(
                    "v=0\r\no=- {id} 7 IN IP4 {ip}\r\ns=-\r\nt=0 0\r\nm=audio {port} RTP/AVP {} {dynamic}\r\nc=IN IP4 {ip}\r\na=rtpmap:{dynamic} X-Codec/{clock}\r\na={dir}\r\n",
                    fmts.join(" "),
                );
                let s = parse(body.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                prop_assert_eq!(s.origin_session, Some((id, 7)));
                let m = &s.media[0];
                prop_assert_eq!(m.port, port);
                let mut want = pts.clone();
                want.push(dynamic);
                prop_assert_eq!(&m.formats, &want);
                prop_assert_eq!(s.address_of(m), Some(IpAddr::V4(ip)));
                prop_assert_eq!(Some(s.direction_of(m)), Direction::parse(dir));
                prop_assert_eq!(m.codec(dynamic), Some(("X-Codec", clock)));
            }
        }
    }
}
