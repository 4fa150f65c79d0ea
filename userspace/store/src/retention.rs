//! Retention: which recordings (and evidence files) leave the disk, by age and by quota, per
//! tenant. Their catalog rows stay, `expired`, with their metadata and when and why they went.
//!
//! [`plan`] only reads the catalog: it is what `voxtap prune --dry-run` prints. [`apply`]
//! deletes the files of a plan and marks their rows, one item at a time, so an interrupted
//! prune leaves every row true to the disk (a row is marked only after its file is gone).
//!
//! Rules, for each tenant (a call's tenant is the one the recording rules put it in; calls of
//! no tenant fall under the defaults):
//! - **age**: an item whose call started more than `max_age` before `now` goes;
//! - **quota**: while a tenant's items on disk add up to more than its `max_bytes`, its oldest
//!   go first; then the same over all tenants for the global `total_bytes`;
//! - an item whose dispatch is still pending (or running) is held back until its oldest
//!   pending job is `dispatch_grace` old; after that it goes, and the job is marked failed
//!   with the reason, so the dispatcher does not try to send a file that is gone.
//!
//! Open recordings (`recording`) are never touched.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use voxtap_core::Timestamp;

/// Limits for one tenant (or the defaults). `None`: no limit of that kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetentionPolicy {
    /// For calls of no tenant, and for tenants without their own entry.
    pub default: Limits,
    /// Per tenant (by its name in the rules); a field left `None` falls back to `default`.
    pub tenants: BTreeMap<String, Limits>,
    /// All items on disk together, whatever their tenant.
    pub total_bytes: Option<u64>,
    /// How long an item whose dispatch is pending is kept past its limits.
    pub dispatch_grace: Duration,
}

impl Default for RetentionPolicy {
    /// pascom's default: 90 days, no quota, a day's grace for pending dispatch.
    fn default() -> Self {
        RetentionPolicy {
            default: Limits {
                max_age: Some(Duration::from_secs(90 * 86_400)),
                max_bytes: None,
            },
            tenants: BTreeMap::new(),
            total_bytes: None,
            dispatch_grace: Duration::from_secs(86_400),
        }
    }
}

impl RetentionPolicy {
    fn limits(&self, tenant: Option<&str>) -> Limits {
        let own = tenant.and_then(|t| self.tenants.get(t));
        Limits {
            max_age: own.and_then(|l| l.max_age).or(self.default.max_age),
            max_bytes: own.and_then(|l| l.max_bytes).or(self.default.max_bytes),
        }
    }

    /// Whether anything can ever go.
    pub fn is_unlimited(&self) -> bool {
        self.default == Limits::default()
            && self.total_bytes.is_none()
            && self.tenants.values().all(|l| *l == Limits::default())
    }
}

/// What is kept on disk: a recording or an evidence capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ItemKind {
    Recording,
    Evidence,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Recording => "recording",
            ItemKind::Evidence => "evidence",
        }
    }
    fn table(self) -> &'static str {
        match self {
            ItemKind::Recording => "recordings",
            ItemKind::Evidence => "evidence",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    /// Its row in `recordings` or `evidence`.
    pub id: i64,
    pub call_id: i64,
    /// Relative to the output directory.
    pub path: String,
    pub size_bytes: u64,
    /// When its call started (RFC 3339 UTC).
    pub start_time: String,
    pub tenant: Option<String>,
}

/// An item that goes, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Expiry {
    pub item: Item,
    pub reason: String,
    /// Its dispatch was still pending; the grace period is over.
    pub dispatch_abandoned: bool,
}

/// An item past its limits but kept for its pending dispatch.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub item: Item,
    pub reason: String,
    /// When the grace period ends.
    pub until: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub expire: Vec<Expiry>,
    pub held: Vec<Held>,
    /// Items on disk and their bytes before the plan.
    pub items: u64,
    pub bytes: u64,
}

