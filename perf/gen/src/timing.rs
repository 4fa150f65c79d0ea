//! What capture clocks and networks do to timing, applied to generated traffic.
//!
//! Senders stamp RTP with their own sampling clock; the capture stamps frames with its own.
//! Real captures disagree with the senders: clocks drift (tens to a thousand ppm), a
//! capture replayed with `tcpreplay --multiplier 4` runs four times fast, and a network stall
//! holds one direction's packets and then delivers them in a burst. These functions take a
//! generated capture and do that to its frame timestamps only; the RTP inside, and the truth
//! about the media (`recorded_secs`, every `*_secs` relative to the answer), stay as they
//! were, because that is what a recording must hold. Absolute times in the truth
//! (`start_ns`, `answer_ns`, `end_ns`) move with the capture clock.

use crate::{Frame, GroundTruth};

/// Maps capture time through `factor` around the first frame: 1.001 is a capture clock
/// running 1000 ppm fast, 0.25 a replay at four times real time.
pub fn scale_time(frames: &mut [Frame], truth: &mut GroundTruth, factor: f64) {
    let Some(t0) = frames.iter().map(|f| f.ts_ns).min() else {
        return;
    };
    let map = |ts: u64| -> u64 {
        let d = ts.saturating_sub(t0) as f64 * factor;
        // pcap keeps microseconds.
        (t0 + d as u64) / 1000 * 1000
    };
    for f in frames.iter_mut() {
        f.ts_ns = map(f.ts_ns);
    }
    for c in &mut truth.calls {
        c.start_ns = map(c.start_ns);
        c.answer_ns = c.answer_ns.map(map);
        c.end_ns = map(c.end_ns);
    }
    frames.sort_by_key(|f| f.ts_ns);
}

/// A capture clock `ppm` parts per million fast (negative: slow) against the senders.
pub fn drift(frames: &mut [Frame], truth: &mut GroundTruth, ppm: f64) {
    scale_time(frames, truth, 1.0 + ppm / 1e6);
}

/// The UDP source port of an Ethernet/IPv4/UDP frame (untagged), if it is one.
fn udp_src_port(data: &[u8]) -> Option<u16> {
    if data.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = data.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != 17 {
        return None;
    }
    let udp = ip.get(ihl..)?;
    Some(u16::from_be_bytes([*udp.first()?, *udp.get(1)?]))
}

/// Holds every frame sent from UDP port `src_port` between `from_ns` and `from_ns + stall_ns`
/// and delivers them in order, 50 µs apart, when the stall ends: what a congested link or a
/// paused virtual machine does to one direction of a call. Returns how many were held.
pub fn stall(frames: &mut [Frame], src_port: u16, from_ns: u64, stall_ns: u64) -> usize {
    let until = from_ns + stall_ns;
    let mut held = 0u64;
    for f in frames.iter_mut() {
        if f.ts_ns >= from_ns && f.ts_ns < until && udp_src_port(&f.data) == Some(src_port) {
            f.ts_ns = until + held * 50_000;
            held += 1;
        }
    }
    // Stable: equal stamps keep their order, so the burst stays in sequence.
    frames.sort_by_key(|f| f.ts_ns);
    held as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GenConfig, Scenario, generate};

    #[test]
    fn scaling_moves_frames_and_absolute_truth_only() {
        let (mut frames, mut truth) = generate(&GenConfig::new(Scenario::Pcmu));
        let before = truth.calls[0].clone();
        let first = frames[0].ts_ns;
        let last = frames.last().expect("frames").ts_ns;
        scale_time(&mut frames, &mut truth, 0.25);
        let c = &truth.calls[0];
        assert_eq!(frames[0].ts_ns, first / 1000 * 1000);
        let span = frames.last().expect("frames").ts_ns - frames[0].ts_ns;
        assert!(span.abs_diff((last - first) / 4) < 2000, "{span}");
        assert_eq!(c.recorded_secs, before.recorded_secs, "media time is kept");
        let answered = c.answer_ns.expect("answered") - c.start_ns;
        let was = before.answer_ns.expect("answered") - before.start_ns;
        assert!(answered.abs_diff(was / 4) < 2000);
        assert!(frames.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    }

    #[test]
    fn a_stall_holds_one_direction_then_bursts_it_in_order() {
        let cfg = GenConfig::new(Scenario::Pcmu);
        let (mut frames, truth) = generate(&cfg);
        let spec = &crate::scenario::plan(&cfg)[0];
        let from = truth.calls[0].answer_ns.expect("answered") + 1_000_000_000;
        let port = spec.callee_rtp_port;
        let seqs = |frames: &[Frame]| -> Vec<u16> {
            frames
                .iter()
                .filter(|f| udp_src_port(&f.data) == Some(port))
                .map(|f| {
                    let rtp = &f.data[14 + 20 + 8..];
                    u16::from_be_bytes([rtp[2], rtp[3]])
                })
                .collect()
        };
        let before = seqs(&frames);
        let held = stall(&mut frames, port, from, 2_000_000_000);
        assert!((95..=105).contains(&held), "{held} packets held for 2 s");
        assert_eq!(seqs(&frames), before, "the burst keeps the sending order");
        let gap = frames
            .iter()
            .filter(|f| udp_src_port(&f.data) == Some(port))
            .map(|f| f.ts_ns)
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0);
        assert!(
            gap >= 2_000_000_000 - 30_000_000,
            "a 2 s hole in arrival: {gap}"
        );
    }
}
