//! Project tasks: `cargo xtask demo`, `cargo xtask test`, `cargo xtask fuzz-smoke`.
//!
//! Each task installs what it needs on a fresh machine (Debian packages, cargo tools) before it
//! runs, so the README's two commands are the whole set-up.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  demo [CAPTURE]
               replay CAPTURE, or a generated capture of sample calls, with voxtap and show
               where the recordings and the catalog are
  test         install test dependencies (tshark, sox), run every test, a short run of each
               benchmark, then a short fuzz smoke run
  fuzz-smoke   replay the fuzz corpus through each cargo-fuzz target (nightly) and fuzz briefly
  deps         only install what the build and the tests need: Debian packages, and for the
               XDP program the nightly toolchain with rust-src and bpf-linker
";

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = project_root();
    let invoked_from = std::env::current_dir()?;
    std::env::set_current_dir(&root)?;
    match task.as_str() {
        "demo" => demo(&root, std::env::args().nth(2).map(|c| invoked_from.join(c))),
        "test" => test(&root),
        "fuzz-smoke" => fuzz_smoke(&root),
        "deps" => install_debian_packages().and_then(|()| install_ebpf_toolchain()),
        "" | "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}

/// What building voxtap needs: libpcap for `--capture afpacket`; the codec libraries the
/// decoders bind (userspace/codec/README.md says why each); the encoders of the compressed
/// recording formats (FLAC, Opus, MP3).
const BUILD_PACKAGES: &[(&str, &str)] = &[
    ("/usr/include/pcap/pcap.h", "libpcap-dev"),
    ("pkg-config", "pkg-config"),
    ("/usr/include/opus/opus.h", "libopus-dev"),
    ("/usr/include/bcg729/decoder.h", "libbcg729-dev"),
    ("/usr/include/gsm.h", "libgsm1-dev"),
    ("/usr/include/speex/speex.h", "libspeex-dev"),
    (
        "/usr/include/opencore-amrnb/interf_dec.h",
        "libopencore-amrnb-dev",
    ),
    (
        "/usr/include/opencore-amrwb/dec_if.h",
        "libopencore-amrwb-dev",
    ),
    (
        "/usr/include/x86_64-linux-gnu/libavcodec/avcodec.h",
        "libavcodec-dev",
    ),
    ("/usr/include/FLAC/stream_encoder.h", "libflac-dev"),
    ("/usr/include/lame/lame.h", "libmp3lame-dev"),
];

/// What the tests add: tshark is the oracle for SIP/RTP facts, sox checks recordings,
/// iproute2's `ip` builds the netns + veth fixture of the live-capture and XDP tests, ffmpeg
/// decodes recordings and is an independent codec oracle, spandsp and vo-amrwbenc are encoders
/// of generated codec traffic, libsrtp (through Python) is the SRTP oracle, tcpreplay
/// replays captures fast onto veth, tmux gives the dashboard a terminal to drive, and curl and
/// promtool (in Debian's prometheus package) scrape and check the metrics; nginx (PUT),
/// aiosmtpd (SMTP with STARTTLS) and openssl (its certificate) are the dispatch tests' servers.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("tshark", "tshark"),
    ("sox", "sox"),
    ("ip", "iproute2"),
    ("ffmpeg", "ffmpeg"),
    ("/usr/include/spandsp/g722.h", "libspandsp-dev"),
    ("/usr/include/vo-amrwbenc/enc_if.h", "libvo-amrwbenc-dev"),
    (
        "/usr/lib/python3/dist-packages/pylibsrtp",
        "python3-pylibsrtp",
    ),
    ("tcpreplay", "tcpreplay"),
    ("tmux", "tmux"),
    ("curl", "curl"),
    ("promtool", "prometheus"),
    ("/usr/sbin/nginx", "nginx"),
    (
        "/usr/lib/python3/dist-packages/aiosmtpd",
        "python3-aiosmtpd",
    ),
    ("openssl", "openssl"),
    // tests/systemd.rs: the README's install in a namespace, as the service user.
    ("setpriv", "util-linux"),
    ("useradd", "passwd"),
    ("systemd-analyze", "systemd"),
    // tests/cli.rs: the man page renders.
    ("groff", "groff-base"),
    ("man", "man-db"),
];

fn install_debian_packages() -> Result<()> {
    install_packages(&[BUILD_PACKAGES, TEST_PACKAGES].concat())
}

/// Installs the Debian packages whose program (or, for a path, file) is missing.
fn install_packages(wanted: &[(&str, &str)]) -> Result<()> {
    let present = |what: &str| {
        if what.starts_with('/') {
            Path::new(what).exists()
        } else {
            have(what)
        }
    };
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(what, _)| !present(what))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !have("apt-get") {
        eprintln!(
            "xtask: WARNING: cannot install {missing:?}: no apt-get here; tests that need them will say SKIPPED"
        );
        return Ok(());
    }
    let sudo = if unsafe_is_root() {
        vec![]
    } else {
        vec!["sudo"]
    };
    let apt = |args: &[&str]| {
        let mut c = Command::new(if sudo.is_empty() { "apt-get" } else { "sudo" });
        if !sudo.is_empty() {
            c.arg("apt-get");
        }
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(&mut apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&missing);
    run(&mut install)
}

/// bpf-linker 0.10.4; newer releases do not link with the aya-ebpf 0.2.1 / aya-build 0.2.0 pair.
const BPF_LINKER: &str = "bpf-linker@0.10.4";

