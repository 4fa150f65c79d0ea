//! A real SDES-SRTP capture (`voipshark-srtp-call.pcap`, see shared/captures/README.md): two
//! calls bridged by a PBX, 192.168.20.132 → PBX 192.168.20.130 → 192.168.20.1, each leg with
//! its own SDES keys. Every SRTP and SRTCP packet of the four streams is decrypted with the
//! key its sender announced, and the PCMU inside must look like speech, not like the
//! ciphertext's white noise.
//!
//! Which key decrypts which stream follows from the offer/answer exchange (RFC 4568 §6.1:
//! the keys an endpoint writes in its SDP are the keys it encrypts its own media with; the
//! answer's tag picks the offer's line, §5.1.2):
//!
//! | SIP (frame)            | author         | a=crypto used                  | decrypts          |
//! |------------------------|----------------|--------------------------------|-------------------|
//! | INVITE (58+59, 2 frags)| .132 (offer)   | tag 3 AES_CM_128_HMAC_SHA1_80  | .132:4000 → :14708 |
//! | 200 OK (84)            | .130 (answer)  | tag 3 AES_CM_128_HMAC_SHA1_80  | .130:14708 → :4000 |
//! | UPDATE (90) / 200 (92) | .132 / .130    | tag 1, the same keys again     | the same streams  |
//! | INVITE (62)            | .130 (offer)   | tag 1 AES_CM_128_HMAC_SHA1_80  | .130:14904 → :4000 |
//! | 200 OK (82)            | .1 (answer)    | tag 1 AES_CM_128_HMAC_SHA1_80  | .1:4000 → :14904   |
//!
//! .132 also offered AES_256_CM_HMAC_SHA1_80/32 and AES_CM_128_HMAC_SHA1_32 (tags 1, 2, 4);
//! the PBX chose tag 3, so only AES_CM_128_HMAC_SHA1_80 is on the wire. The 200 OK of .1 says
//! `c=IN IP4 192.168.5.151` (its address behind NAT) while its media comes from 192.168.20.1,
//! so a key is bound to the SIP sender's address and the SDP's port (symmetric RTP, RFC 4961),
//! not to `c=`. SRTCP flows on the next port up (`a=rtcp:4001`, or RTP port + 1).
//!
//! On a re-key (the UPDATE) the newest key of the direction is tried first, then the previous;
//! the new context starts from the old one's rollover counters. Two SRTCP packets of .1
//! reach the capture 0.2 ms before the 200 OK that carries their key: they count as "before
//! any key" (a live engine has to hold or drop them).
//!
//! The PBX relays the PCMU untouched, so the audio of .132 → PBX decrypts to the same
//! samples as PBX → .1 under an unrelated key, and likewise the other way: a check of the
//! decryption that needs no knowledge of the audio. The audio itself is speech (5–9 s).

use std::collections::HashMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use voxtap_core::codec::{Decoder, G711};
use voxtap_core::media::srtp::{CryptoAttr, SrtpContext, SrtpError};
use voxtap_core::reasm::{Budget, DefragConfig, Defragmenter};
use voxtap_core::wire::{self, Decoded, LinkType, Transport};
use voxtap_core::{Timestamp, rtp, sdp, sip};

