//! Builds the XDP program (`ebpf/voxtap-ebpf`) with aya-build and leaves it in `OUT_DIR` for
//! `include_bytes_aligned!` in `src/xdp.rs`.
//!
//! The host build never fails for want of the BPF toolchain: without `bpf-linker`, the nightly
//! toolchain or its `rust-src`, or with `AYA_BUILD_SKIP=1`, it warns and sets `voxtap_no_ebpf`,
//! and `XdpProgram::attach` then says at run time how to get the program.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(voxtap_no_ebpf)");
    println!("cargo::rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo::rerun-if-env-changed=PATH");

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let ebpf_dir = manifest_dir.join("../../ebpf/voxtap-ebpf");
    let common_dir = manifest_dir.join("../../ebpf/voxtap-common");
    // aya-build watches the eBPF crate's directory; the shared types are ours to watch.
    println!(
        "cargo::rerun-if-changed={}",
        common_dir.join("src").display()
    );
    println!(
        "cargo::rerun-if-changed={}",
        common_dir.join("Cargo.toml").display()
    );

    if let Some(reason) = why_not_buildable() {
        println!("cargo::warning=building voxtap without its XDP program: {reason}");
        println!(
            "cargo::warning=`--capture xdp` will refuse to start; run `cargo xtask deps` and rebuild to get it"
        );
        println!("cargo::rustc-cfg=voxtap_no_ebpf");
        return;
    }

    // aya-build runs `cargo build --package voxtap-ebpf` in the current directory; the eBPF
    // crate is its own workspace, so run it from there (this only changes the build script's
    // own working directory).
    let ebpf_dir = ebpf_dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("cannot find {}: {e}", ebpf_dir.display()));
    env::set_current_dir(&ebpf_dir).expect("cd into ebpf/voxtap-ebpf");
    let root_dir = ebpf_dir.to_str().expect("UTF-8 path");
    let package = aya_build::Package {
        name: "voxtap-ebpf",
        root_dir,
        ..Default::default()
    };
    // A compile error in the eBPF crate is a real error: fail the build and show it.
    if let Err(e) = aya_build::build_ebpf([package], aya_build::Toolchain::default()) {
        panic!("building the XDP program (ebpf/voxtap-ebpf) failed: {e:#}");
    }
}

/// Why the eBPF crate cannot be built here, if it cannot.
fn why_not_buildable() -> Option<String> {
    if let Some(skip) = env::var_os("AYA_BUILD_SKIP")
        && (skip == "1" || skip.eq_ignore_ascii_case("true"))
    {
        return Some("AYA_BUILD_SKIP is set".into());
    }
    match find_on_path("bpf-linker") {
        // A newly installed or replaced linker rebuilds the program.
        Some(linker) => println!("cargo::rerun-if-changed={}", linker.display()),
        None => {
            // A path that does not exist makes cargo rerun this script on every build, so the
            // program appears as soon as `cargo xtask deps` has installed the linker.
            let cargo_home = env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
            if let Some(home) = cargo_home {
                println!(
                    "cargo::rerun-if-changed={}",
                    home.join("bin/bpf-linker").display()
                );
            }
            return Some("bpf-linker is not on PATH".into());
        }
    }
    if find_on_path("rustup").is_none() {
        return Some("rustup is not on PATH (the eBPF crate needs the nightly toolchain)".into());
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output();
    let sysroot = match sysroot {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        _ => return Some("the nightly toolchain is not installed".into()),
    };
    let core_src = sysroot.join("lib/rustlib/src/rust/library/core/Cargo.toml");
    if !core_src.exists() {
        println!("cargo::rerun-if-changed={}", core_src.display());
        return Some("the nightly toolchain has no rust-src component".into());
    }
    None
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
