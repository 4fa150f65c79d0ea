//! Shared helpers for the end-to-end tests: build and run the `voxtap` binary, read its
//! catalog and recordings, and measure tones.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use voxtap_gen::{CallTruth, GroundTruth};

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
    replay_configured(out, None, captures)
}

/// `voxtap replay [--config CONFIG] --out OUT CAPTURES...`.
pub fn replay_configured(out: &Path, config: Option<&Path>, captures: &[&Path]) -> Output {
    replay_workers(out, config, captures, None)
}

/// `voxtap replay [--workers N] [--config CONFIG] --out OUT CAPTURES...`.
pub fn replay_workers(
    out: &Path,
    config: Option<&Path>,
    captures: &[&Path],
    workers: Option<&str>,
) -> Output {
    let mut cmd = Command::new(voxtap());
    cmd.arg("replay");
    if let Some(n) = workers {
        cmd.arg("--workers").arg(n);
    }
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.arg("--out").arg(out);
    for c in captures {
        cmd.arg(c);
    }
    cmd.output().expect("run voxtap replay")
}

/// Like [`replay`], but panics with voxtap's output unless it exits 0.
pub fn replay_ok(out: &Path, captures: &[&Path]) -> String {
    expect_success(replay(out, captures))
}

/// voxtap's stdout, after panicking with all of its output unless it exited 0.
fn expect_success(o: Output) -> String {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "voxtap replay failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

/// A generated capture after `voxtap replay`: where voxtap wrote, what the generator meant,
/// and voxtap's summary. The scratch directory goes with it.
pub struct Replayed {
    _scratch: Scratch,
    pub out: PathBuf,
    pub truth: GroundTruth,
    pub summary: String,
}

/// Generates `cfg` into a pcap and replays it, with `config` as the TOML configuration if
/// given; panics with voxtap's output unless the replay succeeds.
pub fn replay_generated(cfg: &voxtap_gen::GenConfig, name: &str, config: Option<&str>) -> Replayed {
    let (frames, truth) = voxtap_gen::generate(cfg);
    replay_frames(frames, truth, name, config)
}

/// Writes generated `frames` (perhaps retimed, see `voxtap_gen::timing`) to a pcap and replays
/// it like [`replay_generated`].
pub fn replay_frames(
    frames: Vec<voxtap_gen::Frame>,
    truth: GroundTruth,
    name: &str,
    config: Option<&str>,
) -> Replayed {
    let scratch = Scratch::new(name);
    let pcap = scratch.path().join(format!("{name}.pcap"));
    voxtap_gen::write_pcap(&pcap, &frames).expect("write pcap");
    let config_path = config.map(|text| {
        let p = scratch.path().join("voxtap.toml");
        std::fs::write(&p, text).expect("write config");
        p
    });
    let out = scratch.path().join("out");
    let summary = expect_success(replay_configured(&out, config_path.as_deref(), &[&pcap]));
    Replayed {
        _scratch: scratch,
        out,
        truth,
        summary,
    }
}

pub fn catalog(out: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        out.join("catalog.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open catalog")
}

/// Every row `sql` selects from `db`, each as a tuple of its columns in order (rusqlite
/// converts a row to a tuple of up to 16 `FromSql` values); panics on any SQL or type error.
pub fn rows<T>(db: &rusqlite::Connection, sql: &str) -> Vec<T>
where
    T: for<'a> TryFrom<&'a rusqlite::Row<'a>, Error = rusqlite::Error>,
{
    let mut stmt = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    stmt.query_map([], |r| T::try_from(r))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .map(|r| r.unwrap_or_else(|e| panic!("{sql}: {e}")))
        .collect()
}

/// Generated frames as `TestNet::replay_paced` sends them: (capture time, bytes).
pub fn paced(frames: &[voxtap_gen::Frame]) -> Vec<(u64, Vec<u8>)> {
    frames.iter().map(|f| (f.ts_ns, f.data.clone())).collect()
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

/// tshark's reading of `capture` (the oracle for SIP and RTP facts): for each packet that
/// matches the display `filter`, a line of the `fields`, tab-separated, in capture order.
/// `options` go before `-r` (`-o rtp.heuristic_rtp:TRUE`...). Panics with tshark's own
/// message if it fails.
pub fn tshark_fields(
    capture: &Path,
    filter: &str,
    fields: &[&str],
    options: &[&str],
) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").args(options).arg("-r").arg(capture);
    cmd.args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
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

#[derive(Debug)]
struct CallRow {
    id: i64,
    caller_user: String,
    callee_user: String,
    answered: bool,
    end_reason: Option<String>,
    final_status: Option<i64>,
    transport: String,
}

fn calls_by_call_id(out: &Path) -> HashMap<String, CallRow> {
    let db = catalog(out);
    let mut stmt = db
        .prepare("SELECT id, sip_call_id, caller_user, callee_user, answer_time, end_reason, final_status, transport FROM calls")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                CallRow {
                    id: r.get(0)?,
                    caller_user: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    callee_user: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    answered: r.get::<_, Option<String>>(4)?.is_some(),
                    end_reason: r.get(5)?,
                    final_status: r.get(6)?,
                    transport: r.get(7)?,
                },
            ))
        })
        .unwrap();
    let mut map = HashMap::new();
    for row in rows {
        let (k, v) = row.unwrap();
        assert!(
            map.insert(k.clone(), v).is_none(),
            "Call-ID {k} appears twice in calls"
        );
    }
    map
}

