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

#[test]
fn unit_reloads_with_sighup() {
    assert_eq!(
        values(&unit(), "ExecReload"),
        vec!["/bin/kill -HUP $MAINPID"],
        "the README documents `systemctl reload voxtap` (SIGHUP re-reads the rules)"
    );
}

/// The README's install steps, the lines of the `sh` block between its install markers.
fn readme_install_steps() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let begin = readme
        .find("<!-- install:begin -->")
        .expect("README.md has <!-- install:begin -->");
    let end = readme
        .find("<!-- install:end -->")
        .expect("README.md has <!-- install:end -->");
    let block = &readme[begin..end];
    let body = block
        .split_once("```sh\n")
        .and_then(|(_, b)| b.split_once("```"))
        .map(|(b, _)| b)
        .expect("a ```sh block between the install markers");
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `CAP_BPF CAP_NET_ADMIN` as setpriv spells them: `+bpf,+net_admin`.
fn setpriv_caps(caps: &str) -> String {
    caps.split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

fn one(unit: &str, key: &str) -> String {
    let mut v = values(unit, key);
    assert_eq!(v.len(), 1, "the unit has one {key}=: {v:?}");
    v.pop().unwrap()
}

/// A new user's install, as the README says it, in a throwaway root: a mount namespace with
/// overlays over /etc, /usr/local and /var/lib (so the real ones are never touched), its own
/// network namespace with the README's mirror port (`eth1`, a veth here) and its own PIDs.
/// The steps run verbatim (without `sudo`, as root of the namespace; the build is the binary
/// under test; systemctl and journalctl need a running systemd, so the unit's service is
/// started as systemd would start it: User=, Group=, the ambient and bounding capabilities,
/// NoNewPrivileges=, UMask=, the limits, StateDirectory= and the environment files). voxtap must
/// read its config, open its out dir, capture, reload on SIGHUP and stop cleanly on SIGTERM.
/// Then the install as it was (/etc/voxtap 0750 root:root) must fail to read the config, which
/// is what a new user hit. The completion script and the man pages must be where the steps
/// put them.
#[test]
fn the_readme_install_lets_the_service_user_start() {
    let test = "the_readme_install_lets_the_service_user_start";
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "\n*** SKIPPED {test}: needs root (a mount and network namespace for a throwaway root) ***\n"
        );
        return;
    }
    for tool in ["unshare", "setpriv", "ip", "useradd"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            eprintln!(
                "\n*** SKIPPED {test}: {tool} is not installed (util-linux, iproute2, passwd) ***\n"
            );
            return;
        }
    }
    let u = unit();
    let user = one(&u, "User");
    let group = one(&u, "Group");
    let caps = setpriv_caps(&one(&u, "AmbientCapabilities"));
    let bounding = setpriv_caps(&one(&u, "CapabilityBoundingSet"));
    let umask = one(&u, "UMask");
    let state = format!("/var/lib/{}", one(&u, "StateDirectory"));
    let state_mode = one(&u, "StateDirectoryMode");
    let exec = one(&u, "ExecStart");
    assert_eq!(one(&u, "NoNewPrivileges"), "yes");
    assert_eq!(one(&u, "LimitMEMLOCK"), "infinity");
    let nofile = one(&u, "LimitNOFILE");
    let environment = one(&u, "Environment");
    let env_file = one(&u, "EnvironmentFile");
    let env_file = env_file.trim_start_matches('-');

    let steps = readme_install_steps();
    let bin = voxtap().display().to_string();
    let mut script_steps = Vec::new();
    let mut skipped = Vec::new();
    for step in &steps {
        if step.starts_with("cargo build") {
            skipped.push(step.clone());
            continue;
        }
        if step.contains("systemctl") || step.starts_with("journalctl") {
            skipped.push(step.clone());
            continue;
        }
        let step = step
            .replace("sudo ", "")
            .replace("target/release/voxtap", &bin);
        script_steps.push(format!("echo '+ {}'\n{step}", step.replace('\'', "")));
    }
    assert!(
        skipped.iter().any(|s| s.contains("enable --now voxtap")),
        "the README starts the service: {steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains("/etc/systemd/system/voxtap.service")),
        "the README installs the unit: {steps:?}"
    );

    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    let etc_before = std::path::Path::new("/etc/voxtap").exists();
    let s = Scratch::new("install");
    let t = s.path().display().to_string();
    // Run as a background job, `start &` is a subshell of its own that execs voxtap, so `$!`
    // is voxtap's PID (systemd's $MAINPID) and the signals go to it.
    let start = format!(
        r#"
  set -a; {environment}; [ -r {env_file} ] && . {env_file}; set +a
  umask {umask}
  # LimitMEMLOCK=, LimitNOFILE=, as far as this machine's hard limits let root raise them.
  ulimit -l unlimited 2>/dev/null || echo "NOTE: LimitMEMLOCK=infinity: the hard limit here is $(ulimit -H -l)" >&2
  ulimit -n {nofile} 2>/dev/null || echo "NOTE: LimitNOFILE={nofile}: the hard limit here is $(ulimit -H -n)" >&2
  cmd="{exec}"
  [ -n "$EXTRA" ] && cmd="$cmd $EXTRA"
  echo "+ as {user}: $cmd"
  exec setpriv --reuid={user} --regid={group} --init-groups --inh-caps={caps} --ambient-caps={caps} --bounding-set=-all,{bounding} --no-new-privs -- $cmd
"#
    );
    let script = format!(
        r#"set -euo pipefail
T={t}
mkdir -p "$T/ovl"
mount -t tmpfs tmpfs "$T/ovl"
for d in etc usr/local var/lib; do
  mkdir -p "$T/ovl/upper/$d" "$T/ovl/work/$d"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/ovl/upper/$d,workdir=$T/ovl/work/$d" "/$d"
done
ip link set lo up
cd {root}
# The README's steps.
{steps}
# What systemd does before ExecStart: StateDirectory=, StateDirectoryMode=.
install -d -m {state_mode} -o {user} -g {group} {state}
# The mirror port the README names, here a veth in this network namespace.
. {env_file}
ip link add "$VOXTAP_IFACE" type veth peer name vt-peer
ip link set "$VOXTAP_IFACE" up; ip link set vt-peer up
stat -c 'config %a %U:%G %n' /etc/voxtap /etc/voxtap/voxtap.toml
test -r /usr/local/share/bash-completion/completions/voxtap
test -r /usr/local/share/man/man1/voxtap.1 && test -r /usr/local/share/man/man1/voxtap-run.1
bash -c '. /usr/local/share/bash-completion/completions/voxtap && complete -p voxtap'

start() {{ {start} }}
EXTRA=""
start 2>"$T/run1.err" & pid=$!
ready=""
for i in $(seq 1 100); do
  if grep -q 'ready (capabilities dropped)' "$T/run1.err"; then ready=1; break; fi
  if ! kill -0 $pid 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$ready" ] && grep -q 'built without its XDP program' "$T/run1.err"; then
  wait $pid || true
  echo "NOTE: this voxtap has no XDP program (bpf-linker missing at build): ExecStart with --capture afpacket"
  EXTRA="--capture afpacket"
  start 2>"$T/run1.err" & pid=$!
  for i in $(seq 1 100); do
    if grep -q 'ready (capabilities dropped)' "$T/run1.err"; then ready=1; break; fi
    if ! kill -0 $pid 2>/dev/null; then break; fi
    sleep 0.1
  done
fi
if [ -z "$ready" ]; then echo "NOT READY"; cat "$T/run1.err"; exit 3; fi
echo READY
kill -HUP $pid
for i in $(seq 1 50); do grep -q 'SIGHUP: reloaded' "$T/run1.err" && break; sleep 0.1; done
kill -TERM $pid
set +e; wait $pid; echo "EXIT $?"; set -e
cat "$T/run1.err"
stat -c 'state %a %U:%G %n' {state} {state}/catalog.sqlite {state}/recordings
# The install as it was: /etc/voxtap 0750 root:root.
chgrp root /etc/voxtap
start 2>"$T/run2.err" & pid=$!
set +e; wait $pid; echo "OLD INSTALL EXIT $?"; set -e
cat "$T/run2.err"
"#,
        root = root().display(),
        steps = script_steps.join("\n"),
    );
    let path = s.path().join("install.sh");
    std::fs::write(&path, &script).unwrap();
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            "bash",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "install.sh failed:\n{text}");
    eprintln!("{text}");
    for needle in [
        "config 750 root:voxtap /etc/voxtap\n",
        "config 640 root:voxtap /etc/voxtap/voxtap.toml\n",
        "-F _voxtap voxtap\n",
        "READY",
        "voxtap run: SIGHUP: reloaded the recording rules from /etc/voxtap/voxtap.toml",
        "voxtap run: stopping",
        "EXIT 0\n",
        "state 750 voxtap:voxtap /var/lib/voxtap\n",
        "state 640 voxtap:voxtap /var/lib/voxtap/catalog.sqlite\n",
        "state 750 voxtap:voxtap /var/lib/voxtap/recordings\n",
        "OLD INSTALL EXIT 1\n",
        "cannot read config /etc/voxtap/voxtap.toml: Permission denied",
    ] {
        assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
    }
    let (first, old_install) = text.split_once("OLD INSTALL EXIT").unwrap();
    assert!(!first.contains("voxtap: error"), "{first}");
    assert!(old_install.contains("voxtap: error"), "{old_install}");
    // Nothing of it reached the real system.
    assert_eq!(
        std::fs::read("/etc/passwd").unwrap(),
        passwd_before,
        "the real /etc/passwd changed"
    );
    assert_eq!(
        std::path::Path::new("/etc/voxtap").exists(),
        etc_before,
        "the real /etc/voxtap changed"
    );
}
