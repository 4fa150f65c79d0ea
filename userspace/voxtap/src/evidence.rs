//! `voxtap evidence`: a call's evidence files from the catalog: listed, written out as one
//! plain pcap for any tool (docs/evidence.md). Erasure and retention remove them with the
//! call's recordings (`voxtap erase`, `voxtap prune`; docs/retention.md).

use std::fmt::Write as _;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use rusqlite::{Connection, OpenFlags};
use voxtap_core::stats::Stats;
use voxtap_store::EvidenceReport;
use voxtap_store::evidence::{self, EvidenceRow};

use crate::EvidenceArgs;

pub fn run(args: &EvidenceArgs) -> Result<()> {
    let path = args.out.join(voxtap_store::CATALOG_FILE);
    if !path.exists() {
        bail!(
            "no catalog at {}: is --out the directory voxtap wrote?",
            path.display()
        );
    }
    let db = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path.display()))?;
    db.busy_timeout(Duration::from_secs(10))
        .with_context(|| format!("cannot open {}", path.display()))?;
    let ids = crate::explain::find_calls(&db, &args.call)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let id = match ids.as_slice() {
        [] => bail!(
            "no call {:?} in {}: give calls.id or a SIP Call-ID",
            args.call,
            path.display()
        ),
        [id] => *id,
        many => bail!(
            "{} calls have the Call-ID {:?} (calls.id {}): give the one you mean by its calls.id",
            many.len(),
            args.call,
            many.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let rows = rows(&db, id).with_context(|| format!("cannot read {}", path.display()))?;
    let Some(pcap) = &args.write else {
        let mut out = String::new();
        list(&rows, &mut out)?;
        if rows.is_empty() {
            out.push_str("  (evidence was off for this call: see [evidence] in docs/config.md)\n");
        }
        print!("call {id}\n{out}");
        return Ok(());
    };
    let readable: Vec<&EvidenceRow> = rows
        .iter()
        .filter(|r| matches!(r.state.as_str(), "complete" | "writing" | "failed"))
        .collect();
    if readable.is_empty() {
        bail!(
            "call {id} has no evidence to write{}",
            if rows.is_empty() {
                " (evidence was off for it)".to_string()
            } else {
                format!(
                    ": its files are {}",
                    rows.iter()
                        .map(|r| r.state.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    let mut frames = Vec::new();
    for r in &readable {
        frames.extend(evidence::read(&args.out.join(&r.path))?);
    }
    let written = write_pcap(pcap, &frames)?;
    println!(
        "call {id}: {written} frames to {} (pcap, link type {})",
        pcap.display(),
        frames.first().map_or(1, |f| f.linktype)
    );
    Ok(())
}

/// Writes `frames` as a libpcap file with nanosecond timestamps. Classic pcap has one link
/// type per file: frames of several are refused with their counts, rather than some left out.
fn write_pcap(path: &Path, frames: &[evidence::StoredFrame]) -> Result<usize> {
    let mut kinds: Vec<(u32, usize)> = Vec::new();
    for f in frames {
        match kinds.iter_mut().find(|(l, _)| *l == f.linktype) {
            Some((_, n)) => *n += 1,
            None => kinds.push((f.linktype, 1)),
        }
    }
    if kinds.len() > 1 {
        bail!(
            "{}: the call's frames have {} link types ({}), and a pcap file holds one: open the call's .pcapng.lz4 directly (Wireshark reads it), or convert with editcap",
            path.display(),
            kinds.len(),
            kinds
                .iter()
                .map(|(l, n)| format!("{n} of LINKTYPE {l}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let datalink = DataLink::from(kinds.first().map_or(1, |k| k.0));
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 262_144,
        datalink,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::Little,
    };
    let mut w = PcapWriter::with_header(BufWriter::new(file), header)
        .with_context(|| format!("cannot write {}", path.display()))?;
    for f in frames {
        let ts = Duration::from_nanos(f.ts.0);
        w.write_packet(&PcapPacket::new(ts, f.data.len() as u32, &f.data))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut inner = w.into_writer();
    std::io::Write::flush(&mut inner)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(frames.len())
}

/// The call's evidence rows; none when the catalog predates evidence (schema 4 or older).
fn rows(db: &Connection, id: i64) -> rusqlite::Result<Vec<EvidenceRow>> {
    let has: i64 = db.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'evidence'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        return Ok(Vec::new());
    }
    evidence::rows_of_call(db, id)
}

fn list(rows: &[EvidenceRow], out: &mut String) -> std::fmt::Result {
    writeln!(
        out,
        "evidence:{}",
        if rows.is_empty() { " none" } else { "" }
    )?;
    for r in rows {
        writeln!(
            out,
            "  {}  {}  {}, {} frames, {} bytes, {} to {}{}",
            r.path.display(),
            r.state,
            r.format,
            r.frames,
            r.size_bytes,
            r.first_time,
            r.last_time,
            r.state_reason
                .as_ref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

/// `voxtap explain`'s evidence lines for call `id` (nothing when evidence was off).
pub fn explain_lines(db: &Connection, id: i64, out: &mut String) -> Result<()> {
    let rows = rows(db, id)?;
    if !rows.is_empty() {
        list(&rows, out)?;
    }
    Ok(())
}

/// The summary line of a run with evidence on, or `None` when it was off.
pub fn summary_line(stats: &Stats, report: &EvidenceReport) -> Option<String> {
    if stats.evidence_frames == 0 && report.files == 0 {
        return None;
    }
    Some(format!(
        "{} frames in {} files, {} writes ({:.1} MiB appended before compression), {} files the disk refused ({} frames dropped), {} chunks written early for the memory bound, {} frames no call claimed",
        report.frames_written,
        report.files,
        report.writes,
        report.bytes_written as f64 / (1024.0 * 1024.0),
        report.write_failed,
        report.frames_dropped,
        stats.evidence_spills,
        stats.evidence_unclaimed
    ))
}