impl Plan {
    pub fn bytes_freed(&self) -> u64 {
        self.expire.iter().map(|e| e.item.size_bytes).sum()
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    pub expired: u64,
    pub bytes_freed: u64,
    /// Files already gone (deleted by hand, or by an upload with delete_after_upload): the row
    /// is marked all the same.
    pub already_missing: u64,
    /// Files that could not be deleted: `(path, error)`. Their rows stay as they were.
    pub failed: Vec<(String, String)>,
    pub dispatch_abandoned: u64,
}

fn table_exists(db: &Connection, name: &str) -> rusqlite::Result<bool> {
    db.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

/// Every item on disk, oldest call first.
fn items_on_disk(db: &Connection) -> rusqlite::Result<Vec<Item>> {
    let mut out = Vec::new();
    // Open items (`recording`, `writing`) are never touched.
    let mut kinds = vec![(ItemKind::Recording, "'recording'")];
    if table_exists(db, "evidence")? {
        kinds.push((ItemKind::Evidence, "'writing'"));
    }
    for (kind, open) in kinds {
        let mut s = db.prepare(&format!(
            "SELECT t.id, t.call_id, t.path, coalesce(t.size_bytes, 0), c.start_time, c.tenant
             FROM {} t JOIN calls c ON c.id = t.call_id
             WHERE t.state NOT IN ({open}, 'expired', 'erased') AND t.path <> ''",
            kind.table()
        ))?;
        let rows = s.query_map([], |r| {
            Ok(Item {
                kind,
                id: r.get(0)?,
                call_id: r.get(1)?,
                path: r.get(2)?,
                size_bytes: r.get::<_, i64>(3)?.max(0) as u64,
                start_time: r.get(4)?,
                tenant: r.get(5)?,
            })
        })?;
        for r in rows {
            out.push(r?);
        }
    }
    out.sort_by(|a, b| {
        (&a.start_time, a.call_id, a.kind, a.id).cmp(&(&b.start_time, b.call_id, b.kind, b.id))
    });
    Ok(out)
}

/// For each recording with a pending or running dispatch: when its oldest such job was made.
fn pending_dispatch(db: &Connection) -> rusqlite::Result<BTreeMap<i64, String>> {
    let mut out = BTreeMap::new();
    if !table_exists(db, "dispatch_jobs")? {
        return Ok(out);
    }
    let mut s = db.prepare(
        "SELECT recording_id, min(created_at) FROM dispatch_jobs
         WHERE state IN ('pending', 'running') AND recording_id IS NOT NULL GROUP BY recording_id",
    )?;
    let rows = s.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    for r in rows {
        let (id, t) = r?;
        out.insert(id, t);
    }
    Ok(out)
}

fn before(now: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_nanos(now.as_nanos().saturating_sub(d.as_nanos() as u64))
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_nanos(t.as_nanos().saturating_add(d.as_nanos() as u64))
}

fn days(d: Duration) -> String {
    let days = d.as_secs_f64() / 86_400.0;
    if days.fract() == 0.0 {
        format!("{days:.0} d")
    } else {
        format!("{days:.3} d")
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// What retention would remove now. Reads only.
pub fn plan(db: &Connection, policy: &RetentionPolicy, now: Timestamp) -> rusqlite::Result<Plan> {
    let items = items_on_disk(db)?;
    let pending = pending_dispatch(db)?;
    let mut out = Plan {
        items: items.len() as u64,
        bytes: items.iter().map(|i| i.size_bytes).sum(),
        ..Plan::default()
    };
    // Why each item goes, by index; first reason wins.
    let mut why: Vec<Option<String>> = vec![None; items.len()];
    for (i, item) in items.iter().enumerate() {
        if let Some(age) = policy.limits(item.tenant.as_deref()).max_age
            && item.start_time < before(now, age).to_string()
        {
            why[i] = Some(format!(
                "older than {}{}",
                days(age),
                tenant_text(item.tenant.as_deref())
            ));
        }
    }
    // Per tenant quota, oldest first, counting only what age leaves.
    let mut by_tenant: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        by_tenant.entry(item.tenant.as_deref()).or_default().push(i);
    }
    for (tenant, idx) in &by_tenant {
        let Some(quota) = policy.limits(*tenant).max_bytes else {
            continue;
        };
        let mut used: u64 = idx
            .iter()
            .filter(|&&i| why[i].is_none())
            .map(|&i| items[i].size_bytes)
            .sum();
        for &i in idx {
            if used <= quota {
                break;
            }
            if why[i].is_none() {
                used -= items[i].size_bytes;
                why[i] = Some(format!(
                    "over the quota of {}{}",
                    mib(quota),
                    tenant_text(*tenant)
                ));
            }
        }
    }
    if let Some(quota) = policy.total_bytes {
        let mut used: u64 = (0..items.len())
            .filter(|&i| why[i].is_none())
            .map(|i| items[i].size_bytes)
            .sum();
        for i in 0..items.len() {
            if used <= quota {
                break;
            }
            if why[i].is_none() {
                used -= items[i].size_bytes;
                why[i] = Some(format!("over the total quota of {}", mib(quota)));
            }
        }
    }
    for (item, reason) in items.into_iter().zip(why) {
        let Some(reason) = reason else { continue };
        let queued = match item.kind {
            ItemKind::Recording => pending.get(&item.id),
            ItemKind::Evidence => None,
        };
        match queued {
            Some(since) => {
                let until = parse_rfc3339(since)
                    .map(|t| after(t, policy.dispatch_grace))
                    .unwrap_or(now);
                if until > now {
                    out.held.push(Held {
                        item,
                        reason: format!("{reason}; its dispatch is pending"),
                        until: until.to_string(),
                    });
                } else {
                    out.expire.push(Expiry {
                        item,
                        reason: format!(
                            "{reason}; its dispatch was still pending after the grace of {}",
                            days(policy.dispatch_grace)
                        ),
                        dispatch_abandoned: true,
                    });
                }
            }
            None => out.expire.push(Expiry {
                item,
                reason,
                dispatch_abandoned: false,
            }),
        }
    }
    Ok(out)
}

fn tenant_text(tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!(" (tenant {t})"),
        None => String::new(),
    }
}

/// Deletes the files of `plan` under `dir` and marks their rows `expired`, one at a time.
pub fn apply(
    db: &Connection,
    dir: &Path,
    plan: &Plan,
    now: Timestamp,
) -> rusqlite::Result<Applied> {
    let mut out = Applied::default();
    let now_text = now.to_string();
    for e in &plan.expire {
        let item = &e.item;
        match fs::remove_file(dir.join(&item.path)) {
            Ok(()) => out.bytes_freed += item.size_bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => out.already_missing += 1,
            Err(err) => {
                out.failed.push((item.path.clone(), err.to_string()));
                continue;
            }
        }
        let tx = db.unchecked_transaction()?;
        match item.kind {
            ItemKind::Recording => {
                tx.execute(
                    "UPDATE recordings SET state_before_removal = state, state = 'expired',
                         removed_at = ?2, removed_reason = ?3 WHERE id = ?1",
                    params![item.id, now_text, e.reason],
                )?;
                if e.dispatch_abandoned {
                    out.dispatch_abandoned += tx.execute(
                        "UPDATE dispatch_jobs SET state = 'failed',
                             last_error = 'the recording expired (retention) before it was sent'
                         WHERE recording_id = ?1 AND state IN ('pending', 'running')",
                        [item.id],
                    )? as u64;
                }
            }
            ItemKind::Evidence => {
                tx.execute(
                    &format!(
                        "UPDATE {} SET state = 'expired', state_reason = ?2 WHERE id = ?1",
                        item.kind.table()
                    ),
                    params![item.id, e.reason],
                )?;
            }
        }
        tx.commit()?;
        out.expired += 1;
    }
    Ok(out)
}

/// An RFC 3339 time as the catalog holds them (`2005-09-09T12:02:25.330Z`).
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let t: jiff::Timestamp = s.parse().ok()?;
    u64::try_from(t.as_nanosecond())
        .ok()
        .map(Timestamp::from_nanos)
}