/// Written straight to stderr, which the test harness does not capture.
fn loud(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

type Endpoint = (IpAddr, u16);

fn ep(s: &str) -> Endpoint {
    let (ip, port) = s.rsplit_once(':').expect("ip:port");
    (ip.parse().expect("ip"), port.parse().expect("port"))
}

/// The four RTP streams the capture's README names, sender first.
const STREAMS: [(&str, &str); 4] = [
    ("192.168.20.132:4000", "192.168.20.130:14708"),
    ("192.168.20.130:14708", "192.168.20.132:4000"),
    ("192.168.20.130:14904", "192.168.20.1:4000"),
    ("192.168.20.1:4000", "192.168.20.130:14904"),
];

/// One sender's keys, oldest first.
#[derive(Default)]
struct Sender {
    keys: Vec<(String, SrtpContext)>,
    ssrcs: Vec<u32>,
}

#[derive(Default, Debug)]
struct Tally {
    packets: usize,
    with_newest: usize,
    with_previous: usize,
    no_key_yet: usize,
    failed: HashMap<SrtpError, usize>,
    plain: Vec<i16>,
    cipher: Vec<i16>,
}

impl Tally {
    fn ok(&self) -> usize {
        self.with_newest + self.with_previous
    }
}

struct Offer {
    from: IpAddr,
    sdp: sdp::SessionDescription,
}

/// Tries the newest key of `sender`, then the previous one; true when one authenticates.
fn decrypt(
    sender: &mut Sender,
    rtcp: bool,
    packet: &[u8],
    out: &mut Vec<u8>,
    t: &mut Tally,
) -> bool {
    t.packets += 1;
    if sender.keys.is_empty() {
        t.no_key_yet += 1;
        return false;
    }
    let mut first_err = None;
    for (age, (_, ctx)) in sender.keys.iter_mut().rev().take(2).enumerate() {
        let r = if rtcp {
            ctx.unprotect_rtcp(packet, out)
        } else {
            ctx.unprotect_rtp(packet, out)
        };
        match r {
            Ok(()) => {
                if age == 0 {
                    t.with_newest += 1;
                } else {
                    t.with_previous += 1;
                }
                return true;
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        *t.failed.entry(e).or_default() += 1;
    }
    false
}

fn capture() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("../shared/captures/voipshark-srtp-call.pcap");
    if path.exists() {
        Some(path)
    } else {
        loud(&format!(
            "\n*** SKIPPED: srtp_capture: {} is absent (shared/ is not shipped with the project) ***\n",
            path.display()
        ));
        None
    }
}

/// Binds the keys of an offer/answer pair to the senders (see the module comment).
fn apply_answer(
    offer: &Offer,
    answer_from: IpAddr,
    answer: &sdp::SessionDescription,
    senders: &mut HashMap<Endpoint, Sender>,
    rtcp_of: &mut HashMap<Endpoint, Endpoint>,
    log: &mut Vec<String>,
) {
    for (o, a) in offer.sdp.media.iter().zip(&answer.media) {
        if o.port == 0 || a.port == 0 {
            continue;
        }
        let Some(chosen) = a.crypto.first() else {
            continue;
        };
        let chosen = CryptoAttr::parse(chosen).expect("answer a=crypto");
        let offered = o
            .crypto
            .iter()
            .filter_map(|c| CryptoAttr::parse(c).ok())
            .find(|c| c.tag == chosen.tag)
            .expect("the answer's tag is in the offer");
        for (from, m, attr) in [(offer.from, o, offered), (answer_from, a, chosen)] {
            let rtp_ep = (from, m.port);
            let rtcp_ep = (from, m.rtcp_port.unwrap_or(m.port.wrapping_add(1)));
            rtcp_of.insert(rtcp_ep, rtp_ep);
            let sender = senders.entry(rtp_ep).or_default();
            let mut ctx = SrtpContext::new(&attr).expect("context");
            if let Some((_, old)) = sender.keys.last() {
                for &ssrc in &sender.ssrcs {
                    if let Some((roc, seq)) = old.rollover_counter(ssrc) {
                        ctx.set_rollover_counter(ssrc, roc, seq);
                    }
                }
            }
            let what = format!("{} {} tag {}", rtp_ep.0, rtp_ep.1, attr.tag);
            log.push(format!("key for {what}: {}", attr.suite));
            sender.keys.push((what, ctx));
        }
    }
}

/// Decrypted SRTCP is a well-formed RTCP compound packet (RFC 3550 §6.1): its lengths
/// chain to the end and every part is version 2 with an RTCP packet type. Ciphertext past
/// the first 8 bytes would not be.
fn assert_compound_rtcp(p: &[u8]) {
    let mut at = 0;
    let mut parts = Vec::new();
    while at < p.len() {
        let head = &p[at..];
        assert!(
            head.len() >= 4 && head[0] >> 6 == 2,
            "RTCP part at {at}: {p:02x?}"
        );
        assert!(
            (192..=213).contains(&head[1]),
            "RTCP type {} in {p:02x?}",
            head[1]
        );
        parts.push(head[1]);
        at += 4 * (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1);
    }
    assert_eq!(at, p.len(), "RTCP lengths {parts:?} do not add up");
    assert!(
        parts.len() >= 2,
        "a compound packet has SR/RR and SDES: {parts:?}"
    );
}

/// Spectral flatness (geometric over arithmetic mean of the power spectrum, 1 for white
/// noise) of a Welch average: Hann windows of 256 samples, hop 128, bins 1..127.
fn spectral_flatness(x: &[i16]) -> f64 {
    const N: usize = 256;
    let window: Vec<f64> = (0..N)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N as f64).cos())
        .collect();
    let mut power = vec![0.0f64; N / 2];
    let mut frames = 0;
    let mut re = vec![0.0; N];
    let mut im = vec![0.0; N];
    for start in (0..x.len().saturating_sub(N)).step_by(N / 2) {
        for i in 0..N {
            re[i] = f64::from(x[start + i]) * window[i];
            im[i] = 0.0;
        }
        fft(&mut re, &mut im);
        for (k, p) in power.iter_mut().enumerate() {
            *p += re[k] * re[k] + im[k] * im[k];
        }
        frames += 1;
    }
    assert!(frames > 0, "no audio");
    let bins = &power[1..];
    let floor = 1e-9 * bins.iter().sum::<f64>() / bins.len() as f64 + 1e-12;
    let log_mean = bins.iter().map(|p| (p + floor).ln()).sum::<f64>() / bins.len() as f64;
    let mean = bins.iter().map(|p| p + floor).sum::<f64>() / bins.len() as f64;
    log_mean.exp() / mean
}

