//! Retention (`[retention]`, `voxtap prune`, and the daemon's own pruning) and erasure
//! (`voxtap erase`). The rules themselves are in `voxtap_store::retention` and
//! `voxtap_store::erase`; this is their configuration and their commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use toml::Spanned;
use voxtap_store::erase::{self, Subject};
use voxtap_store::retention::{self, Limits, Plan, RetentionPolicy};

use crate::config::line_col;
use crate::run::wall_clock;

/// `[retention]`: how long recordings and evidence stay on disk (docs/config.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// Days a recording is kept after its call started; 0 keeps them for ever.
    pub max_age_days: Spanned<f64>,
    /// GiB all recordings and evidence may take together; 0 is no quota.
    pub max_gib: Spanned<f64>,
    /// Hours a recording whose dispatch is pending is kept past its limits.
    pub dispatch_grace_h: Spanned<f64>,
    /// Seconds between the daemon's checks.
    pub interval_s: Spanned<u64>,
    /// Per tenant (its name in `[rules]`): `max_age_days`, `max_gib` (0: none for it).
    pub tenants: BTreeMap<String, Spanned<TenantRetention>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantRetention {
    pub max_age_days: Option<Spanned<f64>>,
    pub max_gib: Option<Spanned<f64>>,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            max_age_days: Spanned::new(0..0, 90.0),
            max_gib: Spanned::new(0..0, 0.0),
            dispatch_grace_h: Spanned::new(0..0, 24.0),
            interval_s: Spanned::new(0..0, 300),
            tenants: BTreeMap::new(),
        }
    }
}

/// 100 years: anything longer is a typo.
const MAX_DAYS: f64 = 36_500.0;
/// 1 PiB.
const MAX_GIB: f64 = 1_048_576.0;
const GIB: f64 = (1u64 << 30) as f64;

fn age(days: f64) -> Option<Duration> {
    (days > 0.0).then(|| Duration::from_secs_f64(days * 86_400.0))
}

fn bytes(gib: f64) -> Option<u64> {
    (gib > 0.0).then_some((gib * GIB) as u64)
}

impl RetentionSection {
    /// Every value in range, every tenant one the rules name; errors name the line.
    pub fn validate(&self, text: &str, tenants: Option<&[String]>) -> Result<()> {
        let at = |span: std::ops::Range<usize>| {
            let (line, col) = line_col(text, span.start);
            format!("line {line}, column {col}")
        };
        let days = |what: &str, v: &Spanned<f64>| -> Result<()> {
            let d = *v.get_ref();
            if !(0.0..=MAX_DAYS).contains(&d) {
                bail!(
                    "{}: {what} must be between 0 (for ever) and {MAX_DAYS}, not {d}",
                    at(v.span())
                );
            }
            Ok(())
        };
        let gib = |what: &str, v: &Spanned<f64>| -> Result<()> {
            let g = *v.get_ref();
            if !(0.0..=MAX_GIB).contains(&g) {
                bail!(
                    "{}: {what} must be between 0 (no quota) and {MAX_GIB}, not {g}",
                    at(v.span())
                );
            }
            Ok(())
        };
        days("retention.max_age_days", &self.max_age_days)?;
        gib("retention.max_gib", &self.max_gib)?;
        let grace = *self.dispatch_grace_h.get_ref();
        if !(0.0..=MAX_DAYS * 24.0).contains(&grace) {
            bail!(
                "{}: retention.dispatch_grace_h must be between 0 and {}, not {grace}",
                at(self.dispatch_grace_h.span()),
                MAX_DAYS * 24.0
            );
        }
        let every = *self.interval_s.get_ref();
        if !(1..=86_400).contains(&every) {
            bail!(
                "{}: retention.interval_s must be between 1 and 86400, not {every}",
                at(self.interval_s.span())
            );
        }
        for (name, t) in &self.tenants {
            if !tenants.is_some_and(|known| known.iter().any(|k| k == name)) {
                bail!(
                    "{}: retention.tenants.{name}: no tenant of that name in [rules]{}",
                    at(t.span()),
                    match tenants {
                        Some(k) if !k.is_empty() => format!(" (there are: {})", k.join(", ")),
                        _ => String::new(),
                    }
                );
            }
            let t = t.get_ref();
            if let Some(d) = &t.max_age_days {
                days(&format!("retention.tenants.{name}.max_age_days"), d)?;
            }
            if let Some(g) = &t.max_gib {
                gib(&format!("retention.tenants.{name}.max_gib"), g)?;
            }
        }
        Ok(())
    }

