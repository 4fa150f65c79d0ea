//! Shared helpers for the end-to-end tests: build and run the `voxtap` binary, read its
//! catalog and recordings, and measure tones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The `voxtap` binary of the same profile as this test, built once per test process.
pub fn voxtap() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> → target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root())
            .args(["build", "--quiet", "-p", "voxtap", "--bin", "voxtap"]);
        if release {
            cmd.arg("--release");
        }
        if let Some(target_dir) = profile_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target_dir);
        }
        let status = cmd.status().expect("run cargo build for the voxtap binary");
        assert!(status.success(), "building voxtap failed");
        profile_dir.join("voxtap")
    })
}

/// A fresh scratch directory under target/, removed when dropped unless VOXTAP_KEEP is set.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = root()
            .join("target/test-scratch")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("VOXTAP_KEEP").is_none() && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `voxtap replay --out OUT CAPTURES...` and returns its output.
pub fn replay(out: &Path, captures: &[&Path]) -> Output {
    let mut cmd = Command::new(voxtap());
    cmd.arg("replay").arg("--out").arg(out);
    for c in captures {
        cmd.arg(c);
    }
    cmd.output().expect("run voxtap replay")
}

/// Like [`replay`], but panics with voxtap's output unless it exits 0.
pub fn replay_ok(out: &Path, captures: &[&Path]) -> String {
    let o = replay(out, captures);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "voxtap replay failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

pub fn catalog(out: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        out.join("catalog.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open catalog")
}

/// A stereo recording split into its channels.
pub struct Stereo {
    pub rate: u32,
    pub left: Vec<f64>,
    pub right: Vec<f64>,
}

impl Stereo {
    pub fn secs(&self) -> f64 {
        self.left.len() as f64 / self.rate as f64
    }
}

pub fn read_wav(path: &Path) -> Stereo {
    let mut r =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let spec = r.spec();
    assert_eq!(spec.channels, 2, "{} must be stereo", path.display());
    assert_eq!(spec.bits_per_sample, 16);
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.expect("sample")).collect();
    let left = samples
        .iter()
        .step_by(2)
        .map(|&s| s as f64 / 32768.0)
        .collect();
    let right = samples
        .iter()
        .skip(1)
        .step_by(2)
        .map(|&s| s as f64 / 32768.0)
        .collect();
    Stereo {
        rate: spec.sample_rate,
        left,
        right,
    }
}

/// Power of `freq` in `x` (Goertzel), normalised so a full-scale sine gives about 0.25.
pub fn tone_power(x: &[f64], rate: u32, freq: f64) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    p / (x.len() as f64 * x.len() as f64)
}

/// Mean square of `x`.
pub fn energy(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64
}

/// Where the shared real captures live, or `None` after printing a loud SKIPPED line.
pub fn shared_captures(test: &str) -> Option<PathBuf> {
    let dir = root().join("../shared/captures");
    if dir.join("README.md").exists() {
        Some(dir)
    } else {
        eprintln!(
            "\n*** SKIPPED {test}: ../shared/captures is absent (it is not shipped with the project) ***\n"
        );
        None
    }
}

/// Whether tshark is installed, printing a loud SKIPPED line if not.
pub fn have_tshark(test: &str) -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("\n*** SKIPPED {test}: tshark is not installed (run `cargo xtask deps`) ***\n");
    }
    ok
}
