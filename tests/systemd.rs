//! The shipped systemd unit: systemd accepts it, and it grants only what capture needs.

use std::process::Command;

use voxtap_tests::{Scratch, root, voxtap};

fn unit() -> String {
    std::fs::read_to_string(root().join("systemd/voxtap.service")).expect("systemd/voxtap.service")
}

fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

#[test]
fn unit_grants_only_the_capture_capabilities_and_is_hardened() {
    let u = unit();
    let want = "CAP_BPF CAP_NET_ADMIN CAP_NET_RAW CAP_PERFMON CAP_IPC_LOCK";
    assert_eq!(values(&u, "AmbientCapabilities"), vec![want]);
    assert_eq!(values(&u, "CapabilityBoundingSet"), vec![want]);
    assert_eq!(values(&u, "User"), vec!["voxtap"]);
    assert_eq!(values(&u, "ProtectSystem"), vec!["strict"]);
    assert_eq!(values(&u, "PrivateTmp"), vec!["yes"]);
    assert_eq!(values(&u, "ReadWritePaths"), vec!["/var/lib/voxtap"]);
    assert_eq!(values(&u, "UMask"), vec!["0027"]);
    let exec = values(&u, "ExecStart").pop().expect("ExecStart");
    assert!(
        exec.contains(" run ") && exec.contains("--out /var/lib/voxtap"),
        "{exec}"
    );
}

#[test]
fn systemd_accepts_the_unit() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("\n*** SKIPPED systemd_accepts_the_unit: systemd-analyze is not installed ***\n");
        return;
    }
    // Point ExecStart at the binary under test so systemd can check it exists.
    let s = Scratch::new("unit");
    let path = s.path().join("voxtap.service");
    std::fs::write(
        &path,
        unit().replace("/usr/local/bin/voxtap", &voxtap().display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only complaints about the documentation path, which is installed with the package.
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("Documentation") && !l.trim().is_empty())
        .collect();
    assert!(problems.is_empty(), "systemd-analyze verify:\n{text}");
}
