use std::collections::BTreeMap;

use super::text::{escape_label_value, valid_name, write_float};
use super::{render, render_unavailable};
use crate::proto::{
    Drops, KernelFilter, Rates, RecordingCounts, Snapshot, Totals, VERSION, WorkerLoad, WriterLoad,
};

/// Every field a distinct value, none of them zero.
fn snapshot() -> Snapshot {
    Snapshot {
        version: VERSION,
        source: "eth0 (AF_XDP, zero-copy)".into(),
        mode: "xdp".into(),
        now: 1_700_000_000.25,
        uptime_s: 3723.5,
        progress: Some(0.375),
        finished: true,
        // Not exported: the live list's own size.
        calls_total: 77,
        rates: Rates {
            frames: 901.5,
            sip: 902.5,
            rtp: 903.5,
        },
        totals: Totals {
            frames: 1001,
            bytes: 1002,
            sip_messages: 1003,
            rtp_packets: 1004,
            rtcp_packets: 1005,
            other: 1006,
            calls_seen: 1007,
            calls_answered: 1008,
            calls_picked_up: 1009,
        },
        drops: Drops {
            kernel_ring_full: 2001,
            kernel_fill_ring_empty: 2002,
            kernel_dropped: 2003,
            kernel_redirect_failed: 2012,
            queue_full: 2004,
            malformed: 2005,
            bounds: 2006,
            late_audio: 2007,
            decrypt_failures: 2008,
            undecodable_streams: 2009,
            encrypted_streams: 2010,
            network_rtp_lost: 2011,
        },
        kernel_filter: KernelFilter {
            passed_sip: 2101,
            passed_rtp: 2102,
            passed_fragment: 2103,
            passed_rtp_guess: 2104,
            dropped: 2105,
            parse_failed: 2106,
            decapsulated: 2107,
        },
        workers: vec![
            WorkerLoad {
                rtp_pps: 904.5,
                rtp_packets: 3001,
                queue_fill: 0.125,
            },
            WorkerLoad {
                rtp_pps: 905.5,
                rtp_packets: 3002,
                queue_fill: 0.625,
            },
        ],
        active_calls: 4001,
        active_recordings: 4002,
        recordings: RecordingCounts {
            started: 5001,
            written: 5002,
            failed: 5003,
            deleted: 5004,
        },
        writer: WriterLoad {
            queued_events: 6001,
            lag_s: 1.75,
            refused: 6002,
        },
        calls: Vec::new(),
        recent: Vec::new(),
        detail: None,
    }
}

#[derive(Debug, Default)]
struct Family {
    help: Vec<String>,
    kind: Vec<String>,
    /// Labels (sorted) to the value as written.
    samples: Vec<(BTreeMap<String, String>, String)>,
}

/// Parses an exposition strictly: HELP and TYPE must come before the family's samples, a
/// family's lines must be together, and every sample must belong to a declared family.
fn parse(text: &str) -> BTreeMap<String, Family> {
    assert!(text.ends_with('\n'), "the exposition ends with a line feed");
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "no blank lines");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(
                !families.contains_key(name) || name == current,
                "{name}: its lines are not together"
            );
            let f = families.entry(name.to_string()).or_default();
            assert!(f.samples.is_empty(), "{name}: HELP after samples");
            f.help.push(help.to_string());
            current = name.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name type");
            assert!(
                !families.contains_key(name) || name == current,
                "{name}: its lines are not together"
            );
            let f = families.entry(name.to_string()).or_default();
            assert!(f.samples.is_empty(), "{name}: TYPE after samples");
            f.kind.push(kind.to_string());
            current = name.to_string();
        } else {
            assert!(!line.starts_with('#'), "unexpected comment {line:?}");
            let (name, labels, value) = parse_sample(line);
            assert_eq!(name, current, "sample {line:?} outside its family");
            let f = families.get_mut(&name).unwrap();
            assert_eq!(f.help.len(), 1, "{name}: HELP before samples");
            assert_eq!(f.kind.len(), 1, "{name}: TYPE before samples");
            assert!(
                !f.samples.iter().any(|(l, _)| *l == labels),
                "{name}: duplicate series {labels:?}"
            );
            f.samples.push((labels, value));
        }
    }
    families
}

