//! Erasure for data-protection requests: the audio and evidence of a person's calls are
//! deleted, the personal fields of their catalog rows blanked, and an audit row says who did
//! it, when, to which calls and why. Then the catalog is vacuumed and its write-ahead log cut
//! to nothing, so the erased values are not left in free pages or old log frames.
//!
//! A call is erased with every leg of its conversation: the legs a PBX makes of one call carry
//! the same two people.
//!
//! What is blanked: the parties (`calls` user, host, name and signalling address, the
//! conversation's users), the Call-ID and tags, the policy's reason and trace (they quote
//! numbers), conversation evidence details, DTMF digits and the users and devices of events,
//! stream addresses, and the paths of the deleted files (they hold the Call-ID). What is kept:
//! row ids, times, durations, states, codecs and quality figures, so counts and statistics
//! stay true.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use voxtap_core::Timestamp;

/// Whose data goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// Every call with this number as caller or callee, compared digit by digit (`+49 30 555`
    /// matches `+4930555`; a leading `+` or `00` is not part of the comparison). Give each form
    /// the number takes in the catalog (international, national) as its own subject.
    Number(String),
    /// One call: its `calls.id` or SIP Call-ID.
    Call(String),
}

#[derive(Clone, Debug)]
pub struct Request {
    pub subjects: Vec<Subject>,
    pub reason: String,
    /// Who asked for it (the login name) and their uid.
    pub operator: String,
    pub operator_uid: u32,
    /// Only find what would go.
    pub dry_run: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Erasure {
    /// `calls.id` of every call erased (with the other legs of their conversations).
    pub calls: Vec<i64>,
    pub recordings: u64,
    pub evidence_files: u64,
    pub files_deleted: u64,
    pub bytes_deleted: u64,
    /// Files that were already gone.
    pub files_missing: u64,
    /// Where copies went before (dispatch targets that acknowledged them): erasure cannot
    /// reach them; the operator must.
    pub copies_sent: Vec<String>,
    /// The `erasures` row (none on a dry run).
    pub audit_id: Option<i64>,
    /// Whether the catalog was vacuumed and its log emptied.
    pub vacuumed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("no call matches {0}")]
    NothingMatches(String),
    #[error("call {0} is still in progress in a running voxtap; erase it after the call has ended")]
    InProgress(i64),
    #[error("cannot delete {path}: {source} (nothing was erased from the catalog)")]
    Delete { path: String, source: io::Error },
    #[error("catalog: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

fn digits(s: &str) -> String {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    match d.strip_prefix("00") {
        Some(rest) if s.trim_start().starts_with("00") => rest.to_owned(),
        _ => d,
    }
}

fn table_has(db: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut s = db.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let found = s
        .query_map([table], |r| r.get::<_, String>(0))?
        .filter_map(Result::ok)
        .any(|c| c == column);
    Ok(found)
}

/// The calls a subject names, without their conversations.
fn matching(db: &Connection, subject: &Subject) -> rusqlite::Result<Vec<i64>> {
    match subject {
        Subject::Call(c) => {
            let by_id = c.parse::<i64>().ok();
            let mut s = db.prepare("SELECT id FROM calls WHERE id = ?1 OR sip_call_id = ?2")?;
            let rows = s.query_map(params![by_id, c], |r| r.get(0))?;
            rows.collect()
        }
        Subject::Number(n) => {
            let want = digits(n);
            if want.is_empty() {
                return Ok(Vec::new());
            }
            let mut s = db.prepare("SELECT id, caller_user, callee_user FROM calls")?;
            let rows = s.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for r in rows {
                let (id, a, b) = r?;
                if digits(&a) == want || digits(&b) == want {
                    out.push(id);
                }
            }
            Ok(out)
        }
    }
}

/// The calls and every other leg of their conversations.
fn with_conversations(db: &Connection, calls: &BTreeSet<i64>) -> rusqlite::Result<BTreeSet<i64>> {
    let mut out = calls.clone();
    let mut conv = db.prepare(
        "SELECT id FROM calls WHERE conversation_id IS NOT NULL AND conversation_id =
            (SELECT conversation_id FROM calls WHERE id = ?1)",
    )?;
    for &c in calls {
        for id in conv.query_map([c], |r| r.get::<_, i64>(0))? {
            out.insert(id?);
        }
    }
    Ok(out)
}

/// Whether a live voxtap holds the directory (its writer lock).
fn live_writer(dir: &Path) -> bool {
    let Ok(f) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(crate::LOCK_FILE))
    else {
        return false;
    };
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(_) => true,
    }
}