/// What `userspace/capture/build.rs` needs to build the XDP program (`ebpf/voxtap-ebpf`): the
/// nightly toolchain with `rust-src` (for `-Z build-std=core`) and `bpf-linker`. Without them
/// the build still succeeds, but voxtap has no `--capture xdp`; so install them first.
fn install_ebpf_toolchain() -> Result<()> {
    if !have("rustup") {
        eprintln!(
            "xtask: WARNING: no rustup here: cannot install the nightly toolchain for the XDP program; voxtap will be built without it"
        );
        return Ok(());
    }
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    } else {
        let has_rust_src = Command::new("rustup")
            .args(["component", "list", "--toolchain", "nightly", "--installed"])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.starts_with("rust-src"))
            });
        if !has_rust_src {
            run(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                "nightly",
            ]))?;
        }
    }
    if !have("bpf-linker") {
        run(Command::new("cargo").args(["install", BPF_LINKER, "--locked"]))?;
    }
    Ok(())
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn demo(root: &Path, capture: Option<PathBuf>) -> Result<()> {
    install_packages(BUILD_PACKAGES)?;
    let dir = root.join("target/demo");
    let out = dir.join("out");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("cannot clear {}", out.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    install_ebpf_toolchain()?;
    // Two builds: together, cargo would unify features and link the generator's test
    // encoders (spandsp, vo-amrwbenc) into the recorder.
    for package in ["voxtap", "voxtap-gen"] {
        run(Command::new("cargo").args(["build", "--release", "--quiet", "-p", package]))?;
    }
    let capture = match capture {
        Some(c) => c,
        None => {
            let generated = dir.join("demo.pcap");
            run(Command::new(root.join("target/release/voxtap-gen"))
                .args(["--scenario", "mix", "--out"])
                .arg(&generated)
                .arg("--truth")
                .arg(dir.join("demo.truth.json")))?;
            generated
        }
    };
    run(Command::new(root.join("target/release/voxtap"))
        .arg("replay")
        .arg("--out")
        .arg(&out)
        .arg(&capture))?;
    println!();
    println!("The demo capture is {}", capture.display());
    println!(
        "Recordings (stereo WAV, caller left, callee right) are under {}",
        out.join("recordings").display()
    );
    println!(
        "The catalog is {} — for example:",
        out.join("catalog.sqlite").display()
    );
    println!(
        "  sqlite3 -readonly {} \"SELECT c.sip_call_id, c.caller_user, c.callee_user, r.path, r.duration_s FROM calls c JOIN recordings r ON r.call_id = c.id\"",
        out.join("catalog.sqlite").display()
    );
    println!(
        "One call, told in full (parties, decision, recordings, DTMF, streams):\n  {} explain --out {} 1",
        root.join("target/release/voxtap").display(),
        out.display()
    );
    Ok(())
}

fn test(root: &Path) -> Result<()> {
    install_debian_packages()?;
    install_ebpf_toolchain()?;
    // Everything is installed above: a codec or oracle missing is a failure, not a skip.
    run(Command::new("cargo")
        .args(["test", "--workspace", "--release"])
        .env("VOXTAP_REQUIRE_CODECS", "1"))?;
    bench_smoke(root)?;
    fuzz_smoke(root)
}

/// A short run of every benchmark under perf/, so a change that breaks one shows in CI. They
/// print figures but assert nothing about speed: CI times nothing.
fn bench_smoke(root: &Path) -> Result<()> {
    // `cargo test` builds only the binaries tests run.
    run(Command::new("cargo").current_dir(root).args([
        "build",
        "--release",
        "-p",
        "voxtap",
        "-p",
        "voxtap-gen",
        "-p",
        "voxtap-perf-engine",
        "-p",
        "voxtap-perf-codec",
        "-p",
        "voxtap-perf-live",
        "-p",
        "voxtap-perf-capture",
    ]))?;
    let bin = root.join("target/release");
    run(Command::new(bin.join("engine-bench")).args([
        "--calls",
        "20",
        "--talk-secs",
        "1",
        "--stage",
        "all",
    ]))?;
    run(Command::new(bin.join("codec-bench")).args(["--secs", "1", "--reps", "1"]))?;
    run(Command::new(bin.join("capture-bench")).args([
        "--calls",
        "20",
        "--talk-secs",
        "1",
        "--reps",
        "1",
        "--damage-frames",
        "2000",
    ]))?;
    run(Command::new("bash")
        .arg(root.join("perf/replay/compare.sh"))
        .args(["20", "1", "1", "1"]))?;
    // /proc/self belongs to the process's effective user.
    let root_user = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root_user {
        run(Command::new(bin.join("live-bench")).args(["--secs", "1", "--rates", "10000"]))?;
    } else {
        eprintln!("xtask: SKIPPED live-bench smoke run: it needs root (veth pairs, XDP)");
    }
    eprintln!("xtask: benchmark smoke runs passed");
    Ok(())
}

const FUZZ_TARGETS: [&str; 7] = [
    "frame",
    "sip",
    "sdp",
    "rtp",
    "engine",
    "engine_timed",
    "engine_workers",
];

fn fuzz_smoke(root: &Path) -> Result<()> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        eprintln!(
            "xtask: SKIPPED fuzz smoke run: no nightly toolchain (the corpus is still replayed by `cargo test`)"
        );
        return Ok(());
    }
    if !Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    for target in FUZZ_TARGETS {
        let corpus = root.join("fuzz/corpus").join(target);
        // A scratch copy: libFuzzer adds what it finds to the first corpus directory.
        let work = root.join("fuzz/target/smoke-corpus").join(target);
        std::fs::create_dir_all(&work)?;
        run(Command::new("cargo")
            .current_dir(root.join("fuzz"))
            .args(["+nightly", "fuzz", "run", target])
            .arg(&work)
            .arg(&corpus)
            .args(["--", "-max_total_time=15", "-rss_limit_mb=2048"]))?;
    }
    eprintln!("xtask: fuzz smoke run passed for {FUZZ_TARGETS:?}");
    Ok(())
}
