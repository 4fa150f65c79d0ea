//! `voxtap explain`: one call from the catalog, told for a person: who, when, how it ended,
//! why it was or was not recorded (the policy's trace), its recordings, events and streams.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::ExplainArgs;

pub fn run(args: &ExplainArgs) -> Result<()> {
    let path = args.out.join("catalog.sqlite");
    // Only a catalog that is not there is "no catalog"; a directory or file this user may
    // not read says so, with its OS error.
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no catalog at {}: is --out the directory voxtap wrote?",
            path.display()
        ),
        Err(e) => bail!("cannot read the catalog {}: {e}", path.display()),
        Ok(_) => {}
    }
    if let Err(e) = std::fs::File::open(&path) {
        bail!(
            "cannot read the catalog {}: {e} (give this user the voxtap group's read access)",
            path.display()
        );
    }
    let db = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let ids = find_calls(&db, &args.call)?;
    if ids.is_empty() {
        bail!(
            "no call {:?} in {}: give calls.id or a SIP Call-ID",
            args.call,
            path.display()
        );
    }
    let mut out = String::new();
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        explain_call(&db, *id, &mut out)
            .with_context(|| format!("cannot read call {id} from {}", path.display()))?;
    }
    print!("{out}");
    Ok(())
}

/// `calls.id` if `call` is a number that names one, else every call with that SIP Call-ID.
/// A decision as `voxtap explain` (and the dashboard) print it: the verdict, then the
/// policy's trace, numbered.
pub fn decision_lines<'a>(
    time: &str,
    record: bool,
    reason: &str,
    trace: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let verdict = if record { "record" } else { "do not record" };
    std::iter::once(format!("decision at {time}: {verdict} ({reason})"))
        .chain(
            trace
                .filter(|l| !l.is_empty())
                .enumerate()
                .map(|(i, line)| format!("  {}. {line}", i + 1)),
        )
        .collect()
}