fn parse_sample(line: &str) -> (String, BTreeMap<String, String>, String) {
    let name_end = line.find(['{', ' ']).expect("a sample has a value");
    let name = &line[..name_end];
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let end;
        loop {
            let start = chars.peek().expect("unterminated labels").0;
            let mut key_end = start;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    key_end = i;
                    break;
                }
            }
            let key = &r[start..key_end];
            assert!(valid_label_name(key), "bad label name {key:?}");
            assert_eq!(
                chars.next().map(|x| x.1),
                Some('"'),
                "label value is quoted"
            );
            let mut value = String::new();
            loop {
                match chars.next().expect("unterminated label value").1 {
                    '"' => break,
                    '\\' => match chars.next().expect("escape").1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => panic!("bad escape \\{c}"),
                    },
                    '\n' => panic!("raw line feed in a label value"),
                    c => value.push(c),
                }
            }
            assert!(labels.insert(key.to_string(), value).is_none());
            match chars.next().expect("after a label").1 {
                ',' => continue,
                '}' => {
                    end = chars.peek().map_or(r.len(), |x| x.0);
                    break;
                }
                c => panic!("unexpected {c:?} after a label"),
            }
        }
        rest = &r[end..];
    }
    let value = rest.strip_prefix(' ').expect("one space before the value");
    assert!(!value.contains(' '), "no timestamps: {line:?}");
    (name.to_string(), labels, value.to_string())
}

fn valid_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !s.starts_with("__")
}

/// A value as Prometheus would read it.
fn number(v: &str) -> f64 {
    match v {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("not a number: {v:?}")),
    }
}

fn rendered(s: &Snapshot) -> String {
    let mut out = String::new();
    render(s, &mut out);
    out
}

fn value(fams: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let f = fams.get(name).unwrap_or_else(|| panic!("no family {name}"));
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (_, v) = f
        .samples
        .iter()
        .find(|(l, _)| *l == want)
        .unwrap_or_else(|| panic!("no {name}{labels:?} in {:?}", f.samples));
    number(v)
}