struct File {
    kind: &'static str,
    path: String,
    size: u64,
}

fn files_of(db: &Connection, calls: &BTreeSet<i64>) -> rusqlite::Result<Vec<File>> {
    let mut out = Vec::new();
    let mut s = db.prepare(
        "SELECT path, coalesce(size_bytes, 0) FROM recordings
         WHERE call_id = ?1 AND state NOT IN ('expired', 'erased')",
    )?;
    for &c in calls {
        for r in s.query_map([c], |r| {
            Ok(File {
                kind: "recording",
                path: r.get(0)?,
                size: r.get::<_, i64>(1)?.max(0) as u64,
            })
        })? {
            out.push(r?);
        }
    }
    if table_has(db, "evidence", "path")? {
        let mut s = db.prepare(
            "SELECT path, coalesce(size_bytes, 0) FROM evidence
             WHERE call_id = ?1 AND state NOT IN ('expired', 'erased')",
        )?;
        for &c in calls {
            for r in s.query_map([c], |r| {
                Ok(File {
                    kind: "evidence",
                    path: r.get(0)?,
                    size: r.get::<_, i64>(1)?.max(0) as u64,
                })
            })? {
                out.push(r?);
            }
        }
    }
    Ok(out)
}

fn copies_sent(db: &Connection, calls: &BTreeSet<i64>) -> rusqlite::Result<Vec<String>> {
    let mut out = BTreeSet::new();
    if !table_has(db, "dispatch_jobs", "call_id")? {
        return Ok(Vec::new());
    }
    let target = if table_has(db, "dispatch_jobs", "target")? {
        "target || ' (' || kind || ')'"
    } else {
        "kind"
    };
    let mut s = db.prepare(&format!(
        "SELECT {target} FROM dispatch_jobs WHERE call_id = ?1 AND state = 'done'"
    ))?;
    for &c in calls {
        for r in s.query_map([c], |r| r.get::<_, String>(0))? {
            out.insert(r?);
        }
    }
    Ok(out.into_iter().collect())
}

