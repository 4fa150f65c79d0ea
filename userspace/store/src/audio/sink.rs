//! The file a recording is written to, built for thousands of recordings at once and for a
//! disk that fills up.
//!
//! - **No descriptor per recording.** A [`PooledFile`] keeps its bytes in memory and writes
//!   them with `pwrite` through a descriptor borrowed from a process-wide pool of open files,
//!   least recently used first out. The pool holds at most a quarter of `RLIMIT_NOFILE`
//!   (at most 4,096), so 50,000 concurrent recordings run under a limit of 1,024.
//! - **Valid from its first byte on disk.** Nothing is on disk until the first flush, which
//!   writes to a hidden `.tmp` name and renames it to the `.part` the catalog names: a kill at
//!   any moment never leaves an empty or headless `.part`. A `.tmp` left by a kill is removed by
//!   the next run's recovery.
//! - **A refused write is not lost.** When the disk refuses bytes (full, quota, I/O error),
//!   they stay in memory and are written again at the next flush; when space returns the file
//!   goes on as if nothing happened. What is held is bounded, per file
//!   ([`HELD_PER_FILE`]) and for all files ([`HELD_TOTAL`]); beyond that the write fails and
//!   the store ends that recording with what reached the disk, marked `partial`.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::FILE_MODE;

/// Bytes a file gathers before it writes them out (half a second of 8 kHz stereo WAV): its
/// buffer never grows past this while the disk takes what it is given.
pub const FLUSH_AT: usize = 16 * 1024;
/// Bytes one file keeps in memory while the disk refuses them: two minutes of 8 kHz stereo
/// WAV.
pub const HELD_PER_FILE: usize = 4 << 20;
/// Bytes all files together keep in memory while the disk refuses them.
pub const HELD_TOTAL: usize = 512 << 20;
/// The pool's share of the descriptor limit, and its bounds.
const POOL_SHARE: u64 = 4;
const POOL_MIN: usize = 8;
const POOL_MAX: usize = 4096;

/// Bytes waiting in every file, about to be written or refused.
static HELD: AtomicUsize = AtomicUsize::new(0);
/// Bytes held by files whose last write the disk refused, and how many files.
static REFUSED: AtomicUsize = AtomicUsize::new(0);
static REFUSED_FILES: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// While set, files do not write until their file system has [`RESUME_FREE`] bytes free: the
/// space the store freed for the catalog on a shared, full disk stays the catalog's.
static HOLD_BACK: AtomicBool = AtomicBool::new(false);
static RESUME_FREE: AtomicU64 = AtomicU64::new(0);
static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// What the pool did, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The most descriptors it holds.
    pub capacity: usize,
    /// Descriptors open now.
    pub open: usize,
    /// Opens (a file's first write, or its next after it was closed to make room).
    pub opens: u64,
    /// Descriptors closed to make room.
    pub evictions: u64,
    /// Bytes held in memory by every file now (about to be written, or refused).
    pub held_bytes: usize,
    /// Of those, bytes of files whose last write the disk refused, and how many files.
    pub refused_bytes: usize,
    pub refused_files: usize,
}

struct Pool {
    capacity: usize,
    open: HashMap<u64, (File, u64)>,
    /// (file, use) in order of use; an entry whose use is not the file's latest is stale.
    order: VecDeque<(u64, u64)>,
    uses: u64,
    opens: u64,
    evictions: u64,
}

impl Pool {
    fn new(capacity: usize) -> Pool {
        Pool {
            capacity,
            open: HashMap::new(),
            order: VecDeque::new(),
            uses: 0,
            opens: 0,
            evictions: 0,
        }
    }

    fn evict_one(&mut self) -> bool {
        while let Some((id, at)) = self.order.pop_front() {
            if self.open.get(&id).is_some_and(|(_, last)| *last == at) {
                self.open.remove(&id);
                self.evictions += 1;
                return true;
            }
        }
        false
    }

    fn touch(&mut self, id: u64) {
        self.uses += 1;
        let at = self.uses;
        if let Some(e) = self.open.get_mut(&id) {
            e.1 = at;
        }
        self.order.push_back((id, at));
        // Stale entries are dropped as they reach the front; keep the queue bounded too.
        if self.order.len() > 4 * self.capacity.max(1) + 64 {
            let open = &self.open;
            self.order
                .retain(|(id, at)| open.get(id).is_some_and(|(_, last)| last == at));
        }
    }

    /// Runs `f` on `id`'s descriptor, opening `path` (after making room) if it is closed.
    fn with<T>(
        &mut self,
        id: u64,
        path: &Path,
        f: impl FnOnce(&File) -> io::Result<T>,
    ) -> io::Result<T> {
        if !self.open.contains_key(&id) {
            let file = self.open_with_room(OpenOptions::new().write(true), path)?;
            self.adopt(id, file);
        } else {
            self.touch(id);
        }
        f(&self.open[&id].0)
    }