/// (family, labels, value).
type Expected = (&'static str, Vec<(&'static str, &'static str)>, f64);

/// Every figure of [`snapshot`] the exposition carries.
fn expected() -> Vec<Expected> {
    let v = env!("CARGO_PKG_VERSION");
    vec![
        ("voxtap_build_info", vec![("version", v)], 1.0),
        ("voxtap_snapshot_available", vec![], 1.0),
        (
            "voxtap_capture_info",
            vec![("mode", "xdp"), ("source", "eth0 (AF_XDP, zero-copy)")],
            1.0,
        ),
        ("voxtap_uptime_seconds", vec![], 3723.5),
        (
            "voxtap_last_frame_timestamp_seconds",
            vec![],
            1_700_000_000.25,
        ),
        ("voxtap_replay_progress_ratio", vec![], 0.375),
        ("voxtap_input_finished", vec![], 1.0),
        ("voxtap_frames_total", vec![], 1001.0),
        ("voxtap_frames_bytes_total", vec![], 1002.0),
        ("voxtap_sip_messages_total", vec![], 1003.0),
        ("voxtap_rtp_packets_total", vec![], 1004.0),
        ("voxtap_rtcp_packets_total", vec![], 1005.0),
        ("voxtap_other_frames_total", vec![], 1006.0),
        ("voxtap_calls_seen_total", vec![], 1007.0),
        ("voxtap_calls_answered_total", vec![], 1008.0),
        ("voxtap_calls_picked_up_total", vec![], 1009.0),
        (
            "voxtap_dropped_total",
            vec![("place", "kernel"), ("reason", "ring_full")],
            2001.0,
        ),
        ("voxtap_kernel_fill_ring_empty_total", vec![], 2002.0),
        (
            "voxtap_dropped_total",
            vec![("place", "kernel"), ("reason", "afpacket")],
            2003.0,
        ),
        (
            "voxtap_dropped_total",
            vec![("place", "kernel"), ("reason", "no_socket")],
            2012.0,
        ),
        (
            "voxtap_dropped_total",
            vec![("place", "voxtap"), ("reason", "queue_full")],
            2004.0,
        ),
        (
            "voxtap_dropped_total",
            vec![("place", "voxtap"), ("reason", "malformed")],
            2005.0,
        ),
        (
            "voxtap_dropped_total",
            vec![("place", "voxtap"), ("reason", "bounds")],
            2006.0,
        ),
        (
            "voxtap_dropped_total",
            vec![("place", "audio"), ("reason", "late")],
            2007.0,
        ),
        (
            "voxtap_dropped_total",
            vec![("place", "audio"), ("reason", "decrypt_failed")],
            2008.0,
        ),
        (
            "voxtap_undecoded_streams_total",
            vec![("reason", "undecodable")],
            2009.0,
        ),
        (
            "voxtap_undecoded_streams_total",
            vec![("reason", "encrypted")],
            2010.0,
        ),
        (
            "voxtap_dropped_total",
            vec![("place", "network"), ("reason", "rtp_lost")],
            2011.0,
        ),
        ("voxtap_xdp_frames_total", vec![("verdict", "sip")], 2101.0),
        ("voxtap_xdp_frames_total", vec![("verdict", "rtp")], 2102.0),
        (
            "voxtap_xdp_frames_total",
            vec![("verdict", "fragment")],
            2103.0,
        ),
        (
            "voxtap_xdp_frames_total",
            vec![("verdict", "rtp_guess")],
            2104.0,
        ),
        (
            "voxtap_xdp_frames_total",
            vec![("verdict", "dropped")],
            2105.0,
        ),
        (
            "voxtap_xdp_frames_total",
            vec![("verdict", "parse_failed")],
            2106.0,
        ),
        ("voxtap_xdp_decapsulated_total", vec![], 2107.0),
        (
            "voxtap_worker_rtp_packets_total",
            vec![("worker", "0")],
            3001.0,
        ),
        (
            "voxtap_worker_rtp_packets_total",
            vec![("worker", "1")],
            3002.0,
        ),
        (
            "voxtap_worker_queue_fill_ratio",
            vec![("worker", "0")],
            0.125,
        ),
        (
            "voxtap_worker_queue_fill_ratio",
            vec![("worker", "1")],
            0.625,
        ),
        ("voxtap_active_calls", vec![], 4001.0),
        ("voxtap_active_recordings", vec![], 4002.0),
        ("voxtap_recordings_started_total", vec![], 5001.0),
        (
            "voxtap_recordings_finished_total",
            vec![("result", "written")],
            5002.0,
        ),
        (
            "voxtap_recordings_finished_total",
            vec![("result", "failed")],
            5003.0,
        ),
        ("voxtap_recordings_deleted_total", vec![], 5004.0),
        ("voxtap_catalog_writer_queued_events", vec![], 6001.0),
        ("voxtap_catalog_writer_lag_seconds", vec![], 1.75),
        ("voxtap_recordings_write_refused", vec![], 6002.0),
    ]
}

#[test]
fn every_figure_under_its_name_and_labels() {
    let text = rendered(&snapshot());
    let fams = parse(&text);
    let want = expected();
    for (name, labels, v) in &want {
        assert_eq!(value(&fams, name, labels), *v, "{name}{labels:?}\n{text}");
    }
    // Nothing more than that: every series is one of the expected.
    let series: usize = fams.values().map(|f| f.samples.len()).sum();
    assert_eq!(series, want.len(), "{text}");
    // The rates are Prometheus's to compute: they are not exported.
    for rate in ["901.5", "902.5", "903.5", "904.5", "905.5"] {
        assert!(!text.contains(rate), "a rate ({rate}) is exported:\n{text}");
    }
}

#[test]
fn families_are_well_formed_and_named_by_the_conventions() {
    let text = rendered(&snapshot());
    let fams = parse(&text);
    assert!(fams.len() >= 25, "{}", fams.len());
    for (name, f) in &fams {
        assert!(valid_name(name), "{name}");
        assert!(name.starts_with("voxtap_"), "{name}");
        assert_eq!(f.help.len(), 1, "{name}: one HELP");
        assert_eq!(f.kind.len(), 1, "{name}: one TYPE");
        assert!(!f.help[0].trim().is_empty(), "{name}: a HELP text");
        assert!(!f.samples.is_empty(), "{name}: a family with no sample");
        match f.kind[0].as_str() {
            "counter" => assert!(name.ends_with("_total"), "counter {name} ends in _total"),
            "gauge" => assert!(!name.ends_with("_total"), "gauge {name} ends in _total"),
            k => panic!("{name}: unexpected type {k}"),
        }
        for word in name.split('_') {
            let not_base = [
                "ms",
                "msec",
                "milliseconds",
                "sec",
                "secs",
                "minutes",
                "hours",
                "percent",
                "kib",
                "mib",
                "kb",
                "mb",
                "bits",
            ];
            assert!(!not_base.contains(&word), "{name}: not a base unit");
        }
        for (_, v) in &f.samples {
            assert!(!number(v).is_nan(), "{name}: NaN from finite input");
        }
    }
}

#[test]
fn every_family_declared_once_in_a_raw_scan() {
    // Independent of the parser: count the HELP and TYPE lines of each name directly.
    let text = rendered(&snapshot());
    let mut help: BTreeMap<&str, usize> = BTreeMap::new();
    let mut kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sampled: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("# HELP ") {
            *help.entry(r.split(' ').next().unwrap()).or_default() += 1;
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            *kind.entry(r.split(' ').next().unwrap()).or_default() += 1;
        } else {
            let name = &line[..line.find(['{', ' ']).unwrap()];
            assert_eq!(help.get(name), Some(&1), "{name}: HELP before it");
            assert_eq!(kind.get(name), Some(&1), "{name}: TYPE before it");
            sampled.push(name);
        }
    }
    assert_eq!(help, kind);
    for name in help.keys() {
        assert!(sampled.contains(name), "{name} has no sample");
    }
}