/// One row of `recordings`.
#[derive(Debug)]
struct RecRow {
    path: String,
    duration: Option<f64>,
    channels: i64,
    rate: i64,
    codec: String,
    state: String,
    state_reason: Option<String>,
}

fn recordings_of(out: &Path, call_id: i64) -> Vec<RecRow> {
    let db = catalog(out);
    let mut stmt = db
        .prepare(
            "SELECT path, duration_s, channels, sample_rate, codec, state, state_reason
             FROM recordings WHERE call_id = ?1",
        )
        .unwrap();
    stmt.query_map([call_id], |r| {
        Ok(RecRow {
            path: r.get(0)?,
            duration: r.get(1)?,
            channels: r.get(2)?,
            rate: r.get(3)?,
            codec: r.get(4)?,
            state: r.get(5)?,
            state_reason: r.get(6)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// One row of `streams`: what the engine made of one RTP stream.
#[derive(Debug)]
pub struct StreamRow {
    pub side: String,
    pub ssrc: i64,
    pub codec: String,
    pub clock_rate: i64,
    pub fmtp: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub security: String,
    pub packets: i64,
    pub lost: i64,
    pub decoded_packets: i64,
    pub undecodable_packets: i64,
    pub decrypt_failures: i64,
}

/// The streams of the call with this SIP Call-ID.
pub fn streams_of(out: &Path, sip_call_id: &str) -> Vec<StreamRow> {
    let db = catalog(out);
    let mut stmt = db
        .prepare(
            "SELECT s.side, s.ssrc, s.codec, s.clock_rate, s.fmtp, s.status, s.status_reason,
                    s.security, s.packets, s.lost, s.decoded_packets, s.undecodable_packets,
                    s.decrypt_failures
             FROM streams s JOIN calls c ON c.id = s.call_id WHERE c.sip_call_id = ?1
             ORDER BY s.id",
        )
        .unwrap();
    stmt.query_map([sip_call_id], |r| {
        Ok(StreamRow {
            side: r.get(0)?,
            ssrc: r.get(1)?,
            codec: r.get(2)?,
            clock_rate: r.get(3)?,
            fmtp: r.get(4)?,
            status: r.get(5)?,
            status_reason: r.get(6)?,
            security: r.get(7)?,
            packets: r.get(8)?,
            lost: r.get(9)?,
            decoded_packets: r.get(10)?,
            undecodable_packets: r.get(11)?,
            decrypt_failures: r.get(12)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The streams of a call against its truth: each stream's status, its protection, its codec
/// as the SDP named it, and no packet that failed to decrypt or decode.
fn check_streams(out: &Path, t: &CallTruth) {
    let id = &t.sip_call_id;
    let streams = streams_of(out, id);
    assert!(
        streams.iter().any(|s| s.side == "caller") && streams.iter().any(|s| s.side == "callee"),
        "{id}: a stream per side: {streams:?}"
    );
    for s in &streams {
        assert_eq!(s.status, t.stream_status, "{id} {s:?}: status");
        match t.security.as_str() {
            "rtp" => assert_eq!(s.security, "rtp", "{id}: security"),
            "sdes-srtp" => {
                let want = format!("srtp {}", t.srtp_suite.as_deref().unwrap_or_default());
                assert_eq!(s.security, want, "{id}: security");
            }
            _ => assert!(
                s.security.starts_with("encrypted"),
                "{id}: security {:?}",
                s.security
            ),
        }
        if t.stream_status == "decoded" {
            assert!(
                s.codec.eq_ignore_ascii_case(&t.codec)
                    && s.clock_rate == i64::from(t.clock_rate)
                    && s.fmtp == t.fmtp,
                "{id}: stream codec {}/{} fmtp {:?}, the SDP said {}/{} {:?}",
                s.codec,
                s.clock_rate,
                s.fmtp,
                t.codec,
                t.clock_rate,
                t.fmtp
            );
            assert_eq!(
                (s.decrypt_failures, s.undecodable_packets),
                (0, 0),
                "{id} {s:?}: packets lost to decryption or decoding"
            );
            assert!(s.decoded_packets > 0, "{id} {s:?}: nothing decoded");
        } else {
            assert_eq!(s.decoded_packets, 0, "{id} {s:?}: decoded encrypted audio");
            assert!(s.status_reason.is_some(), "{id} {s:?}: no reason given");
        }
    }
}

/// CI sets VOXTAP_REQUIRE_CODECS=1: a codec this build lacks is then a failure.
pub fn require_codecs() -> bool {
    std::env::var("VOXTAP_REQUIRE_CODECS").is_ok_and(|v| v == "1")
}

/// Why this build cannot carry `codec` end to end (no encoder in the generator, or no decoder
/// in the engine), or `None` when it can.
pub fn codec_missing(codec: voxtap_gen::Codec) -> Option<String> {
    if let Err(e) = codec.encoder_available() {
        return Some(format!("{codec}: no encoder: {e}"));
    }
    let name = codec.name();
    let family = if name.to_ascii_uppercase().contains("G726") {
        "G726"
    } else {
        name.as_str()
    };
    let decodes = voxtap_codec::available()
        .into_iter()
        .any(|(f, ok)| ok && f.eq_ignore_ascii_case(family));
    (!decodes).then(|| format!("{codec}: voxtap was built without a {family} decoder"))
}

/// `false` after a loud SKIPPED line when a codec is missing, a panic instead under
/// VOXTAP_REQUIRE_CODECS=1; `true` when every codec is there.
pub fn have_codecs(test: &str, codecs: &[voxtap_gen::Codec]) -> bool {
    let missing: Vec<String> = codecs.iter().filter_map(|&c| codec_missing(c)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !require_codecs(),
        "{test}: {} (VOXTAP_REQUIRE_CODECS=1)",
        missing.join("; ")
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {test}: {} ***\n",
        missing.join("; ")
    );
    false
}

/// The seconds of a channel that are not inside one of its silent spans (with a margin).
fn talking(truth: &CallTruth, channel: &str, secs: f64) -> Vec<(f64, f64)> {
    let mut spans = vec![(0.3, secs - 0.3)];
    for s in truth.silent_spans.iter().filter(|s| s.channel == channel) {
        let mut next = Vec::new();
        for (a, b) in spans {
            let (sa, sb) = (s.from_secs - 0.3, s.to_secs + 0.3);
            if sb <= a || sa >= b {
                next.push((a, b));
            } else {
                if sa > a {
                    next.push((a, sa));
                }
                if sb < b {
                    next.push((sb, b));
                }
            }
        }
        spans = next;
    }
    spans.into_iter().filter(|(a, b)| b - a > 0.2).collect()
}

fn slice(x: &[f64], rate: u32, (a, b): (f64, f64)) -> &[f64] {
    let n = x.len();
    let i = ((a * rate as f64) as usize).min(n);
    let j = ((b * rate as f64) as usize).min(n);
    &x[i..j]
}

/// Power of `freq` in `x`: over the whole span (a tone whose phase slips anywhere in it, by
/// misplaced or doubled audio, loses power), or with `windowed` the mean over 100 ms windows.
fn span_power(x: &[f64], rate: u32, freq: f64, windowed: bool) -> f64 {
    let n = (rate / 10) as usize;
    if !windowed || x.len() < 2 * n {
        return tone_power(x, rate, freq);
    }
    let windows: Vec<f64> = x
        .chunks_exact(n)
        .map(|w| tone_power(w, rate, freq))
        .collect();
    windows.iter().sum::<f64>() / windows.len() as f64
}

/// The expected tone dominates the channel where the party talks, and the other party's tone
/// is absent from it.
fn check_channel(w: &Stereo, truth: &CallTruth, channel: &str) {
    let (x, want, other, lost) = match channel {
        "left" => (
            &w.left,
            truth.caller_tone_hz,
            truth.callee_tone_hz,
            truth.lost_caller,
        ),
        _ => (
            &w.right,
            truth.callee_tone_hz,
            truth.caller_tone_hz,
            truth.lost_callee,
        ),
    };
    // A predictive decoder conceals a loss with its own guess and takes a while to fall back
    // in step with the encoder: the tone's phase and level drift, which is no fault of the
    // recording. Those channels are measured per window; G.711 and loss-free ones whole.
    let g711 = ["PCMU", "PCMA"].contains(&truth.codec.to_ascii_uppercase().as_str());
    let windowed = lost > 0 && !g711;
    let spans = talking(truth, channel, w.secs());
    assert!(
        !spans.is_empty(),
        "{}: no talking span on {channel}",
        truth.sip_call_id
    );
    for span in spans {
        let part = slice(x, w.rate, span);
        let p_want = span_power(part, w.rate, want, windowed);
        let p_other = span_power(part, w.rate, other, windowed);
        let e = energy(part);
        assert!(
            p_want > 0.02,
            "{} {channel} {span:?}: the {want} Hz tone is missing (power {p_want:.4}, energy {e:.4})",
            truth.sip_call_id
        );
        assert!(
            p_other < p_want / 50.0,
            "{} {channel} {span:?}: the other party's {other} Hz tone leaks in ({p_other:.4} vs {p_want:.4})",
            truth.sip_call_id
        );
        // Most of the energy is the tone: no clicks, no doubled or misplaced audio.
        assert!(
            p_want * 2.0 > e * 0.8,
            "{} {channel} {span:?}: tone is {p_want:.4} of energy {e:.4}",
            truth.sip_call_id
        );
    }
    for s in truth.silent_spans.iter().filter(|s| s.channel == channel) {
        let inner = (s.from_secs + 0.3, s.to_secs - 0.3);
        if inner.1 - inner.0 > 0.2 {
            let e = energy(slice(x, w.rate, inner));
            assert!(
                e < 1e-4,
                "{} {channel}: expected silence in {inner:?}, energy {e}",
                truth.sip_call_id
            );
        }
    }
}

/// Checks a catalog and its recordings against the generator's ground truth: the same calls,
/// the recording at the truth's sample rate and in its state (`complete`, or `no-audio` with a
/// reason and no file when the media cannot be decrypted), every stream decoded (or
/// encrypted), protected as the SDP said and with the SDP's codec, the right tone on the right
/// channel, durations within 0.5 s, DTMF digits, loss per direction and silence where a party
/// was on hold. `context` is shown on failure.
pub fn check_against_truth(out: &Path, truth: &GroundTruth, context: &str) {
    let calls = calls_by_call_id(out);
    assert_eq!(
        calls.len(),
        truth.calls.len(),
        "calls in the catalog vs generated:\n{context}"
    );
    let db = catalog(out);
    for t in &truth.calls {
        let row = calls
            .get(&t.sip_call_id)
            .unwrap_or_else(|| panic!("call {} is missing from the catalog", t.sip_call_id));
        assert_eq!(row.caller_user, t.caller_user, "{}", t.sip_call_id);
        assert_eq!(row.callee_user, t.callee_user, "{}", t.sip_call_id);
        assert_eq!(row.answered, t.answered, "{}: answered", t.sip_call_id);
        assert_eq!(
            row.end_reason.as_deref(),
            Some(t.end_reason.as_str()),
            "{}: end reason",
            t.sip_call_id
        );
        assert_eq!(
            row.final_status,
            Some(t.final_status as i64),
            "{}: final status",
            t.sip_call_id
        );
        assert_eq!(row.transport, t.transport, "{}: transport", t.sip_call_id);

        let recs = recordings_of(out, row.id);
        if !t.recorded {
            assert!(recs.is_empty(), "{}: must not be recorded", t.sip_call_id);
            continue;
        }
        assert_eq!(recs.len(), 1, "{}: one recording per call", t.sip_call_id);
        let rec = &recs[0];
        // The rate follows the codec: 16 kHz for wide-band audio, else 8 kHz.
        assert_eq!(
            (rec.channels, rec.rate),
            (2, i64::from(t.record_rate)),
            "{} ({}): channels and sample rate",
            t.sip_call_id,
            t.codec_id
        );
        assert!(
            rec.codec.eq_ignore_ascii_case(&t.codec),
            "{}: recording codec {:?}, the SDP said {:?}",
            t.sip_call_id,
            rec.codec,
            t.codec
        );
        assert_eq!(
            rec.state, t.recording_state,
            "{} ({}): recording state ({:?})",
            t.sip_call_id, t.codec_id, rec.state_reason
        );
        check_streams(out, t);
        if t.recording_state == "no-audio" {
            // Nothing to listen to: the file is gone, the catalog says why.
            assert!(
                rec.state_reason.as_deref().is_some_and(|r| !r.is_empty()),
                "{}: a no-audio recording gives its reason",
                t.sip_call_id
            );
            assert!(
                !out.join(&rec.path).exists(),
                "{}: a no-audio recording leaves no file",
                t.sip_call_id
            );
            continue;
        }
        let duration = rec.duration.unwrap_or(-1.0);
        let wav = read_wav(&out.join(&rec.path));
        assert_eq!(
            wav.rate, t.record_rate,
            "{}: WAV sample rate",
            t.sip_call_id
        );
        assert!(
            (wav.secs() - t.recorded_secs).abs() <= 0.5,
            "{}: recording lasts {:.3} s, the call {:.3} s",
            t.sip_call_id,
            wav.secs(),
            t.recorded_secs
        );
        assert!(
            (duration - wav.secs()).abs() < 0.01,
            "{}: catalog duration {duration} vs file {}",
            t.sip_call_id,
            wav.secs()
        );
        check_channel(&wav, t, "left");
        check_channel(&wav, t, "right");

        // DTMF digits, in order, with the party that pressed them.
        let mut stmt = db.prepare("SELECT value, side, source FROM events WHERE call_id = ?1 AND kind = 'dtmf' ORDER BY time, id").unwrap();
        let got: Vec<(String, String, String)> = stmt
            .query_map([row.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let want: Vec<(String, String)> = t
            .dtmf
            .iter()
            .map(|d| (d.digit.to_string(), d.side.clone()))
            .collect();
        let got_pairs: Vec<(String, String)> =
            got.iter().map(|(v, s, _)| (v.clone(), s.clone())).collect();
        assert_eq!(got_pairs, want, "{}: DTMF", t.sip_call_id);
        assert!(got.iter().all(|(_, _, src)| src == "rfc4733"));

        // Loss per direction, as tshark counts it.
        for (side, lost) in [("caller", t.lost_caller), ("callee", t.lost_callee)] {
            let total: i64 = db
                .query_row(
                    "SELECT COALESCE(SUM(lost), 0) FROM streams WHERE call_id = ?1 AND side = ?2",
                    (row.id, side),
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(total, lost as i64, "{}: {side} loss", t.sip_call_id);
        }
    }
}

/// A program on a terminal of its own: a detached tmux session of a fixed size, driven by
/// keys and read back as text. `None` (after a loud SKIPPED line) without tmux.
pub struct Tmux {
    name: String,
    /// Where the shell writes the program's exit status.
    status: PathBuf,
}

impl Tmux {
    pub fn start_or_skip(test: &str, cols: u16, rows: u16, command: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("\n*** SKIPPED {test}: tmux is not installed (run `cargo xtask deps`) ***\n");
            return None;
        }
        let name = format!("voxtap-{test}-{}", std::process::id());
        let status_file = std::env::temp_dir().join(format!("{name}.status"));
        let _ = std::fs::remove_file(&status_file);
        // The pane stays after the program, with its last screen; the shell notes how it
        // ended.
        let wrapped = format!("{command}; echo $? > {}; sleep 3600", status_file.display());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x"])
            .arg(cols.to_string())
            .arg("-y")
            .arg(rows.to_string())
            .arg(wrapped)
            .env("TERM", "xterm-256color")
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        Some(Tmux {
            name,
            status: status_file,
        })
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        let o = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Waits until the screen shows every one of `needles`; panics with the screen if not.
    pub fn wait_for(&self, needles: &[&str], limit: std::time::Duration) -> String {
        self.wait_until(&format!("{needles:?}"), limit, |screen| {
            needles.iter().all(|n| screen.contains(n))
        })
    }

    /// Waits until `ok` holds for the screen; panics with the screen and `what` if not.
    pub fn wait_until(
        &self,
        what: &str,
        limit: std::time::Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let until = std::time::Instant::now() + limit;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            if std::time::Instant::now() > until {
                panic!("the screen never showed {what}:\n{screen}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Sends keys as tmux names them (`Enter`, `Escape`, `q`, `Down`...), one at a time.
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            let s = Command::new("tmux")
                .args(["send-keys", "-t", &self.name, k])
                .status()
                .expect("tmux send-keys");
            assert!(s.success());
            // An Escape followed at once by a key reads as Alt-key.
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
    }

    /// The program's exit status once it has exited (its last screen stays), or `None`
    /// after `limit`.
    pub fn exit_status(&self, limit: std::time::Duration) -> Option<i32> {
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            if let Ok(text) = std::fs::read_to_string(&self.status)
                && let Ok(code) = text.trim().parse()
            {
                return Some(code);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
        let _ = std::fs::remove_file(&self.status);
    }
}

/// Whether the tests run as root (namespaces, mounts, erasure need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A mounted filesystem, unmounted (lazily) when dropped.
pub struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A tmpfs of `size` at `at` for the test `test`, or `None` after a loud SKIPPED line.
pub fn tmpfs(test: &str, at: &Path, size: &str) -> Option<Mount> {
    if !is_root() {
        eprintln!("\n*** SKIPPED {test}: mounting a tmpfs needs root ***\n");
        return None;
    }
    std::fs::create_dir_all(at).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0750"),
            "tmpfs",
        ])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("\n*** SKIPPED {test}: cannot mount a tmpfs ***\n");
        return None;
    }
    Some(Mount(at.to_path_buf()))
}