    /// Opens `path` once the pool has room for it; when something else took the
    /// descriptors (EMFILE), gives back half of its own and tries once more.
    fn open_with_room(&mut self, opts: &OpenOptions, path: &Path) -> io::Result<File> {
        while self.open.len() >= self.capacity && self.evict_one() {}
        match opts.open(path) {
            Err(e) if too_many_open(&e) => {
                let keep = self.open.len() / 2;
                while self.open.len() > keep && self.evict_one() {}
                opts.open(path)
            }
            r => r,
        }
    }

    /// Keeps a descriptor `open_with_room` gave under `id`.
    fn adopt(&mut self, id: u64, file: File) {
        self.opens += 1;
        self.open.insert(id, (file, 0));
        self.touch(id);
    }
}

fn too_many_open(e: &io::Error) -> bool {
    // EMFILE, ENFILE.
    matches!(e.raw_os_error(), Some(24 | 23))
}

/// A quarter of the soft descriptor limit, within [8, 4096].
fn default_capacity() -> usize {
    let soft = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1024);
    ((soft / POOL_SHARE) as usize).clamp(POOL_MIN, POOL_MAX)
}

fn pool<T>(f: impl FnOnce(&mut Pool) -> T) -> T {
    let mut guard = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let pool = guard.get_or_insert_with(|| Pool::new(default_capacity()));
    f(pool)
}

/// Holds every file's writes back until its file system has `free` bytes available again
/// (see [`HOLD_BACK`]); `None` lets them write.
pub fn hold_back(free: Option<u64>) {
    RESUME_FREE.store(free.unwrap_or(0), Ordering::Relaxed);
    HOLD_BACK.store(free.is_some(), Ordering::Relaxed);
}

/// Files whose last write the disk refused, now.
pub fn refused_files() -> usize {
    REFUSED_FILES.load(Ordering::Relaxed)
}

pub fn holding_back() -> bool {
    HOLD_BACK.load(Ordering::Relaxed)
}

/// Bytes an unprivileged writer may still use on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into a zeroed local; `c` is a NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut st) == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
    }
}

/// Sets how many descriptors the pool may hold (closing some now if it holds more).
pub fn set_pool_capacity(capacity: usize) {
    pool(|p| {
        p.capacity = capacity.max(1);
        while p.open.len() > p.capacity && p.evict_one() {}
    });
}

pub fn pool_stats() -> PoolStats {
    let held_bytes = HELD.load(Ordering::Relaxed);
    let refused_bytes = REFUSED.load(Ordering::Relaxed);
    let refused_files = REFUSED_FILES.load(Ordering::Relaxed);
    pool(|p| PoolStats {
        refused_bytes,
        refused_files,
        capacity: p.capacity,
        open: p.open.len(),
        opens: p.opens,
        evictions: p.evictions,
        held_bytes,
    })
}

/// The hidden name a file has until its first bytes are on disk: `x.wav.part` -> `.x.wav.part.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    path.with_file_name(name)
}

/// A recording's file: see the module documentation.
pub struct PooledFile {
    id: u64,
    path: PathBuf,
    on_disk: bool,
    /// Where the next write goes, and the file's length with what is held.
    pos: u64,
    len: u64,
    /// Bytes not yet on disk, as (offset, bytes), written in order.
    held: Vec<(u64, Vec<u8>)>,
    held_bytes: usize,
    /// Held bytes at which the next attempt is made after a refused one.
    retry_at: usize,
    /// Why the disk refused the last attempt, while it still does.
    refused: Option<io::Error>,
    /// What this file adds to [`REFUSED`] and [`REFUSED_FILES`].
    counted_refused: usize,
    counted_file: bool,
}

