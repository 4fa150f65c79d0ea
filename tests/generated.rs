//! End to end on generated captures: every scenario of `voxtap-gen` is replayed by the real
//! `voxtap` binary, and the catalog and every recording are checked against the generator's
//! ground truth: the same calls, the right tone on the right channel, durations within 0.5 s,
//! DTMF digits, loss figures, and silence where a party was on hold.

use voxtap_gen::{Encap, GenConfig, Scenario};
use voxtap_tests::{Replayed, check_against_truth, replay_generated};

type Run = Replayed;

fn check(run: &Run) {
    check_against_truth(&run.out, &run.truth, &run.summary);
}

fn run(cfg: GenConfig, name: &str) -> Run {
    replay_generated(&cfg, name, None)
}

#[test]
fn pcmu_call() {
    check(&run(GenConfig::new(Scenario::Pcmu), "pcmu"));
}

#[test]
fn pcma_call() {
    check(&run(GenConfig::new(Scenario::Pcma), "pcma"));
}

#[test]
fn rfc4733_dtmf() {
    let r = run(GenConfig::new(Scenario::Dtmf), "dtmf");
    assert!(
        r.truth.calls.iter().any(|c| !c.dtmf.is_empty()),
        "the scenario must press digits"
    );
    check(&r);
}

#[test]
fn hold_by_reinvite_with_media_move() {
    let r = run(GenConfig::new(Scenario::HoldMove), "holdmove");
    assert!(
        r.truth.calls.iter().any(|c| !c.silent_spans.is_empty()),
        "the scenario must hold"
    );
    check(&r);
}

#[test]
fn nat_with_private_sdp_address() {
    check(&run(GenConfig::new(Scenario::Nat), "nat"));
}

#[test]
fn loss_and_reordering() {
    let r = run(GenConfig::new(Scenario::LossReorder), "lossreorder");
    assert!(
        r.truth
            .calls
            .iter()
            .any(|c| c.lost_caller + c.lost_callee > 0),
        "the scenario must lose packets"
    );
    check(&r);
}

#[test]
fn vlan_tagged() {
    check(&run(GenConfig::new(Scenario::Vlan), "vlan"));
}

#[test]
fn qinq_tagged() {
    check(&run(GenConfig::new(Scenario::QinQ), "qinq"));
}

#[test]
fn fragmented_invite() {
    check(&run(GenConfig::new(Scenario::FragmentedInvite), "frag"));
}

#[test]
fn sip_over_tcp_split_and_coalesced() {
    let r = run(GenConfig::new(Scenario::Tcp), "tcp");
    assert!(r.truth.calls.iter().all(|c| c.transport == "tcp"));
    check(&r);
}

#[test]
fn ipv6() {
    check(&run(GenConfig::new(Scenario::Ipv6), "ipv6"));
}

#[test]
fn cancel_before_answer_is_not_recorded() {
    let r = run(GenConfig::new(Scenario::CancelBeforeAnswer), "cancel");
    assert!(r.truth.calls.iter().all(|c| !c.answered));
    check(&r);
}

#[test]
fn early_media() {
    check(&run(GenConfig::new(Scenario::EarlyMedia), "early"));
}

#[test]
fn two_hundred_concurrent_calls() {
    let r = run(GenConfig::new(Scenario::Concurrent), "concurrent");
    assert!(r.truth.calls.len() >= 200);
    check(&r);
}

#[test]
fn everything_in_one_capture() {
    check(&run(GenConfig::new(Scenario::Mix), "mix"));
}

/// A call whose INVITE never reached the capture (a dropped packet, a fragment lost, or a
/// capture started while it rang) is picked up from its 2xx answer: catalogued, marked with a
/// `picked-up` event, and recorded in full from the answer on, both parties on their
/// channels, the caller's RTP found through the callee's SDP address alone.
#[test]
fn a_call_whose_invite_was_lost_is_picked_up_from_its_answer() {
    let (frames, truth) = voxtap_gen::generate(&GenConfig::new(Scenario::Pcmu));
    let invite = |d: &[u8]| d.windows(11).any(|w| w == b"INVITE sip:");
    let before = frames.len();
    let frames: Vec<_> = frames.into_iter().filter(|f| !invite(&f.data)).collect();
    assert!(frames.len() < before, "the scenario sends an INVITE");
    let r = voxtap_tests::replay_frames(frames, truth, "picked-up", None);
    check(&r);
    let db = voxtap_tests::catalog(&r.out);
    let picked: i64 = db
        .query_row(
            "SELECT count(*) FROM events WHERE kind = 'picked-up'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        picked,
        r.truth.calls.len() as i64,
        "every call is picked up"
    );
    let (caller, callee): (f64, f64) = db
        .query_row(
            "SELECT caller_audio_s, callee_audio_s FROM recordings WHERE state = 'complete'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert!(
        caller > 1.0 && callee > 1.0,
        "audio of both: {caller} s, {callee} s"
    );
}

/// Remote mirroring: the mix scenario delivered through each encapsulation a mirror sends
/// (ERSPAN II and III or Ethernet over GRE from a switch, VXLAN from a cloud traffic mirror,
/// Geneve, TZSP from a MikroTik router's sniffer) is recorded exactly as the plain capture is. tshark, the oracle, finds as many SIP
/// messages inside each encapsulated capture as in the plain one, so the encapsulations are
/// the real thing and not only what voxtap expects.
#[test]
fn every_remote_mirror_encapsulation_is_read() {
    const TEST: &str = "every_remote_mirror_encapsulation_is_read";
    let (plain, truth) = voxtap_gen::generate(&GenConfig::new(Scenario::Mix));
    let scratch = voxtap_tests::Scratch::new(TEST);
    let sip_frames = |pcap: &std::path::Path| {
        Some(voxtap_tests::tshark_fields(pcap, "sip", &["frame.number"], &[]).len())
    };
    let tshark = voxtap_tests::have_tshark(TEST);
    let plain_pcap = scratch.path().join("plain.pcap");
    voxtap_gen::write_pcap(&plain_pcap, &plain).unwrap();
    let plain_sip = if tshark {
        sip_frames(&plain_pcap)
    } else {
        None
    };
    for encap in [
        Encap::Erspan2,
        Encap::Erspan3,
        Encap::Gre,
        Encap::Vxlan,
        Encap::Geneve,
        Encap::Tzsp,
    ] {
        let mut frames = plain.clone();
        voxtap_gen::encapsulate(&mut frames, encap);
        let name = format!("encap-{encap:?}").to_lowercase();
        let r = voxtap_tests::replay_frames(frames, truth.clone(), &name, None);
        check(&r);
        let malformed = r
            .summary
            .lines()
            .find_map(|l| l.trim().strip_prefix("malformed"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok());
        assert_eq!(malformed, Some(0), "{encap:?}: {}", r.summary);
        if let Some(plain_sip) = plain_sip {
            let pcap = r.out.parent().unwrap().join(format!("{name}.pcap"));
            assert_eq!(
                sip_frames(&pcap),
                Some(plain_sip),
                "{encap:?}: tshark reads as many SIP messages through the mirror"
            );
        }
    }
}