#[test]
fn label_values_are_escaped() {
    let mut s = snapshot();
    s.source = "a\\b \"c\"\nd".into();
    let text = rendered(&s);
    assert!(
        text.contains(r#"voxtap_capture_info{mode="xdp",source="a\\b \"c\"\nd"} 1"#),
        "{text}"
    );
    // And the parser reads back what was escaped.
    let fams = parse(&text);
    let (labels, _) = &fams["voxtap_capture_info"].samples[0];
    assert_eq!(labels["source"], s.source);

    let mut out = String::new();
    escape_label_value(&mut out, "plain é, {braces} = fine");
    assert_eq!(out, "plain é, {braces} = fine");
}

#[test]
fn floats_are_written_as_prometheus_reads_them() {
    let cases = [
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (0.0, "0"),
        (1.5, "1.5"),
        (-2.25, "-2.25"),
        (1e-7, "0.0000001"),
        (0.1 + 0.2, "0.30000000000000004"),
    ];
    for (v, want) in cases {
        let mut out = String::new();
        write_float(&mut out, v);
        assert_eq!(out, want, "{v}");
    }
    // Written values read back exactly.
    for v in [1e300, 123_456_789.123, 5e-324, f64::MAX] {
        let mut out = String::new();
        write_float(&mut out, v);
        assert_eq!(out.parse::<f64>().unwrap(), v);
    }
    let mut s = snapshot();
    s.writer.lag_s = f64::NAN;
    s.workers[0].queue_fill = f64::INFINITY;
    let text = rendered(&s);
    assert!(
        text.contains("\nvoxtap_catalog_writer_lag_seconds NaN\n"),
        "{text}"
    );
    assert!(
        text.contains("\nvoxtap_worker_queue_fill_ratio{worker=\"0\"} +Inf\n"),
        "{text}"
    );
}

#[test]
fn a_live_run_has_no_progress_and_no_workers_still_declares_their_families() {
    let mut s = snapshot();
    s.progress = None;
    s.finished = false;
    s.workers.clear();
    let text = rendered(&s);
    assert!(!text.contains("voxtap_replay_progress_ratio"), "{text}");
    assert!(text.contains("\nvoxtap_input_finished 0\n"), "{text}");
    // A family without samples still has its HELP and TYPE (and only those).
    assert!(text.contains(
        "# TYPE voxtap_worker_rtp_packets_total counter\n# HELP voxtap_worker_queue_fill_ratio "
    ));
    assert!(!text.contains("worker=\""), "{text}");

    // The default snapshot renders without a panic and with every counter at 0.
    let text = rendered(&Snapshot::default());
    let fams = parse(&text);
    for (name, f) in &fams {
        if name.ends_with("_total") {
            for (_, v) in &f.samples {
                assert_eq!(v, "0", "{name}");
            }
        }
    }
}

#[test]
fn before_the_first_snapshot_only_build_information() {
    let mut out = String::new();
    render_unavailable(&mut out);
    let fams = parse(&out);
    assert_eq!(
        fams.keys().collect::<Vec<_>>(),
        ["voxtap_build_info", "voxtap_snapshot_available"]
    );
    assert_eq!(
        value(
            &fams,
            "voxtap_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(value(&fams, "voxtap_snapshot_available", &[]), 0.0);
}

#[test]
fn render_appends() {
    let mut out = String::from("keep\n");
    render(&snapshot(), &mut out);
    assert!(out.starts_with("keep\n# HELP voxtap_build_info "));
}