impl PooledFile {
    /// A new file at `path` (nothing is on disk until the first flush). Fails if `path` or
    /// its hidden temporary name exists.
    pub fn create(path: &Path) -> io::Result<PooledFile> {
        for p in [path.to_path_buf(), tmp_path(path)] {
            if fs::symlink_metadata(&p).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", p.display()),
                ));
            }
        }
        Ok(PooledFile {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path: path.to_path_buf(),
            on_disk: false,
            pos: 0,
            len: 0,
            held: Vec::new(),
            held_bytes: 0,
            retry_at: FLUSH_AT,
            refused: None,
            counted_refused: 0,
            counted_file: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the disk refuses this file's bytes, while it does.
    #[cfg(test)]
    pub fn refused(&self) -> Option<&io::Error> {
        self.refused.as_ref()
    }

    /// Bytes in memory, not yet on disk.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    fn hold(&mut self, off: u64, buf: &[u8]) {
        let end = off + buf.len() as u64;
        let mut added = buf.len();
        match self.held.last_mut() {
            // The common case: appending where the last write ended.
            Some((at, bytes)) if *at + bytes.len() as u64 == off => bytes.extend_from_slice(buf),
            _ => {
                // A rewrite inside bytes still held (a header before the first flush) changes
                // them, unless a later held write overlaps it: segments are written in order.
                let mut patched = false;
                for (at, bytes) in self.held.iter_mut().rev() {
                    let seg_end = *at + bytes.len() as u64;
                    if *at <= off && end <= seg_end {
                        let s = (off - *at) as usize;
                        bytes[s..s + buf.len()].copy_from_slice(buf);
                        patched = true;
                        break;
                    }
                    if off < seg_end && *at < end {
                        break;
                    }
                }
                if patched {
                    added = 0;
                } else {
                    self.held.push((off, buf.to_vec()));
                }
            }
        }
        self.held_bytes += added;
        HELD.fetch_add(added, Ordering::Relaxed);
        self.len = self.len.max(end);
        self.count_refused();
    }

    /// Keeps [`REFUSED`] in step with this file.
    fn count_refused(&mut self) {
        let now = if self.refused.is_some() {
            self.held_bytes
        } else {
            0
        };
        if now > self.counted_refused {
            REFUSED.fetch_add(now - self.counted_refused, Ordering::Relaxed);
        } else {
            REFUSED.fetch_sub(self.counted_refused - now, Ordering::Relaxed);
        }
        self.counted_refused = now;
        let refused = self.refused.is_some();
        if refused != self.counted_file {
            if refused {
                REFUSED_FILES.fetch_add(1, Ordering::Relaxed);
            } else {
                REFUSED_FILES.fetch_sub(1, Ordering::Relaxed);
            }
            self.counted_file = refused;
        }
    }

    fn over_budget(&self) -> Option<io::Error> {
        let why = self.refused.as_ref()?;
        let total = REFUSED.load(Ordering::Relaxed);
        if self.held_bytes >= HELD_PER_FILE || total >= HELD_TOTAL {
            return Some(io::Error::new(
                why.kind(),
                format!(
                    "{why}; gave up holding {} KiB for this file ({} KiB for all) in memory",
                    self.held_bytes / 1024,
                    total / 1024
                ),
            ));
        }
        None
    }

    /// Writes `buf` at `off` (a header rewrite) without moving the cursor.
    pub fn write_all_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        if let Some(e) = self.over_budget() {
            return Err(e);
        }
        self.hold(off, buf);
        Ok(())
    }

    /// Tries to put every held byte on disk. A refusal keeps them and is remembered in
    /// [`refused`](Self::refused); it is not an error here.
    fn try_flush(&mut self) {
        if self.held.is_empty() {
            return;
        }
        if HOLD_BACK.load(Ordering::Relaxed) {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            if free_bytes(dir).is_some_and(|f| f >= RESUME_FREE.load(Ordering::Relaxed)) {
                HOLD_BACK.store(false, Ordering::Relaxed);
            } else {
                self.refused = Some(io::Error::from_raw_os_error(28));
                self.retry_at = self.held_bytes + FLUSH_AT;
                self.count_refused();
                return;
            }
        }
        let result = if self.on_disk {
            let (id, path, held) = (self.id, &self.path, &self.held);
            pool(|p| p.with(id, path, |f| write_segments(f, held)))
        } else {
            self.first_write()
        };
        match result {
            Ok(()) => {
                HELD.fetch_sub(self.held_bytes, Ordering::Relaxed);
                self.held_bytes = 0;
                // Keep one buffer for what comes next (a small one after a long refusal).
                let mut first = self
                    .held
                    .drain(..)
                    .next()
                    .map(|(_, b)| b)
                    .unwrap_or_default();
                first.clear();
                if first.capacity() > 2 * FLUSH_AT {
                    first = Vec::new();
                }
                first.reserve_exact(FLUSH_AT);
                self.held.push((self.len, first));
                self.refused = None;
                self.retry_at = FLUSH_AT;
            }
            Err(e) => {
                self.refused = Some(e);
                self.retry_at = self.held_bytes + FLUSH_AT;
            }
        }
        self.count_refused();
    }

    /// The first bytes go to the hidden name, then take the real one.
    fn first_write(&mut self) -> io::Result<()> {
        let tmp = tmp_path(&self.path);
        let file = pool(|p| {
            p.open_with_room(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(FILE_MODE),
                &tmp,
            )
        })?;
        let written = write_segments(&file, &self.held)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
            })
            .and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.on_disk = true;
        pool(|p| p.adopt(self.id, file));
        Ok(())
    }

    /// Every held byte on disk, or the reason it is not.
    pub fn flush_all(&mut self) -> io::Result<()> {
        self.try_flush();
        match &self.refused {
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Ok(()),
        }
    }

    /// Flushes and syncs the data to disk.
    pub fn sync_data(&mut self) -> io::Result<()> {
        self.flush_all()?;
        let (id, path) = (self.id, &self.path);
        pool(|p| p.with(id, path, File::sync_data))
    }

    /// Flushes, syncs and renames the file to `to`; returns its length.
    pub fn finish_as(&mut self, to: &Path) -> io::Result<u64> {
        self.sync_data()?;
        fs::rename(&self.path, to)?;
        self.path = to.to_path_buf();
        Ok(self.len)
    }
}

