//! `voxtap-gen` command line: write a SIP/RTP pcap and its ground truth.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum as _};
use voxtap_gen::{Codec, Encap, GenConfig, Mirror, Scenario, try_generate, write_pcap};

/// Generate a deterministic pcap of SIP calls with RTP (a pure sine tone per
/// direction, in G.711 or any codec of --codec, optionally SRTP) plus a JSON
/// ground truth, for voxtap end-to-end tests.
#[derive(Parser, Debug)]
#[command(name = "voxtap-gen", version, about, long_about = None)]
struct Args {
    /// Traffic scenario to generate.
    #[arg(long, value_enum)]
    scenario: Scenario,

    /// Number of calls (default: 1; concurrent: 200; fragmented-invite: 2; srtp: 5;
    /// for mix, matrix and codecs: number of rounds; for the PBX scenarios: number of
    /// conversations, default 4 for pbx-outbound and pbx-inbound, else 2).
    #[arg(long)]
    calls: Option<usize>,

    /// Put this codec in every call instead of the scenario's (G.711), encoded by the real
    /// encoder at 20 ms packets.
    #[arg(long, value_enum)]
    codec: Option<Codec>,

    /// Protect every call's media with SRTP keyed by SDES (RTP/SAVP, a=crypto).
    #[arg(long)]
    srtp: bool,

    /// PBX scenarios: which legs the capture holds (phones: phone ↔ PBX legs only; carrier:
    /// PBX ↔ carrier legs only; both: every leg, the PBX's own port).
    #[arg(long, value_enum, default_value_t = Mirror::Both)]
    mirror: Mirror,

    /// Deliver every frame through a remote mirror, wrapped as the mirror sends it (ERSPAN
    /// II/III or Ethernet over GRE from a switch, VXLAN from a cloud traffic mirror, Geneve),
    /// from 172.31.0.1 to the collector 172.31.0.2. The ground truth is unchanged.
    #[arg(long, value_enum)]
    encap: Option<Encap>,

    /// Talk time per call in seconds, answer to BYE (minimum 0.5).
    #[arg(long, default_value_t = 4.0)]
    talk_secs: f64,

    /// concurrent: start the calls within about this many milliseconds (first INVITE to
    /// last) and hang them up over as long again (default: a call every 20-50 ms, a BYE
    /// every 5 ms).
    #[arg(long)]
    ramp_ms: Option<f64>,

    /// Seed for every random choice; same seed, same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Capture start as Unix seconds (default 2026-01-01T00:00:00Z).
    #[arg(long, default_value_t = voxtap_gen::DEFAULT_START_UNIX_SECS)]
    start_unix_secs: u64,

    /// Output pcap file (microsecond pcap, Ethernet link type).
    #[arg(long)]
    out: PathBuf,

    /// Optional ground-truth JSON output file.
    #[arg(long)]
    truth: Option<PathBuf>,

    /// The capture clock runs this many parts per million fast (negative: slow) against the
    /// senders' RTP clocks.
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.0)]
    clock_ppm: f64,

    /// Capture timestamps run this many times faster than real time (a replay with
    /// `tcpreplay --multiplier N`).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,

    /// Stall the callee's RTP of the first call for this many seconds, from `--stall-at`
    /// seconds after its answer, then deliver it in a burst.
    #[arg(long)]
    stall_secs: Option<f64>,

    /// When the stall starts, in seconds after the answer.
    #[arg(long, default_value_t = 1.0)]
    stall_at: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut cfg = GenConfig::new(args.scenario);
    if let Some(c) = args.calls {
        if c == 0 {
            bail!("--calls must be at least 1");
        }
        cfg.calls = c;
    }
    if !args.talk_secs.is_finite() || args.talk_secs < 0.5 {
        bail!("--talk-secs must be a number >= 0.5");
    }
    cfg.talk_secs = args.talk_secs;
    cfg.seed = args.seed;
    cfg.start_unix_secs = args.start_unix_secs;
    if args.codec.is_some() && args.scenario == Scenario::Codecs {
        bail!("--codec makes every call one codec: the codecs scenario makes one of each");
    }
    cfg.codec = args.codec;
    cfg.srtp = args.srtp;
    if args.mirror != Mirror::Both && !args.scenario.is_pbx() {
        bail!("--mirror chooses legs of a PBX scenario; this one has a single leg per call");
    }
    cfg.mirror = args.mirror;
    if let Some(ms) = args.ramp_ms {
        if args.scenario != Scenario::Concurrent {
            bail!("--ramp-ms paces the concurrent scenario's calls");
        }
        if !(ms.is_finite() && ms >= 0.0) {
            bail!("--ramp-ms must be a number >= 0");
        }
        cfg.ramp_ms = Some(ms);
    }

    if !(args.speed.is_finite() && args.speed > 0.0 && args.clock_ppm.is_finite()) {
        bail!("--speed must be above 0 and --clock-ppm a number");
    }
    let (mut frames, mut truth) = try_generate(&cfg)?;
    if let Some(secs) = args.stall_secs {
        let (Some(spec), Some(answer)) = (
            voxtap_gen::scenario::plan(&cfg).first().cloned(),
            truth.calls.first().and_then(|c| c.answer_ns),
        ) else {
            bail!("--stall-secs needs a scenario whose first call is answered (and no PBX)");
        };
        let from = answer + (args.stall_at * 1e9) as u64;
        voxtap_gen::timing::stall(&mut frames, spec.callee_rtp_port, from, (secs * 1e9) as u64);
    }
    if args.clock_ppm != 0.0 {
        voxtap_gen::timing::drift(&mut frames, &mut truth, args.clock_ppm);
    }
    if args.speed != 1.0 {
        voxtap_gen::timing::scale_time(&mut frames, &mut truth, 1.0 / args.speed);
    }
    if let Some(encap) = args.encap {
        voxtap_gen::encap::encapsulate(&mut frames, encap);
    }
    write_pcap(&args.out, &frames)?;
    if let Some(path) = &args.truth {
        let json = serde_json::to_string_pretty(&truth)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "voxtap-gen: scenario={}{}{}{}{} calls={} frames={} out={}{}",
        args.scenario
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default(),
        args.codec
            .map(|c| format!(" codec={c}"))
            .unwrap_or_default(),
        if args.srtp { " srtp" } else { "" },
        args.encap
            .and_then(|e| e.to_possible_value())
            .map(|v| format!(" encap={}", v.get_name()))
            .unwrap_or_default(),
        if args.scenario.is_pbx() {
            format!(
                " mirror={} conversations={}",
                args.mirror
                    .to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default(),
                truth.conversations.len()
            )
        } else {
            String::new()
        },
        truth.calls.len(),
        frames.len(),
        args.out.display(),
        args.truth
            .as_ref()
            .map(|p| format!(" truth={}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}