pub(crate) fn find_calls(db: &Connection, call: &str) -> Result<Vec<i64>> {
    if let Ok(id) = call.parse::<i64>() {
        let found: Option<i64> = db
            .query_row("SELECT id FROM calls WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if let Some(id) = found {
            return Ok(vec![id]);
        }
    }
    let mut stmt = db.prepare("SELECT id FROM calls WHERE sip_call_id = ?1 ORDER BY id")?;
    let ids = stmt
        .query_map([call], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

fn party(user: Option<String>, name: Option<String>, sig: String) -> String {
    let user = user.unwrap_or_default();
    match name {
        Some(n) if !n.is_empty() => format!("{user} \"{n}\" at {sig}"),
        _ => format!("{user} at {sig}"),
    }
}

/// A `recordings` row as explain tells it.
struct Rec {
    path: String,
    duration: Option<f64>,
    state: String,
    stop: Option<String>,
    started: String,
    format: String,
    rate: i64,
    codec: String,
    why: Option<String>,
    caller_s: Option<f64>,
    callee_s: Option<f64>,
    slipped_s: Option<f64>,
    shifted_s: Option<f64>,
    size: Option<i64>,
    /// When and why retention or erasure removed its file.
    removed: Option<(String, String)>,
}

/// The call's direction, its conversation's people and every leg of it, with the evidence
/// that tied each leg in.
fn explain_conversation(db: &Connection, id: i64, out: &mut String) -> Result<()> {
    let (direction, conv): (Option<String>, Option<i64>) = db.query_row(
        "SELECT direction, conversation_id FROM calls WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some(d) = direction {
        writeln!(out, "  direction {d}")?;
    }
    let Some(conv) = conv else {
        return Ok(());
    };
    let (caller, callee, legs): (String, String, i64) = db.query_row(
        "SELECT caller_user, callee_user, legs FROM conversations WHERE id = ?1",
        [conv],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    writeln!(
        out,
        "conversation {conv}: {caller} with {callee}, {legs} leg{}",
        if legs == 1 { "" } else { "s" }
    )?;
    if legs <= 1 {
        return Ok(());
    }
    let mut stmt = db.prepare(
        "SELECT c.id, c.sip_call_id, c.caller_user, c.callee_user, c.start_time, c.direction,
                (SELECT count(*) FROM recordings r WHERE r.call_id = c.id AND r.state IN ('complete', 'partial')),
                (SELECT l.evidence || ': ' || l.detail || coalesce(' (to call ' || l.linked_call_id || ')', '')
                   FROM conversation_links l WHERE l.call_id = c.id ORDER BY l.id DESC LIMIT 1)
         FROM calls c WHERE c.conversation_id = ?1 ORDER BY c.start_time, c.id",
    )?;
    let rows = stmt
        .query_map([conv], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (leg, cid, from, to, start, dir, recs, link) in rows {
        let me = if leg == id { "*" } else { " " };
        writeln!(
            out,
            " {me} call {leg}  {start}  {from} -> {to}  {}{}  {cid}",
            dir.as_deref().unwrap_or("not decided"),
            if recs > 0 { ", recorded" } else { "" },
        )?;
        if let Some(l) = link {
            writeln!(out, "      tied by {l}")?;
        }
    }
    Ok(())
}

fn explain_call(db: &Connection, id: i64, out: &mut String) -> Result<()> {
    type Row = (
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    let (sip_call_id, caller_user, caller_name, caller_sig, callee_user, callee_name, callee_sig): Row = db.query_row(
        "SELECT sip_call_id, caller_user, caller_name, caller_signalling, callee_user, callee_name, callee_signalling
         FROM calls WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
    )?;
    type Times = (
        String,
        Option<String>,
        Option<String>,
        Option<f64>,
        String,
        Option<String>,
        Option<i64>,
        String,
    );
    let (start, answer, end, duration, state, end_reason, status, transport): Times = db.query_row(
        "SELECT start_time, answer_time, end_time, duration_s, state, end_reason, final_status, transport FROM calls WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
    )?;
    writeln!(out, "call {id}  Call-ID {sip_call_id}  ({transport})")?;
    writeln!(
        out,
        "  caller   {}",
        party(caller_user, caller_name, caller_sig)
    )?;
    writeln!(
        out,
        "  callee   {}",
        party(callee_user, callee_name, callee_sig)
    )?;
    writeln!(out, "  started  {start}")?;
    writeln!(out, "  answered {}", answer.as_deref().unwrap_or("never"))?;
    let ended = match (&end, &end_reason) {
        (Some(e), Some(r)) => format!(
            "{e} ({r}{})",
            status
                .map(|s| format!(", final status {s}"))
                .unwrap_or_default()
        ),
        _ => format!("not yet ({state})"),
    };
    writeln!(out, "  ended    {ended}")?;
    if let Some(d) = duration {
        writeln!(out, "  talked   {d:.1} s")?;
    }
    explain_conversation(db, id, out)?;

    let mut stmt = db.prepare(
        "SELECT time, record, reason, trace FROM decisions WHERE call_id = ?1 ORDER BY id",
    )?;
    let decisions = stmt
        .query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if decisions.is_empty() {
        writeln!(
            out,
            "decision: none (the call was never answered, so no policy was asked)"
        )?;
    }
    for (time, record, reason, trace) in decisions {
        for line in decision_lines(&time, record, &reason, trace.lines()) {
            writeln!(out, "{line}")?;
        }
    }

    let mut stmt = db.prepare(
        "SELECT path, duration_s, state, stop_reason, start_time, format, sample_rate, codec,
                state_reason, caller_audio_s, callee_audio_s, slipped_s, shifted_s, size_bytes,
                removed_at, removed_reason
         FROM recordings WHERE call_id = ?1 ORDER BY id",
    )?;
    let recs = stmt
        .query_map([id], |r| {
            Ok(Rec {
                path: r.get(0)?,
                duration: r.get(1)?,
                state: r.get(2)?,
                stop: r.get(3)?,
                started: r.get(4)?,
                format: r.get(5)?,
                rate: r.get(6)?,
                codec: r.get(7)?,
                why: r.get(8)?,
                caller_s: r.get(9)?,
                callee_s: r.get(10)?,
                slipped_s: r.get(11)?,
                shifted_s: r.get(12)?,
                size: r.get(13)?,
                removed: match (r.get(14)?, r.get(15)?) {
                    (Some(at), Some(why)) => Some((at, why)),
                    _ => None,
                },
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    writeln!(
        out,
        "recordings:{}",
        if recs.is_empty() { " none" } else { "" }
    )?;
    for r in recs {
        let dur = r
            .duration
            .map(|d| format!("{d:.1} s"))
            .unwrap_or_else(|| "-".into());
        let codec = if r.codec.is_empty() {
            String::new()
        } else {
            format!(" from {}", r.codec)
        };
        writeln!(
            out,
            "  {}  {dur}  {}  {} {} Hz{codec}, {} bytes, from {}{}",
            r.path,
            r.state,
            r.format,
            r.rate,
            r.size.unwrap_or(0),
            r.started,
            r.stop
                .map(|s| format!(", stopped: {s}"))
                .unwrap_or_default()
        )?;
        if let Some(why) = r.why {
            writeln!(out, "    why not complete: {why}")?;
        }
        if let Some((at, why)) = r.removed {
            writeln!(out, "    file removed {at}: {why}")?;
        }
        if let (Some(a), Some(b)) = (r.caller_s, r.callee_s) {
            writeln!(
                out,
                "    audio heard: caller {a:.1} s, callee {b:.1} s{}",
                match (r.slipped_s, r.shifted_s) {
                    (Some(s), Some(t)) if s > 0.0 || t > 0.0 => format!(
                        "; {s:.3} s of silence slipped in for a slower sender clock, {t:.3} s moved later after a stall"
                    ),
                    _ => String::new(),
                }
            )?;
        }
    }
    crate::dispatch::explain(db, id, out)?;

    crate::evidence::explain_lines(db, id, out)?;

    let mut stmt = db.prepare(
        "SELECT time, kind, value, source, side, offset_s, user, device FROM events WHERE call_id = ?1 ORDER BY time, id",
    )?;
    let events = stmt
        .query_map(params![id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<f64>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !events.is_empty() {
        writeln!(out, "events:")?;
    }
    for (time, kind, value, source, side, offset, user, device) in events {
        let at = offset
            .map(|o| format!(" (+{o:.2} s in the recording)"))
            .unwrap_or_default();
        let who = [
            source,
            side,
            user.map(|u| format!("user {u}")),
            device.map(|d| format!("device {d}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        writeln!(
            out,
            "  {time}{at}  {kind} {}  [{who}]",
            value.unwrap_or_default()
        )?;
    }

    let mut stmt = db.prepare(
        "SELECT side, src_addr, src_port, dst_addr, dst_port, codec, ssrc, packets, lost, max_jitter_ms,
                mean_jitter_ms, status, status_reason, security, late, duplicates, concealed_s,
                decoded_s, undecodable_packets, decrypt_failures, clock_rate
         FROM streams WHERE call_id = ?1 ORDER BY id",
    )?;
    let streams = stmt
        .query_map([id], |r| {
            let mut line = format!(
                "  {} {}:{} -> {}:{}  {}/{}  ssrc {:#010x}  {}  {} packets, lost {}, jitter max {:.2} ms mean {:.2} ms",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                r.get::<_, i64>(20)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(13)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, f64>(9)?,
                r.get::<_, f64>(10)?,
            );
            let status: String = r.get(11)?;
            let why: Option<String> = r.get(12)?;
            write!(
                line,
                "\n      audio {status}{}: {:.1} s decoded, {:.3} s concealed, {} late, {} duplicates, {} undecodable, {} failed SRTP",
                why.map(|w| format!(" ({w})")).unwrap_or_default(),
                r.get::<_, f64>(17)?,
                r.get::<_, f64>(16)?,
                r.get::<_, i64>(14)?,
                r.get::<_, i64>(15)?,
                r.get::<_, i64>(18)?,
                r.get::<_, i64>(19)?,
            )
            .expect("writing to a String");
            Ok(line)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    writeln!(
        out,
        "streams:{}",
        if streams.is_empty() { " none" } else { "" }
    )?;
    for s in streams {
        writeln!(out, "{s}")?;
    }
    Ok(())
}