fn write_segments(file: &File, held: &[(u64, Vec<u8>)]) -> io::Result<()> {
    for (at, bytes) in held {
        if !bytes.is_empty() {
            file.write_all_at(bytes, *at)?;
        }
    }
    Ok(())
}

impl Write for PooledFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(e) = self.over_budget() {
            return Err(e);
        }
        // Out before the buffer would pass FLUSH_AT, so it never reallocates.
        if self.held_bytes > 0 && self.held_bytes + buf.len() > self.retry_at {
            self.try_flush();
        }
        self.hold(self.pos, buf);
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    /// Tries to write what is held; a refusal keeps it for later (see [`PooledFile::refused`]).
    fn flush(&mut self) -> io::Result<()> {
        self.try_flush();
        Ok(())
    }
}

impl Seek for PooledFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = p.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before 0"))?;
        Ok(self.pos)
    }
}

impl Drop for PooledFile {
    fn drop(&mut self) {
        HELD.fetch_sub(self.held_bytes, Ordering::Relaxed);
        REFUSED.fetch_sub(self.counted_refused, Ordering::Relaxed);
        if self.counted_file {
            REFUSED_FILES.fetch_sub(1, Ordering::Relaxed);
        }
        let id = self.id;
        pool(|p| {
            p.open.remove(&id);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_on_disk_before_the_first_flush_and_then_all_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav.part");
        let mut f = PooledFile::create(&path).unwrap();
        f.write_all(b"RIFF....").unwrap();
        f.write_all_at(b"1234", 4).unwrap();
        assert!(!path.exists() && !tmp_path(&path).exists());
        f.flush().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"RIFF1234");
        f.write_all(b"data").unwrap();
        f.write_all_at(b"abcd", 4).unwrap();
        f.flush_all().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"RIFFabcddata");
        let done = dir.path().join("a.wav");
        assert_eq!(f.finish_as(&done).unwrap(), 12);
        assert_eq!(fs::read(&done).unwrap(), b"RIFFabcddata");
        assert!(!path.exists());
    }

    #[test]
    fn an_existing_name_is_never_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.part");
        fs::write(tmp_path(&path), b"").unwrap();
        assert_eq!(
            PooledFile::create(&path).err().unwrap().kind(),
            io::ErrorKind::AlreadyExists
        );
    }

    #[test]
    fn a_refused_write_is_kept_and_written_when_the_disk_takes_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("gone");
        fs::create_dir(&sub).unwrap();
        let path = sub.join("c.part");
        let mut f = PooledFile::create(&path).unwrap();
        f.write_all(&[7u8; 100]).unwrap();
        // The directory disappears: the first write is refused, and nothing is lost.
        fs::remove_dir(&sub).unwrap();
        f.flush().unwrap();
        assert!(f.refused().is_some());
        assert_eq!(f.held_bytes(), 100);
        f.write_all(&[8u8; 50]).unwrap();
        fs::create_dir(&sub).unwrap();
        f.flush_all().unwrap();
        assert!(f.refused().is_none());
        let data = fs::read(&path).unwrap();
        assert_eq!(data.len(), 150);
        assert!(data[..100].iter().all(|&b| b == 7) && data[100..].iter().all(|&b| b == 8));
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn many_files_share_a_few_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<PooledFile> = (0..200)
            .map(|i| PooledFile::create(&dir.path().join(format!("{i}.part"))).unwrap())
            .collect();
        let before = pool_stats();
        for round in 0..3u8 {
            for f in &mut files {
                f.write_all(&[round; 10]).unwrap();
                f.flush_all().unwrap();
            }
        }
        let after = pool_stats();
        assert!(after.open <= after.capacity, "{after:?}");
        // Other tests share the pool; the figures only grow.
        assert!(after.opens >= before.opens + 200, "{before:?} {after:?}");
        for (i, f) in files.iter_mut().enumerate() {
            f.sync_data().unwrap();
            assert_eq!(
                fs::read(dir.path().join(format!("{i}.part"))).unwrap(),
                [[0u8; 10], [1; 10], [2; 10]].concat()
            );
        }
    }
}