/// Finds, deletes and blanks; see the module's text. `dir` is the output directory.
pub fn erase(
    db: &Connection,
    dir: &Path,
    req: &Request,
    now: Timestamp,
) -> Result<Erasure, EraseError> {
    let mut named = BTreeSet::new();
    for s in &req.subjects {
        let found = matching(db, s)?;
        if found.is_empty() {
            return Err(EraseError::NothingMatches(match s {
                Subject::Number(_) => "that number".to_owned(),
                Subject::Call(c) => format!("call {c:?}"),
            }));
        }
        named.extend(found);
    }
    let calls = with_conversations(db, &named)?;
    let files = files_of(db, &calls)?;
    let mut out = Erasure {
        calls: calls.iter().copied().collect(),
        recordings: files.iter().filter(|f| f.kind == "recording").count() as u64,
        evidence_files: files.iter().filter(|f| f.kind == "evidence").count() as u64,
        copies_sent: copies_sent(db, &calls)?,
        ..Erasure::default()
    };
    if live_writer(dir) {
        let mut open = db.prepare("SELECT state FROM calls WHERE id = ?1")?;
        for &c in &calls {
            let state: String = open.query_row([c], |r| r.get(0))?;
            if state == "ringing" || state == "answered" {
                return Err(EraseError::InProgress(c));
            }
        }
    }
    if req.dry_run {
        out.bytes_deleted = files.iter().map(|f| f.size).sum();
        return Ok(out);
    }
    // The files first: if one cannot go, the catalog still says where it is.
    for f in &files {
        if f.path.is_empty() {
            continue;
        }
        if f.kind == "evidence" {
            // A call's evidence still being written (or left by a crash) is in its part.
            let part = crate::evidence::part_path(&dir.join(&f.path));
            match fs::remove_file(&part) {
                Ok(()) => out.files_deleted += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(EraseError::Delete {
                        path: part.display().to_string(),
                        source,
                    });
                }
            }
        }
        match fs::remove_file(dir.join(&f.path)) {
            Ok(()) => {
                out.files_deleted += 1;
                out.bytes_deleted += f.size;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => out.files_missing += 1,
            Err(source) => {
                return Err(EraseError::Delete {
                    path: dir.join(&f.path).display().to_string(),
                    source,
                });
            }
        }
    }
    // Overwrite what is deleted inside the database file too.
    db.pragma_update(None, "secure_delete", "ON")?;
    let tx = db.unchecked_transaction()?;
    let subject = req
        .subjects
        .iter()
        .map(|s| match s {
            Subject::Number(_) => "a number (not kept)".to_owned(),
            Subject::Call(_) => "a call".to_owned(),
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(", ");
    let call_list = out
        .calls
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    tx.execute(
        "INSERT INTO erasures (time, operator, operator_uid, subject, reason, calls, recordings,
             evidence_files, files_deleted, bytes_deleted, copies_sent, vacuumed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0)",
        params![
            now.to_string(),
            req.operator,
            req.operator_uid,
            subject,
            req.reason,
            call_list,
            out.recordings as i64,
            out.evidence_files as i64,
            out.files_deleted as i64,
            out.bytes_deleted as i64,
            out.copies_sent.join("\n"),
        ],
    )?;
    let audit = tx.last_insert_rowid();
    out.audit_id = Some(audit);
    let now_text = now.to_string();
    let why = format!("erased (erasures.id {audit})");
    for &c in &calls {
        tx.execute(
            "UPDATE calls SET sip_call_id = 'erased', from_tag = '', to_tag = NULL,
                 caller_user = '', caller_host = '', caller_name = NULL,
                 callee_user = '', callee_host = '', callee_name = NULL,
                 caller_signalling = '', callee_signalling = '', erasure_id = ?2
             WHERE id = ?1",
            params![c, audit],
        )?;
        tx.execute(
            "UPDATE conversations SET caller_user = '', callee_user = ''
             WHERE id = (SELECT conversation_id FROM calls WHERE id = ?1)",
            [c],
        )?;
        tx.execute(
            "UPDATE decisions SET reason = 'erased', trace = '', users = NULL WHERE call_id = ?1",
            [c],
        )?;
        tx.execute(
            "UPDATE conversation_links SET detail = '' WHERE call_id = ?1 OR linked_call_id = ?1",
            [c],
        )?;
        tx.execute(
            "UPDATE events SET value = NULL, user = NULL, device = NULL WHERE call_id = ?1",
            [c],
        )?;
        tx.execute(
            "UPDATE streams SET src_addr = '', src_port = 0, dst_addr = '', dst_port = 0
             WHERE call_id = ?1",
            [c],
        )?;
        tx.execute(
            "UPDATE recordings SET state_before_removal = coalesce(state_before_removal, state),
                 state = 'erased', removed_at = ?2, removed_reason = ?3,
                 path = 'erased/' || id
             WHERE call_id = ?1",
            params![c, now_text, why],
        )?;
    }
    if table_has(db, "evidence", "path")? {
        for &c in &calls {
            tx.execute(
                "UPDATE evidence SET state = 'erased', path = 'erased/' || id WHERE call_id = ?1",
                [c],
            )?;
        }
    }
    if table_has(db, "dispatch_jobs", "call_id")? {
        let blank: Vec<&str> = ["destination", "last_error"]
            .into_iter()
            .filter(|col| table_has(db, "dispatch_jobs", col).unwrap_or(false))
            .collect();
        for &c in &calls {
            if !blank.is_empty() {
                let set = blank
                    .iter()
                    .map(|col| format!("{col} = NULL"))
                    .collect::<Vec<_>>()
                    .join(", ");
                tx.execute(
                    &format!("UPDATE dispatch_jobs SET {set} WHERE call_id = ?1"),
                    [c],
                )?;
            }
            // Nothing more goes out for an erased call.
            tx.execute(
                "UPDATE dispatch_jobs SET state = 'failed' WHERE call_id = ?1
                     AND state IN ('pending', 'running')",
                [c],
            )?;
            if table_has(db, "dispatch_attempts", "detail")? {
                tx.execute(
                    "UPDATE dispatch_attempts SET detail = NULL
                     WHERE job_id IN (SELECT id FROM dispatch_jobs WHERE call_id = ?1)",
                    [c],
                )?;
            }
        }
    }
    tx.commit()?;
    out.vacuumed = vacuum(db)?;
    if out.vacuumed {
        db.execute("UPDATE erasures SET vacuumed = 1 WHERE id = ?1", [audit])?;
        // Fold that last change in too, so the log is empty again.
        out.vacuumed = checkpoint(db)?;
    }
    Ok(out)
}

/// Rebuilds the database file without free pages, then copies the log into it and cuts the
/// log to zero bytes. False if a reader kept the log from being emptied.
pub fn vacuum(db: &Connection) -> rusqlite::Result<bool> {
    db.execute_batch("VACUUM")?;
    checkpoint(db)
}

fn checkpoint(db: &Connection) -> rusqlite::Result<bool> {
    let busy: i64 = db
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    Ok(busy == 0)
}
