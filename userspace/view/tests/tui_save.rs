//! The saved pcap parses back to the call's SIP messages (and tshark agrees, when installed);
//! the saved text has a header line per message.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use ratatui::crossterm::event::KeyCode;
use voxtap_view::proto::SipMessage;
use voxtap_view::tui::{Action, App, write_pcap};

struct Record {
    sec: u32,
    usec: u32,
    data: Vec<u8>,
}

fn u16be(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// A classic little-endian microsecond pcap: its link type and records.
fn parse_pcap(b: &[u8]) -> (u32, Vec<Record>) {
    assert!(b.len() >= 24, "no global header");
    assert_eq!(u32le(b, 0), 0xa1b2_c3d4, "magic");
    assert_eq!(u16::from_le_bytes([b[4], b[5]]), 2, "major version");
    assert_eq!(u16::from_le_bytes([b[6], b[7]]), 4, "minor version");
    let snaplen = u32le(b, 16);
    let linktype = u32le(b, 20);
    let mut at = 24;
    let mut out = Vec::new();
    while at < b.len() {
        assert!(at + 16 <= b.len(), "truncated record header");
        let (sec, usec, incl, orig) = (
            u32le(b, at),
            u32le(b, at + 4),
            u32le(b, at + 8),
            u32le(b, at + 12),
        );
        assert_eq!(incl, orig);
        assert!(incl <= snaplen);
        assert!(usec < 1_000_000);
        at += 16;
        out.push(Record {
            sec,
            usec,
            data: b[at..at + incl as usize].to_vec(),
        });
        at += incl as usize;
    }
    (linktype, out)
}

/// The addresses, ports and payload of an Ethernet/IPv4-or-IPv6/UDP frame, checking lengths and
/// the IPv4 header checksum.
fn parse_udp(f: &[u8]) -> (String, String, Vec<u8>) {
    let ethertype = u16be(f, 12);
    // The pseudo-header's addresses, for the UDP checksum.
    let (addr_at, addr_len) = match ethertype {
        0x0800 => (14 + 12, 4),
        _ => (14 + 8, 16),
    };
    let (ip_len, src, dst) = match ethertype {
        0x0800 => {
            let ip = &f[14..];
            assert_eq!(ip[0], 0x45);
            assert_eq!(ip[9], 17, "UDP");
            assert_eq!(u16be(ip, 2) as usize, f.len() - 14, "IPv4 total length");
            let mut sum: u32 = (0..10).map(|i| u32::from(u16be(ip, 2 * i))).sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            assert_eq!(sum, 0xffff, "IPv4 header checksum");
            let a = |o: usize| format!("{}.{}.{}.{}", ip[o], ip[o + 1], ip[o + 2], ip[o + 3]);
            (20, a(12), a(16))
        }
        0x86DD => {
            let ip = &f[14..];
            assert_eq!(ip[6], 17, "UDP");
            assert_eq!(u16be(ip, 4) as usize, f.len() - 54, "IPv6 payload length");
            let a = |o: usize| {
                let b: [u8; 16] = ip[o..o + 16].try_into().unwrap();
                format!("[{}]", std::net::Ipv6Addr::from(b))
            };
            (40, a(8), a(24))
        }
        t => panic!("ethertype {t:#x}"),
    };
    let udp = &f[14 + ip_len..];
    assert_eq!(u16be(udp, 4) as usize, udp.len(), "UDP length");
    // The UDP checksum: the pseudo-header (addresses, protocol, length) and the datagram
    // sum to all ones.
    let words = |b: &[u8]| -> u32 {
        b.chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum()
    };
    let mut sum = words(&f[addr_at..addr_at + 2 * addr_len]) + 17 + udp.len() as u32 + words(udp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(sum, 0xffff, "UDP checksum");
    (
        format!("{src}:{}", u16be(udp, 0)),
        format!("{dst}:{}", u16be(udp, 2)),
        udp[8..].to_vec(),
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("voxtap-tui-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn check_pcap(bytes: &[u8], messages: &[SipMessage]) {
    let (linktype, records) = parse_pcap(bytes);
    assert_eq!(linktype, 1, "Ethernet");
    assert_eq!(records.len(), messages.len());
    for (r, m) in records.iter().zip(messages) {
        let want_us = (m.ts * 1e6).round() as u64;
        assert_eq!(
            u64::from(r.sec) * 1_000_000 + u64::from(r.usec),
            want_us,
            "timestamp"
        );
        let (src, dst, payload) = parse_udp(&r.data);
        assert_eq!(src, m.src);
        assert_eq!(dst, m.dst);
        assert_eq!(payload, m.text.as_bytes(), "payload is the message text");
    }
}

#[test]
fn the_saved_pcap_is_the_calls_sip() {
    let dir = temp_dir("pcap");
    let mut app = App::with_save_dir(&dir);
    app.set_snapshot(snapshot());
    app.on_key(key(KeyCode::Enter));
    app.set_snapshot(snapshot_with_detail());
    let path = match app.on_key(ch('w')) {
        Action::Saved(Ok(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(path, dir.join("voxtap-call-11.pcap"));
    let bytes = std::fs::read(&path).unwrap();
    let messages = messages();
    check_pcap(&bytes, &messages);
    assert!(render(&app, 100, 30).contains(&format!("saved {}", path.display())));

    if Command::new("tshark").arg("-v").output().is_err() {
        println!("SKIPPED: tshark not installed");
    } else {
        let out = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&path)
            .args([
                "-Y",
                "sip",
                "-T",
                "fields",
                "-e",
                "sip.Request-Line",
                "-e",
                "sip.Status-Line",
            ])
            .output()
            .expect("run tshark");
        assert!(
            out.status.success(),
            "tshark: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
        let want: Vec<String> = messages.iter().map(|m| m.first_line.clone()).collect();
        assert_eq!(lines, want, "tshark's SIP start lines");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ipv6_and_odd_addresses() {
    let mut m = messages();
    m.truncate(2);
    m[0].src = "[2001:db8::1]:5060".into();
    m[0].dst = "[2001:db8::2]:5080".into();
    let mut bytes = Vec::new();
    write_pcap(&m, &mut bytes).unwrap();
    check_pcap(&bytes, &m);
    // Not ip:port: written as 0.0.0.0:0, still a valid frame.
    m[1].src = "pbx.example.com".into();
    let mut bytes = Vec::new();
    write_pcap(&m[1..], &mut bytes).unwrap();
    let (_, records) = parse_pcap(&bytes);
    let (src, dst, payload) = parse_udp(&records[0].data);
    assert_eq!(src, "0.0.0.0:0");
    assert_eq!(dst, m[1].dst);
    assert_eq!(payload, m[1].text.as_bytes());
}

#[test]
fn the_saved_text_has_a_header_per_message() {
    let dir = temp_dir("text");
    let mut app = App::with_save_dir(&dir);
    app.set_snapshot(snapshot());
    app.on_key(key(KeyCode::Enter));
    app.set_snapshot(snapshot_with_detail());
    let path = match app.on_key(ch('W')) {
        Action::Saved(Ok(p)) => p,
        other => panic!("{other:?}"),
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let headers: Vec<&str> = text.lines().filter(|l| l.contains(" UTC ")).collect();
    assert_eq!(headers.len(), 14);
    assert_eq!(
        headers[0],
        "2024-05-01 12:24:56.000000 UTC 10.0.0.1:5060 -> 10.0.0.2:5060 udp"
    );
    assert_eq!(
        headers[13],
        "2024-05-01 12:27:01.500000 UTC 10.0.0.3:5060 -> 10.0.0.2:5060 udp"
    );
    assert!(text.contains("SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP 10.0.0.3:5060"));
    assert!(!text.contains('\r'));
    std::fs::remove_dir_all(&dir).unwrap();
}
