//! AF_PACKET capture on the host end of a veth pair, frames sent from a namespace.
//! Needs root; prints `SKIPPED:` otherwise.

use std::time::{Duration, Instant};

use voxtap_capture::afpacket::{AfPacket, AfPacketError, AfPacketOptions};
use voxtap_capture::live::{LiveCapture, realtime_now};
use voxtap_capture::testnet::TestNet;
use voxtap_core::{LinkType, Timestamp};

/// IEEE local experimental EtherType: nothing else on the link uses it.
const ETHERTYPE: u16 = 0x88b5;

/// Ethernet frame number `seq`, 60 to ~1500 bytes, with a body that depends on `seq`.
fn frame(seq: u32) -> Vec<u8> {
    let len = 60 + (seq as usize * 97) % 1440;
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&[0x02, 0x00, 0x5e, 0x00, 0x00, 0x01]);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u32 ^ seq) as u8);
    }
    f
}

fn seq_of(data: &[u8]) -> Option<u32> {
    (data.len() >= 18 && data[12..14] == ETHERTYPE.to_be_bytes())
        .then(|| u32::from_be_bytes(data[14..18].try_into().unwrap()))
}

/// Polls until `want` test frames arrived or 5 s passed; returns `(ts, frame)` in arrival order.
fn collect(cap: &mut dyn LiveCapture, want: usize) -> Vec<(Timestamp, Vec<u8>)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < want && Instant::now() < deadline {
        cap.poll(Duration::from_millis(50), &mut |f| {
            assert_eq!(f.link, LinkType::Ethernet);
            assert_eq!(f.queue, 0);
            if seq_of(f.data).is_some() {
                got.push((f.ts, f.data.to_vec()));
            }
        })
        .expect("poll");
    }
    got
}

fn open(iface: &str) -> AfPacket {
    AfPacket::open(
        iface,
        AfPacketOptions {
            bpf_filter: Some(format!("ether proto {ETHERTYPE:#x}")),
            ..AfPacketOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("open AF_PACKET on {iface}: {e}"))
}

#[test]
fn every_frame_arrives_intact_with_sane_timestamps_and_counts() {
    let Some(net) = TestNet::new_or_skip("afp", "every_frame_arrives_intact") else {
        return;
    };
    let mut cap = open(net.host_if());
    let describe = cap.describe();
    assert!(
        describe.starts_with("AF_PACKET on ") && describe.contains("via libpcap 1."),
        "{describe}"
    );

    const N: u32 = 500;
    let frames: Vec<Vec<u8>> = (0..N).map(frame).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let before = realtime_now();
    net.send_frames(&refs).expect("send frames");
    let got = collect(&mut cap, N as usize);
    let after = realtime_now();

    assert_eq!(got.len(), N as usize, "frames received");
    for (i, (ts, data)) in got.iter().enumerate() {
        assert_eq!(data, &frames[i], "frame {i} differs");
        assert!(
            *ts >= before && *ts <= after,
            "frame {i} timestamp {ts:?} outside [{before:?}, {after:?}]"
        );
    }
    assert!(
        got.windows(2).all(|w| w[0].0 <= w[1].0),
        "timestamps go backwards"
    );

    let stats = cap.stats();
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(s.queue, 0);
    assert_eq!(s.packets, N as u64);
    assert_eq!(s.bytes, frames.iter().map(|f| f.len() as u64).sum::<u64>());
    assert_eq!(s.kernel_dropped, 0);
    eprintln!("{describe}: {s:?}");
}

#[test]
fn poll_times_out_empty_handed() {
    let Some(net) = TestNet::new_or_skip("aft", "poll_times_out_empty_handed") else {
        return;
    };
    let mut cap = open(net.host_if());
    let start = Instant::now();
    let n = cap
        .poll(Duration::from_millis(100), &mut |_| {
            panic!("no frame was sent")
        })
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(n, 0);
    assert!(
        waited >= Duration::from_millis(90),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "returned after {waited:?}");
}

#[test]
fn paced_replay_keeps_the_gaps() {
    let Some(net) = TestNet::new_or_skip("afr", "paced_replay_keeps_the_gaps") else {
        return;
    };
    let mut cap = open(net.host_if());
    // Gaps of 40 ms at half speed: 80 ms apart on the wire.
    let frames: Vec<(u64, Vec<u8>)> = (0..6)
        .map(|i| (1_000 + i as u64 * 40_000_000, frame(i)))
        .collect();
    net.replay_paced(&frames, 0.5).expect("replay");
    let got = collect(&mut cap, frames.len());
    assert_eq!(got.len(), frames.len());
    for w in got.windows(2) {
        let gap_ms = (w[1].0.as_nanos() - w[0].0.as_nanos()) as f64 / 1e6;
        assert!((70.0..120.0).contains(&gap_ms), "gap {gap_ms} ms, want ~80");
    }
}

#[test]
fn errors_name_the_interface() {
    let err = AfPacket::open("vxnosuch0", AfPacketOptions::default())
        .err()
        .expect("no such interface");
    assert!(matches!(err, AfPacketError::Open { .. }), "{err:?}");
    assert!(err.to_string().starts_with("vxnosuch0: "), "{err}");

    let Some(net) = TestNet::new_or_skip("afe", "errors_name_the_interface (bad filter)") else {
        return;
    };
    let err = AfPacket::open(
        net.host_if(),
        AfPacketOptions {
            bpf_filter: Some("udp port sip-and-then-some".into()),
            ..AfPacketOptions::default()
        },
    )
    .err()
    .expect("bad filter");
    assert!(matches!(err, AfPacketError::Filter { .. }), "{err:?}");
    assert!(err.to_string().starts_with(net.host_if()), "{err}");
}

#[test]
fn promiscuous_mode_is_held_while_the_guard_lives() {
    use voxtap_capture::promisc::{Promiscuous, is_promiscuous};
    let Some(net) = TestNet::new_or_skip("prm", "promiscuous_mode_is_held") else {
        return;
    };
    assert!(!is_promiscuous(net.host_if()).unwrap());
    let guard = Promiscuous::enable(net.host_if()).expect("enter promiscuous mode");
    assert!(is_promiscuous(net.host_if()).unwrap());
    drop(guard);
    assert!(
        !is_promiscuous(net.host_if()).unwrap(),
        "closing the socket gives it back"
    );
    assert!(
        Promiscuous::enable("voxtap-nosuch0")
            .unwrap_err()
            .to_string()
            .contains("voxtap-nosuch0")
    );
}