    pub fn policy(&self) -> RetentionPolicy {
        let tenants = self
            .tenants
            .iter()
            .map(|(name, t)| {
                let t = t.get_ref();
                (
                    name.clone(),
                    Limits {
                        // A tenant's 0 means "none for it", not "fall back".
                        max_age: t
                            .max_age_days
                            .as_ref()
                            .map(|d| age(*d.get_ref()).unwrap_or(Duration::MAX)),
                        max_bytes: t
                            .max_gib
                            .as_ref()
                            .map(|g| bytes(*g.get_ref()).unwrap_or(u64::MAX)),
                    },
                )
            })
            .collect();
        RetentionPolicy {
            default: Limits {
                max_age: age(*self.max_age_days.get_ref()),
                max_bytes: None,
            },
            tenants,
            total_bytes: bytes(*self.max_gib.get_ref()),
            dispatch_grace: Duration::from_secs_f64(*self.dispatch_grace_h.get_ref() * 3600.0),
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(*self.interval_s.get_ref())
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// The output directory (holding catalog.sqlite and recordings/).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The configuration whose [retention] applies (defaults without one: 90 days).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only list what would go (and what is held back for a pending dispatch).
    #[arg(long)]
    pub dry_run: bool,
    /// Judge ages as of this time (RFC 3339, e.g. 2026-03-01T00:00:00Z) instead of now.
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
}

/// `voxtap prune`.
pub fn prune(args: &PruneArgs) -> Result<()> {
    let cfg = crate::config::Config::load_or_default(args.config.as_deref())?;
    let policy = cfg.retention.policy();
    let now = match &args.as_of {
        Some(t) => retention::parse_rfc3339(t).with_context(|| {
            format!("--as-of {t:?} is not an RFC 3339 UTC time such as 2026-03-01T00:00:00Z")
        })?,
        None => wall_clock(),
    };
    let db = voxtap_store::open_existing(&args.out)?;
    let plan = retention::plan(&db, &policy, now)
        .with_context(|| format!("cannot read the catalog in {}", args.out.display()))?;
    print_plan(&plan, args.dry_run);
    if policy.is_unlimited() {
        println!("retention: no limits are set ([retention] max_age_days = 0, no quota)");
    }
    if args.dry_run {
        return Ok(());
    }
    let applied = retention::apply(&db, &args.out, &plan, now)
        .with_context(|| format!("cannot update the catalog in {}", args.out.display()))?;
    println!(
        "expired {} item(s), freed {}{}{}",
        applied.expired,
        mib(applied.bytes_freed),
        if applied.already_missing > 0 {
            format!(
                "; {} file(s) were already gone (rows marked expired)",
                applied.already_missing
            )
        } else {
            String::new()
        },
        if applied.dispatch_abandoned > 0 {
            format!(
                "; {} dispatch job(s) given up (their recording expired)",
                applied.dispatch_abandoned
            )
        } else {
            String::new()
        }
    );
    if !applied.failed.is_empty() {
        for (path, e) in &applied.failed {
            eprintln!("voxtap prune: cannot delete {path}: {e} (its row is unchanged)");
        }
        bail!("{} file(s) could not be deleted", applied.failed.len());
    }
    Ok(())
}

fn print_plan(plan: &Plan, dry_run: bool) {
    let verb = if dry_run { "would expire" } else { "expires" };
    for e in &plan.expire {
        println!(
            "{verb} {} {} of call {} ({}, {}): {}",
            e.item.kind.as_str(),
            e.item.path,
            e.item.call_id,
            e.item.start_time,
            mib(e.item.size_bytes),
            e.reason
        );
    }
    for h in &plan.held {
        println!(
            "held    {} {} of call {} until {}: {}",
            h.item.kind.as_str(),
            h.item.path,
            h.item.call_id,
            h.until,
            h.reason
        );
    }
    println!(
        "{} item(s) on disk ({}); {} {} of them ({}), {} held back for a pending dispatch",
        plan.items,
        mib(plan.bytes),
        verb,
        plan.expire.len(),
        mib(plan.bytes_freed()),
        plan.held.len()
    );
}

/// The daemon's pruning: a thread that applies the policy at start and every interval, with
/// its own catalog connection (WAL lets it work beside the writer).
pub struct Pruner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pruner {
    pub fn spawn(dir: &Path, policy: RetentionPolicy, every: Duration) -> Option<Pruner> {
        if policy.is_unlimited() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let dir = dir.to_owned();
        let thread = std::thread::Builder::new()
            .name("voxtap-retention".into())
            .spawn(move || {
                let mut last: Option<Instant> = None;
                while !s.load(Ordering::Relaxed) {
                    if last.is_none_or(|l| l.elapsed() >= every) {
                        last = Some(Instant::now());
                        if let Err(e) = prune_once(&dir, &policy) {
                            eprintln!("voxtap run: retention: {e:#}");
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
            .expect("spawn the retention thread");
        Some(Pruner {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Pruner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn prune_once(dir: &Path, policy: &RetentionPolicy) -> Result<()> {
    let now = wall_clock();
    let db = voxtap_store::open_existing(dir)?;
    let plan = retention::plan(&db, policy, now)?;
    if plan.expire.is_empty() {
        return Ok(());
    }
    let applied = retention::apply(&db, dir, &plan, now)?;
    eprintln!(
        "voxtap run: retention: expired {} item(s), freed {}{}",
        applied.expired,
        mib(applied.bytes_freed),
        if plan.held.is_empty() {
            String::new()
        } else {
            format!("; {} held back for a pending dispatch", plan.held.len())
        }
    );
    for (path, e) in &applied.failed {
        eprintln!("voxtap run: retention: cannot delete {path}: {e} (its row is unchanged)");
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("subject").required(true).multiple(true).args(["number", "call"])))]
pub struct EraseArgs {
    /// The output directory (holding catalog.sqlite and recordings/).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Erase every call to or from this number (digits compared; repeat for each form the
    /// number takes, e.g. +4930555123 and 030555123).
    #[arg(long, value_name = "N")]
    pub number: Vec<String>,
    /// Erase this call (calls.id or SIP Call-ID); repeatable.
    #[arg(long, value_name = "ID")]
    pub call: Vec<String>,
    /// Why (the request's reference): kept in the audit row.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Only list the calls and files that would go.
    #[arg(long)]
    pub dry_run: bool,
}

/// The login behind this process, as an audit row should name it: `sudo`'s caller first.
fn operator() -> (String, u32) {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let name = ["SUDO_USER", "LOGNAME", "USER"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("uid {uid}"));
    let sudo_uid = std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok());
    (name, sudo_uid.unwrap_or(uid))
}

/// `voxtap erase`.
pub fn erase(args: &EraseArgs) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "voxtap erase deletes recordings for a data-protection request: only an administrator (root) may run it"
        );
    }
    if args.reason.trim().is_empty() {
        bail!("--reason must say why (the request's reference); it goes in the audit row");
    }
    let (operator, uid) = operator();
    let subjects = args
        .number
        .iter()
        .map(|n| Subject::Number(n.clone()))
        .chain(args.call.iter().map(|c| Subject::Call(c.clone())))
        .collect();
    let req = erase::Request {
        subjects,
        reason: args.reason.clone(),
        operator,
        operator_uid: uid,
        dry_run: args.dry_run,
    };
    let db = voxtap_store::open_existing(&args.out)?;
    let done = erase::erase(&db, &args.out, &req, wall_clock())?;
    let calls = done
        .calls
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if args.dry_run {
        println!(
            "would erase {} call(s) (calls.id {calls}) with {} recording(s) and {} evidence file(s), {}",
            done.calls.len(),
            done.recordings,
            done.evidence_files,
            mib(done.bytes_deleted)
        );
    } else {
        println!(
            "erased {} call(s) (calls.id {calls}): {} file(s) deleted ({}){}; audit row erasures.id {}",
            done.calls.len(),
            done.files_deleted,
            mib(done.bytes_deleted),
            if done.files_missing > 0 {
                format!(", {} already gone", done.files_missing)
            } else {
                String::new()
            },
            done.audit_id.unwrap_or_default()
        );
        if done.vacuumed {
            println!(
                "the catalog was vacuumed and its log emptied: the erased values are not in it"
            );
        } else {
            eprintln!(
                "voxtap erase: WARNING: a reader kept the catalog's log from being emptied; the erased values may remain in catalog.sqlite-wal until `voxtap erase` or `sqlite3 catalog.sqlite 'PRAGMA wal_checkpoint(TRUNCATE)'` runs again with no reader"
            );
        }
    }
    if !done.copies_sent.is_empty() {
        println!(
            "copies were sent before, and erasure cannot reach them: {}",
            done.copies_sent.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn bad_retention_values_name_their_line() {
        let e = Config::parse("[retention]\nmax_age_days = -1\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2, column 16"), "{e:#}");
        let e = Config::parse("[retention]\nmax_gib = 1e12\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
        let e = Config::parse("[retention]\ninterval_s = 0\n").unwrap_err();
        assert!(format!("{e:#}").contains("retention.interval_s"), "{e:#}");
        // A tenant the rules do not have is a typo.
        let e = Config::parse("[retention.tenants.acme]\nmax_age_days = 30\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("line 1") && format!("{e:#}").contains("no tenant"),
            "{e:#}"
        );
    }

    #[test]
    fn retention_reaches_the_policy() {
        let c = Config::parse("[retention]\nmax_age_days = 7\nmax_gib = 2\n").unwrap();
        let p = c.retention.policy();
        assert_eq!(
            p.default.max_age,
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        assert_eq!(p.total_bytes, Some(2 << 30));
        // The defaults: 90 days, no quota.
        let d = Config::parse("").unwrap().retention.policy();
        assert_eq!(
            d.default.max_age,
            Some(std::time::Duration::from_secs(90 * 86_400))
        );
        assert_eq!(d.total_bytes, None);
        let forever = Config::parse("[retention]\nmax_age_days = 0\n").unwrap();
        assert!(forever.retention.policy().is_unlimited());
    }
}