/// Iterative radix-2 FFT in place; `re.len()` is a power of two.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * std::f64::consts::PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (ang * k as f64).sin_cos();
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * c - im[b] * s;
                let ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

#[test]
fn decrypts_every_stream_of_the_capture() {
    let Some(path) = capture() else {
        return;
    };
    let file = std::fs::File::open(&path).expect("open capture");
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("pcap");
    let link = LinkType::from_pcap(u32::from(reader.header().datalink));
    let mut defrag = Defragmenter::new(DefragConfig::default());

    let streams: Vec<(Endpoint, Endpoint)> = STREAMS.iter().map(|(s, d)| (ep(s), ep(d))).collect();
    let mut senders: HashMap<Endpoint, Sender> = HashMap::new();
    let mut rtcp_of: HashMap<Endpoint, Endpoint> = HashMap::new();
    let mut offers: HashMap<String, Offer> = HashMap::new();
    let mut rtp_tally: Vec<Tally> = (0..4).map(|_| Tally::default()).collect();
    let mut rtcp_tally: Vec<Tally> = (0..4).map(|_| Tally::default()).collect();
    let mut log = Vec::new();
    let mut sip_messages = 0;
    let mut out = Vec::new();
    let mut ulaw = G711::ulaw();

    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.expect("packet");
        let ts = Timestamp::from_nanos(pkt.timestamp.as_nanos() as u64);
        let reassembled;
        let (src, dst, transport) = match wire::decode(link, &pkt.data) {
            Ok(Decoded::Packet {
                src,
                dst,
                transport,
            }) => (src, dst, transport),
            Ok(Decoded::Fragment(frag)) => match defrag.push(ts, &frag, &mut Budget::unlimited()) {
                Ok(Some(whole)) => {
                    reassembled = whole;
                    let t = wire::decode_transport(reassembled.protocol, &reassembled.payload)
                        .expect("reassembled transport");
                    (reassembled.src, reassembled.dst, t)
                }
                _ => continue,
            },
            _ => continue,
        };
        let Transport::Udp {
            src_port,
            dst_port,
            payload,
        } = transport
        else {
            continue;
        };
        let (from, to) = ((src, src_port), (dst, dst_port));

        if src_port == 5060 || dst_port == 5060 {
            let Ok(msg) = sip::Message::parse(payload) else {
                continue;
            };
            sip_messages += 1;
            let Some(body) = msg.sdp_body() else {
                continue;
            };
            let desc = sdp::parse(body).expect("SDP");
            let call_id = msg.call_id().expect("Call-ID").to_owned();
            if msg.is_request() {
                offers.insert(
                    call_id,
                    Offer {
                        from: src,
                        sdp: desc,
                    },
                );
            } else if let Some(offer) = offers.get(&call_id) {
                apply_answer(offer, src, &desc, &mut senders, &mut rtcp_of, &mut log);
                if msg.status().is_some_and(|s| (200..300).contains(&s)) {
                    offers.remove(&call_id);
                }
            }
            continue;
        }

        if let Some(i) = streams.iter().position(|&s| s == (from, to)) {
            let sender = senders.entry(from).or_default();
            let t = &mut rtp_tally[i];
            let ok = decrypt(sender, false, payload, &mut out, t);
            let Ok(cipher) = rtp::Packet::new_checked(payload) else {
                continue;
            };
            if cipher.payload_type() != 0 {
                continue;
            }
            // The ciphertext read as PCMU, tag included: what a recorder without keys hears.
            let _ = ulaw.decode(cipher.payload(), &mut t.cipher);
            if ok && let Ok(plain) = rtp::Packet::new_checked(&out[..]) {
                if !sender.ssrcs.contains(&plain.ssrc()) {
                    sender.ssrcs.push(plain.ssrc());
                }
                let _ = ulaw.decode(plain.payload(), &mut t.plain);
            }
        } else if let Some(i) = streams
            .iter()
            .position(|&(s, d)| (s.0, s.1 + 1) == from && (d.0, d.1 + 1) == to)
        {
            let rtp_ep = rtcp_of.get(&from).copied().unwrap_or(streams[i].0);
            let sender = senders.entry(rtp_ep).or_default();
            if decrypt(sender, true, payload, &mut out, &mut rtcp_tally[i]) {
                assert_compound_rtcp(&out);
            }
        }
    }

    loud(&format!("srtp_capture: {sip_messages} SIP messages"));
    for l in &log {
        loud(&format!("srtp_capture: {l}"));
    }
    let mut checked = 0;
    for (i, (s, d)) in STREAMS.iter().enumerate() {
        let t = &rtp_tally[i];
        let c = &rtcp_tally[i];
        // VOXTAP_SRTP_DUMP=dir writes the decrypted audio as raw s16le 8 kHz, to listen to.
        if let Some(dir) = std::env::var_os("VOXTAP_SRTP_DUMP") {
            let raw: Vec<u8> = t.plain.iter().flat_map(|s| s.to_le_bytes()).collect();
            let name = format!("{s}-{d}.s16").replace(':', "_");
            std::fs::write(PathBuf::from(dir).join(name), raw).expect("dump");
        }
        let plain_flatness = spectral_flatness(&t.plain);
        let cipher_flatness = spectral_flatness(&t.cipher);
        loud(&format!(
            "srtp_capture: {s} -> {d}: SRTP {}/{} authenticated ({} newest key, {} previous, \
             {} before any key, failed {:?}); SRTCP {}/{} ({} before its key, failed {:?}); \
             spectral flatness decrypted {plain_flatness:.3} vs ciphertext {cipher_flatness:.3}",
            t.ok(),
            t.packets,
            t.with_newest,
            t.with_previous,
            t.no_key_yet,
            t.failed,
            c.ok(),
            c.packets,
            c.no_key_yet,
            c.failed,
        ));
        assert!(t.packets > 1000, "{s}: {} packets", t.packets);
        assert!(
            t.ok() * 1000 >= t.packets * 999,
            "{s}: only {} of {} SRTP packets authenticate",
            t.ok(),
            t.packets
        );
        assert!(c.packets > 0 && c.failed.is_empty(), "{s}: SRTCP {c:?}");
        assert!(
            cipher_flatness > 0.9,
            "{s}: ciphertext flatness {cipher_flatness}"
        );
        assert!(
            plain_flatness < 0.5 && plain_flatness < cipher_flatness / 2.0,
            "{s}: decrypted flatness {plain_flatness}"
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
    // The PBX relays the PCMU untouched and encrypts it again with the other leg's key: what
    // .132 says reaches .1, decrypted with two unrelated keys, sample for sample.
    for (a, b) in [(0, 2), (3, 1)] {
        assert_eq!(
            rtp_tally[a].plain, rtp_tally[b].plain,
            "streams {a} and {b}"
        );
        assert_ne!(
            rtp_tally[a].cipher, rtp_tally[b].cipher,
            "streams {a} and {b}"
        );
    }
    loud("srtp_capture: the PBX's two legs carry the same decrypted audio, sample for sample");
}
