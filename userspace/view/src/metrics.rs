//! The Prometheus exposition of a [`crate::proto::Snapshot`] (docs/metrics.md).
//!
//! [`render`] writes the text exposition format (version 0.0.4) of one snapshot: every
//! family's `# HELP` and `# TYPE` lines, then its samples. [`MetricsServer`] serves it over
//! HTTP (`GET /metrics`), rendering the newest snapshot at each scrape.
//!
//! The figures are the dashboard's: counters since the run started become `_total`
//! counters, levels become gauges. The per-second rates of the snapshot are left out, since
//! Prometheus derives them from the counters (`rate(voxtap_frames_total[1m])`).

mod server;
mod text;

pub use server::MetricsServer;

use crate::proto::Snapshot;
use text::{Exposition, Kind};

/// The `Content-Type` of what [`render`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes the exposition of `s` (HELP and TYPE for every family, then samples).
pub fn render(s: &Snapshot, out: &mut String) {
    let mut e = Exposition::new(out);
    head(&mut e, true);

    e.family(
        "voxtap_capture_info",
        Kind::Gauge,
        "What this run reads: its capture mode (xdp, afpacket or replay) and source; always 1.",
    );
    e.sample(&[("mode", &s.mode), ("source", &s.source)], 1u64);

    e.family(
        "voxtap_uptime_seconds",
        Kind::Gauge,
        "Seconds since the run started (wall clock).",
    );
    e.sample(&[], s.uptime_s);

    e.family(
        "voxtap_last_frame_timestamp_seconds",
        Kind::Gauge,
        "Packet time of the latest frame read, in seconds since the Unix epoch.",
    );
    e.sample(&[], s.now);

    if let Some(p) = s.progress {
        e.family(
            "voxtap_replay_progress_ratio",
            Kind::Gauge,
            "A replay: the share of its input read, 0 to 1 (absent for a live run).",
        );
        e.sample(&[], p);
    }

    e.family(
        "voxtap_input_finished",
        Kind::Gauge,
        "1 once the input is over (a replay that has finished), else 0.",
    );
    e.sample(&[], u64::from(s.finished));

    // What was read.
    let t = &s.totals;
    e.family(
        "voxtap_frames_total",
        Kind::Counter,
        "Frames read from the capture.",
    );
    e.sample(&[], t.frames);
    e.family(
        "voxtap_frames_bytes_total",
        Kind::Counter,
        "Bytes of the frames read (captured length).",
    );
    e.sample(&[], t.bytes);
    e.family(
        "voxtap_sip_messages_total",
        Kind::Counter,
        "SIP messages read (UDP, and reassembled from TCP).",
    );
    e.sample(&[], t.sip_messages);
    e.family(
        "voxtap_rtp_packets_total",
        Kind::Counter,
        "RTP packets read.",
    );
    e.sample(&[], t.rtp_packets);
    e.family(
        "voxtap_rtcp_packets_total",
        Kind::Counter,
        "RTCP packets read.",
    );
    e.sample(&[], t.rtcp_packets);
    e.family(
        "voxtap_other_frames_total",
        Kind::Counter,
        "Frames that were neither SIP nor RTP.",
    );
    e.sample(&[], t.other);

    // What was lost, and where.
    let d = &s.drops;
    e.family(
        "voxtap_dropped_total",
        Kind::Counter,
        "Frames and packets lost, by the place they were lost (kernel, voxtap, audio, network) and the reason.",
    );
    let drops: [(&str, &str, u64); 9] = [
        ("kernel", "ring_full", d.kernel_ring_full),
        ("kernel", "afpacket", d.kernel_dropped),
        ("kernel", "no_socket", d.kernel_redirect_failed),
        ("voxtap", "queue_full", d.queue_full),
        ("voxtap", "malformed", d.malformed),
        ("voxtap", "bounds", d.bounds),
        ("audio", "late", d.late_audio),
        ("audio", "decrypt_failed", d.decrypt_failures),
        ("network", "rtp_lost", d.network_rtp_lost),
    ];
    for (place, reason, v) in drops {
        e.sample(&[("place", place), ("reason", reason)], v);
    }
    let k = &s.kernel_filter;
    e.family(
        "voxtap_xdp_frames_total",
        Kind::Counter,
        "XDP: frames the kernel program judged, by verdict: passed (sip, rtp, fragment, rtp_guess), dropped (not VoIP) or parse_failed (dropped); each frame once.",
    );
    for (verdict, v) in [
        ("sip", k.passed_sip),
        ("rtp", k.passed_rtp),
        ("fragment", k.passed_fragment),
        ("rtp_guess", k.passed_rtp_guess),
        ("dropped", k.dropped),
        ("parse_failed", k.parse_failed),
    ] {
        e.sample(&[("verdict", verdict)], v);
    }
    e.family(
        "voxtap_xdp_decapsulated_total",
        Kind::Counter,
        "XDP: frames of a remote mirror (ERSPAN, GRE, VXLAN, Geneve, TZSP, IP-in-IP) judged by the frame inside; also in voxtap_xdp_frames_total.",
    );
    e.sample(&[], k.decapsulated);
    e.family(
        "voxtap_kernel_fill_ring_empty_total",
        Kind::Counter,
        "AF_XDP: times the kernel found the fill ring empty (events, not frames: the frames it lost are in voxtap_dropped_total{reason=\"ring_full\"}).",
    );
    e.sample(&[], d.kernel_fill_ring_empty);
    e.family(
        "voxtap_undecoded_streams_total",
        Kind::Counter,
        "RTP streams whose audio could not be decoded (in part or whole), by reason: undecodable, or encrypted with no key.",
    );
    e.sample(&[("reason", "undecodable")], d.undecodable_streams);
    e.sample(&[("reason", "encrypted")], d.encrypted_streams);

    // The workers.
    e.family(
        "voxtap_worker_rtp_packets_total",
        Kind::Counter,
        "RTP packets of the calls each worker owns.",
    );
    let mut n = String::new();
    for (i, w) in s.workers.iter().enumerate() {
        worker_label(&mut n, i);
        e.sample(&[("worker", &n)], w.rtp_packets);
    }
    e.family(
        "voxtap_worker_queue_fill_ratio",
        Kind::Gauge,
        "Share of each worker's input queue in use, 0 to 1.",
    );
    for (i, w) in s.workers.iter().enumerate() {
        worker_label(&mut n, i);
        e.sample(&[("worker", &n)], w.queue_fill);
    }

    // Calls and recordings.
    e.family("voxtap_active_calls", Kind::Gauge, "Calls in progress.");
    e.sample(&[], s.active_calls);
    e.family(
        "voxtap_calls_seen_total",
        Kind::Counter,
        "Calls seen (an INVITE that started a call).",
    );
    e.sample(&[], t.calls_seen);
    e.family(
        "voxtap_calls_picked_up_total",
        Kind::Counter,
        "Calls picked up from their 2xx answer: their INVITE was not seen (lost, or before the capture began).",
    );
    e.sample(&[], t.calls_picked_up);
    e.family(
        "voxtap_calls_answered_total",
        Kind::Counter,
        "Calls answered.",
    );
    e.sample(&[], t.calls_answered);

    let r = &s.recordings;
    e.family(
        "voxtap_active_recordings",
        Kind::Gauge,
        "Recordings being written.",
    );
    e.sample(&[], s.active_recordings);
    e.family(
        "voxtap_recordings_started_total",
        Kind::Counter,
        "Recordings started.",
    );
    e.sample(&[], r.started);
    e.family(
        "voxtap_recordings_finished_total",
        Kind::Counter,
        "Recordings finished, by result: written (final on disk) or failed (given up on because the disk refused them).",
    );
    e.sample(&[("result", "written")], r.written);
    e.sample(&[("result", "failed")], r.failed);
    e.family(
        "voxtap_recordings_deleted_total",
        Kind::Counter,
        "Recordings deleted by retention or erasure.",
    );
    e.sample(&[], r.deleted);

    // The catalog writer.
    let w = &s.writer;
    e.family(
        "voxtap_catalog_writer_lag_seconds",
        Kind::Gauge,
        "How far the catalog writer is behind the capture, in seconds of packet time.",
    );
    e.sample(&[], w.lag_s);
    e.family(
        "voxtap_catalog_writer_queued_events",
        Kind::Gauge,
        "Events waiting for the catalog writer.",
    );
    e.sample(&[], w.queued_events);
    e.family(
        "voxtap_recordings_write_refused",
        Kind::Gauge,
        "Open recordings whose last write the disk refused.",
    );
    e.sample(&[], w.refused);
}

/// Writes what is served before the daemon's first snapshot: build information, and
/// `voxtap_snapshot_available 0`.
pub(crate) fn render_unavailable(out: &mut String) {
    head(&mut Exposition::new(out), false);
}

/// The families served whether or not there is a snapshot.
fn head(e: &mut Exposition<'_>, available: bool) {
    e.family(
        "voxtap_build_info",
        Kind::Gauge,
        "The voxtap build serving these metrics; always 1.",
    );
    e.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1u64);
    e.family(
        "voxtap_snapshot_available",
        Kind::Gauge,
        "1 when the daemon has published its state; 0 before its first snapshot, when only build information is served.",
    );
    e.sample(&[], u64::from(available));
}

fn worker_label(buf: &mut String, i: usize) {
    use std::fmt::Write;
    buf.clear();
    let _ = write!(buf, "{i}");
}

#[cfg(test)]
mod tests;
