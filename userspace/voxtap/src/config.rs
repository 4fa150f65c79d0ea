//! The TOML configuration. Unknown keys and bad values stop start-up with a message that names
//! the file, line and column.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use toml::Spanned;
use voxtap_core::EngineConfig;
use voxtap_core::vocab::RecordingFormat;

use voxtap_core::policy::{RecordAnswered, RecordNothing, RecordingPolicy, Rules, RulesPolicy};

use crate::rules_config::RulesSection;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub recording: RecordingSection,
    #[serde(default)]
    pub capture: CaptureSection,
    #[serde(default)]
    pub conversations: ConversationsSection,
    #[serde(default)]
    pub status: StatusSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    /// How long recordings and evidence stay on disk (docs/config.md#retention).
    #[serde(default)]
    pub retention: crate::retention::RetentionSection,
    /// Each call's frames as a pcapng+lz4 file (docs/evidence.md).
    #[serde(default)]
    pub evidence: EvidenceSection,
    /// Which calls are recorded (see docs/rules.md); without it every answered call is.
    #[serde(default)]
    pub rules: Option<RulesSection>,
    /// Where finished recordings are sent on (docs/dispatch.md).
    #[serde(default)]
    pub dispatch: crate::dispatch::DispatchSection,
    /// `dispatch`, converted and checked by [`Config::parse`].
    #[serde(skip)]
    pub dispatch_targets: Vec<voxtap_dispatch::Target>,
    /// `rules`, converted and checked by [`Config::parse`].
    #[serde(skip)]
    pub compiled_rules: Option<Rules>,
    /// Set by the command, not the file: a live view follows the run
    /// ([`EngineConfig::monitor`]).
    #[serde(skip)]
    pub monitor: bool,
}

/// How the legs of one conversation are tied together and recorded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConversationsSection {
    /// Headers a PBX or SBC puts on every leg of one conversation (a shared value, or the
    /// other leg's Call-ID).
    pub correlation_headers: Vec<Spanned<String>>,
    /// Also record every other leg of a recorded conversation; each such recording names
    /// the one it repeats.
    pub record_each_leg: bool,
}

impl Default for ConversationsSection {
    fn default() -> Self {
        Self {
            correlation_headers: voxtap_core::dialog::DEFAULT_CORRELATION_HEADERS
                .iter()
                .map(|h| Spanned::new(0..0, h.to_string()))
                .collect(),
            record_each_leg: false,
        }
    }
}

/// The live state `voxtap run` publishes for `voxtap tui` (docs/tui.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusSection {
    /// Publish it at all: the engine then reports each call's SIP and media progress.
    pub enabled: bool,
    /// The socket viewers attach to; `DIR/status.sock` by default.
    pub socket: Option<std::path::PathBuf>,
    /// Seconds an ended call stays in the list.
    pub linger_s: u64,
}

impl Default for StatusSection {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: None,
            linger_s: 60,
        }
    }
}

/// Evidence: each call's SIP and RTP frames as captured, in
/// `DIR/evidence/YYYY-MM-DD/<call>-<Call-ID>.pcapng.lz4` (docs/evidence.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceSection {
    pub enabled: bool,
    /// Memory every call's unwritten frames may hold together (split between workers); past
    /// it the biggest are written early.
    pub buffer_mib: usize,
    /// A call's frames are written when they reach this many KiB (and at its end).
    pub chunk_kib: usize,
}

impl Default for EvidenceSection {
    fn default() -> Self {
        let d = voxtap_core::evidence::EvidenceConfig::default();
        Self {
            enabled: false,
            buffer_mib: d.budget_bytes / MIB,
            chunk_kib: d.chunk_bytes / 1024,
        }
    }
}

/// The Prometheus endpoint (docs/metrics.md); off unless `listen` is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `127.0.0.1:9477`, say. No authentication: keep it on the loopback or behind a proxy.
    pub listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSection {
    /// UDP and TCP ports the XDP program passes as SIP (`voxtap run --capture xdp`).
    pub sip_ports: Vec<u16>,
    /// Also pass UDP that looks like RTP on endpoints no SDP has named yet, so media seen
    /// before its signalling is not lost (costs kernel filtering on busy links).
    pub pass_unknown_rtp: bool,
    /// Seconds between live figures on stderr.
    pub stats_interval_s: u64,
}

impl Default for CaptureSection {
    fn default() -> Self {
        Self {
            sip_ports: vec![5060, 5061],
            pass_unknown_rtp: false,
            stats_interval_s: 10,
        }
    }
}

const MIB: usize = 1024 * 1024;

/// The longest timeout or interval a config may set, in seconds (a day): packet time plus
/// it must never overflow, and a call silent for a day is over.
const MAX_TIMEOUT_S: u64 = 86_400;
/// The most calls tracked at once: each costs about a kilobyte while it rings and tens of
/// kilobytes while it records (perf/RESULTS.md), so ten million is beyond any one box.
const MAX_CALLS: u64 = 10_000_000;
/// TCP ports always reassembled as SIP; each is compared per TCP segment.
const MAX_SIP_TCP_PORTS: u64 = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// TCP ports always reassembled as SIP (other ports are detected by content).
    pub sip_tcp_ports: Vec<u16>,
    /// How long audio waits for late and reordered RTP, in milliseconds.
    pub reorder_window_ms: u64,
    /// An answered call with neither SIP nor RTP ends after this many seconds.
    pub media_timeout_s: u64,
    /// An unanswered call with no final response ends after this many seconds.
    pub setup_timeout_s: u64,
    /// RTP that matches no call is held this long for an SDP that may claim it.
    pub pending_rtp_ms: u64,
    /// Most calls tracked at once.
    pub max_calls: usize,
    /// A direction silent this long stops holding the other back; a stall shorter than this
    /// loses no audio, in milliseconds.
    pub stall_ms: u64,
    /// Mebibytes that TCP reassembly, IP defragmentation and held RTP may buffer together.
    pub buffer_budget_mib: usize,
}

impl Default for EngineSection {
    fn default() -> Self {
        let e = EngineConfig::default();
        Self {
            sip_tcp_ports: e.sip_tcp_ports,
            reorder_window_ms: e.reorder_window.as_millis() as u64,
            media_timeout_s: e.dialog.media_timeout.as_secs(),
            setup_timeout_s: e.dialog.setup_timeout.as_secs(),
            pending_rtp_ms: e.pending_rtp_max_age.as_millis() as u64,
            max_calls: e.dialog.max_calls,
            stall_ms: e.stall_allowance.as_millis() as u64,
            buffer_budget_mib: e.buffer_budget_bytes / MIB,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingSection {
    /// Record every answered call when no `[rules]` decide.
    pub enabled: bool,
    /// How often a recording's file is made playable on disk, in seconds of audio (every
    /// format; the name is kept from when there was only WAV).
    pub wav_flush_s: f64,
    /// File format unless a rule's `format` says otherwise: `wav`, `flac`, `opus` or `mp3`.
    pub format: FormatName,
    /// `auto` (16 kHz for wide-band codecs, 8 kHz otherwise) or a rate in Hz.
    pub sample_rate: Spanned<RateSetting>,
    /// A recording is cut at this many hours (the cut is counted and catalogued).
    pub max_length_h: Spanned<f64>,
}

/// A recording file format, as the config names it.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FormatName {
    #[default]
    Wav,
    Flac,
    Opus,
    Mp3,
}

impl FormatName {
    pub fn format(self) -> RecordingFormat {
        match self {
            FormatName::Wav => RecordingFormat::Wav,
            FormatName::Flac => RecordingFormat::Flac,
            FormatName::Opus => RecordingFormat::Opus,
            FormatName::Mp3 => RecordingFormat::Mp3,
        }
    }
}

/// `sample_rate = "auto"` or a number.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RateSetting {
    Hz(u32),
    Word(String),
}

/// The rates a recording may have (every format can write them).
pub const RATES: [u32; 5] = [8000, 16_000, 32_000, 44_100, 48_000];

impl Default for RecordingSection {
    fn default() -> Self {
        Self {
            enabled: true,
            wav_flush_s: 1.0,
            format: FormatName::Wav,
            sample_rate: Spanned::new(0..0, RateSetting::Word("auto".into())),
            max_length_h: Spanned::new(0..0, 6.0),
        }
    }
}

impl RecordingSection {
    /// The fixed rate, or `None` for auto.
    pub fn rate(&self) -> Option<u32> {
        match self.sample_rate.get_ref() {
            RateSetting::Hz(hz) => Some(*hz),
            RateSetting::Word(_) => None,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("bad config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let mut cfg: Config = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                let at = e.span().map(|s| line_col(text, s.start));
                match at {
                    Some((line, col)) => bail!("line {line}, column {col}: {}", e.message()),
                    None => bail!("{}", e.message()),
                }
            }
        };
        cfg.validate(text)?;
        cfg.validate_recording(text)?;
        if let Some(l) = &cfg.metrics.listen
            && l.get_ref().parse::<std::net::SocketAddr>().is_err()
        {
            let (line, col) = line_col(text, l.span().start);
            bail!(
                "line {line}, column {col}: metrics.listen must be an address and port such as \"127.0.0.1:9477\", not {:?}",
                l.get_ref()
            );
        }
        if let Some(r) = &cfg.rules {
            cfg.compiled_rules = Some(r.to_rules(text)?);
        }
        cfg.dispatch_targets = cfg.dispatch.targets(text)?;
        let tenants: Option<Vec<String>> = cfg
            .compiled_rules
            .as_ref()
            .map(|r| r.tenants.iter().map(|t| t.name.clone()).collect());
        cfg.retention.validate(text, tenants.as_deref())?;
        Ok(cfg)
    }

    /// Where the Prometheus endpoint listens, if it is on (checked by [`Config::parse`]).
    pub fn metrics_listen(&self) -> Option<std::net::SocketAddr> {
        self.metrics.listen.as_ref()?.get_ref().parse().ok()
    }

    /// The policy the config asks for: nothing, the rules, or every answered call.
    pub fn policy(&self) -> Box<dyn RecordingPolicy> {
        match (&self.compiled_rules, self.recording.enabled) {
            (_, false) => Box::new(RecordNothing),
            (Some(rules), true) => Box::new(RulesPolicy::new(rules.clone())),
            (None, true) => Box::new(RecordAnswered),
        }
    }

    /// The recording settings that name their line when wrong.
    fn validate_recording(&self, text: &str) -> Result<()> {
        let r = &self.recording;
        let at = |span: std::ops::Range<usize>| {
            let (line, col) = line_col(text, span.start);
            format!("line {line}, column {col}")
        };
        match r.sample_rate.get_ref() {
            RateSetting::Hz(hz) if !RATES.contains(hz) => bail!(
                "{}: recording.sample_rate must be \"auto\" or one of {RATES:?}, not {hz}",
                at(r.sample_rate.span())
            ),
            RateSetting::Word(w) if w != "auto" => bail!(
                "{}: recording.sample_rate must be \"auto\" or one of {RATES:?}, not {w:?}",
                at(r.sample_rate.span())
            ),
            _ => {}
        }
        let h = *r.max_length_h.get_ref();
        if !(h > 0.0 && h <= 48.0) {
            bail!(
                "{}: recording.max_length_h must be above 0 and at most 48, not {h}",
                at(r.max_length_h.span())
            );
        }
        for h in &self.conversations.correlation_headers {
            let name = h.get_ref().trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b))
            {
                bail!(
                    "{}: conversations.correlation_headers: {:?} is not a SIP header name",
                    at(h.span()),
                    h.get_ref()
                );
            }
        }
        Ok(())
    }

    /// Every number within its bounds; a value out of them is refused with its line.
    fn validate(&self, text: &str) -> Result<()> {
        let e = &self.engine;
        let at = |section: &str, key: &str| match value_span(text, section, key) {
            Some(span) => {
                let (line, col) = line_col(text, span.start);
                format!("line {line}, column {col}: ")
            }
            None => String::new(),
        };
        // (section, key, value, least, most): the most is what the engine can use, or what a
        // sane deployment could want; beyond it a value is a typo (or an attack on a timer).
        let bounds: [(&str, &str, u64, u64, u64); 10] = [
            (
                "engine",
                "reorder_window_ms",
                e.reorder_window_ms,
                1,
                10_000,
            ),
            (
                "engine",
                "media_timeout_s",
                e.media_timeout_s,
                1,
                MAX_TIMEOUT_S,
            ),
            (
                "engine",
                "setup_timeout_s",
                e.setup_timeout_s,
                1,
                MAX_TIMEOUT_S,
            ),
            ("engine", "pending_rtp_ms", e.pending_rtp_ms, 0, 60_000),
            ("engine", "max_calls", e.max_calls as u64, 1, MAX_CALLS),
            ("engine", "stall_ms", e.stall_ms, 1, 60_000),
            // At least one TCP flow at its 256 KiB limit must fit; 1 TiB is beyond any box.
            (
                "engine",
                "buffer_budget_mib",
                e.buffer_budget_mib as u64,
                1,
                1 << 20,
            ),
            (
                "capture",
                "stats_interval_s",
                self.capture.stats_interval_s,
                1,
                MAX_TIMEOUT_S,
            ),
            ("status", "linger_s", self.status.linger_s, 0, MAX_TIMEOUT_S),
            (
                "engine",
                "sip_tcp_ports",
                e.sip_tcp_ports.len() as u64,
                0,
                MAX_SIP_TCP_PORTS,
            ),
        ];
        for (section, key, value, least, most) in bounds {
            if value < least || value > most {
                let what = if key == "sip_tcp_ports" {
                    format!("engine.sip_tcp_ports may list at most {most} ports, not {value}")
                } else {
                    format!("{section}.{key} must be between {least} and {most}, not {value}")
                };
                bail!("{}{what}", at(section, key));
            }
        }
        let ports = &self.capture.sip_ports;
        if ports.is_empty() || ports.contains(&0) {
            bail!(
                "{}capture.sip_ports must list at least one port, and port 0 is not one",
                at("capture", "sip_ports")
            );
        }
        let max_ports = voxtap_capture::xdp::SIP_PORTS_MAX as usize;
        if ports.len() > max_ports {
            bail!(
                "{}capture.sip_ports lists {} ports; the XDP program takes at most {max_ports}",
                at("capture", "sip_ports"),
                ports.len()
            );
        }
        let flush = self.recording.wav_flush_s;
        if !(flush > 0.0 && flush <= 60.0) {
            bail!(
                "{}recording.wav_flush_s must be above 0 and at most 60, not {flush}",
                at("recording", "wav_flush_s")
            );
        }
        let ev = &self.evidence;
        if ev.buffer_mib == 0 || ev.buffer_mib > 1 << 20 {
            bail!(
                "{}evidence.buffer_mib must be between 1 and 1048576, not {}",
                at("evidence", "buffer_mib"),
                ev.buffer_mib
            );
        }
        if ev.chunk_kib < 4 || ev.chunk_kib > 64 * 1024 || ev.chunk_kib * 1024 > ev.buffer_mib * MIB
        {
            bail!(
                "{}evidence.chunk_kib must be between 4 and 65536 and at most evidence.buffer_mib, not {}",
                at("evidence", "chunk_kib"),
                ev.chunk_kib
            );
        }
        Ok(())
    }

    /// The configuration in `path`, or the defaults without one.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config> {
        path.map_or_else(|| Ok(Config::default()), Config::load)
    }

    /// The output directory's store with this configuration; `source` names the input for the
    /// catalog's `runs` row.
    pub fn open_store(&self, out: &Path, source: String) -> Result<voxtap_store::Store> {
        let opts = voxtap_store::StoreOptions {
            wav_flush_secs: self.recording.wav_flush_s,
            source,
            dispatch: crate::dispatch::store_targets(&self.dispatch_targets),
            ..voxtap_store::StoreOptions::default()
        };
        voxtap_store::Store::open(out, opts)
            .with_context(|| format!("cannot open output {}", out.display()))
    }

    /// An engine with this configuration and its recording policy.
    pub fn engine(&self) -> voxtap_core::Engine {
        voxtap_core::Engine::with_policy(self.engine_config(), self.policy())
    }

    /// The engine of one worker of several ([`voxtap_core::vocab::Shard`]).
    pub fn engine_shard(&self, shard: voxtap_core::vocab::Shard) -> voxtap_core::Engine {
        let mut c = self.engine_config();
        c.shard = shard;
        // Each worker holds the evidence of its own calls: the budget is shared out.
        if let Some(ev) = c.evidence.as_mut() {
            ev.budget_bytes = (ev.budget_bytes / shard.count.max(1) as usize).max(ev.chunk_bytes);
        }
        voxtap_core::Engine::with_policy(c, self.policy())
    }

    pub fn engine_config(&self) -> EngineConfig {
        let mut c = EngineConfig {
            monitor: self.monitor,
            ..EngineConfig::default()
        };
        let e = &self.engine;
        c.sip_tcp_ports = e.sip_tcp_ports.clone();
        c.reorder_window = Duration::from_millis(e.reorder_window_ms);
        c.dialog.media_timeout = Duration::from_secs(e.media_timeout_s);
        c.dialog.setup_timeout = Duration::from_secs(e.setup_timeout_s);
        c.dialog.max_calls = e.max_calls;
        c.pending_rtp_max_age = Duration::from_millis(e.pending_rtp_ms);
        c.stall_allowance = Duration::from_millis(e.stall_ms);
        c.buffer_budget_bytes = e.buffer_budget_mib * MIB;
        c.format = self.recording.format.format();
        c.sample_rate = self.recording.rate();
        c.max_recording = Duration::from_secs_f64(self.recording.max_length_h.get_ref() * 3600.0);
        c.correlation_headers = self
            .conversations
            .correlation_headers
            .iter()
            .map(|h| h.get_ref().trim().to_string())
            .collect();
        c.record_each_leg = self.conversations.record_each_leg;
        if self.evidence.enabled {
            c.evidence = Some(voxtap_core::evidence::EvidenceConfig {
                budget_bytes: self.evidence.buffer_mib * MIB,
                chunk_bytes: self.evidence.chunk_kib * 1024,
                ..voxtap_core::evidence::EvidenceConfig::default()
            });
        }
        if let Some(rules) = &self.compiled_rules {
            c.servers = rules.networks.servers.clone();
            c.mode_header = rules.mode_header.clone();
            c.info_record = rules.info_record.clone();
            // The detector runs only where some tenant counts tones.
            c.inband_dtmf = rules
                .tenants
                .iter()
                .any(|t| t.on_demand.enabled && t.on_demand.inband);
        }
        c
    }
}

/// Where `[section] key = value` is in the file (the value's bytes), if it is there.
fn value_span(text: &str, section: &str, key: &str) -> Option<std::ops::Range<usize>> {
    fn find<'t, 'i>(
        t: &'t toml::de::DeTable<'i>,
        name: &str,
    ) -> Option<&'t Spanned<toml::de::DeValue<'i>>> {
        t.iter()
            .find(|(k, _)| k.get_ref().as_ref() == name)
            .map(|(_, v)| v)
    }
    let doc = toml::de::DeTable::parse(text).ok()?;
    let toml::de::DeValue::Table(t) = find(doc.get_ref(), section)?.get_ref() else {
        return None;
    };
    find(t, key).map(Spanned::span)
}

pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_and_servers_reach_the_engine_and_bad_values_name_their_line() {
        let c = Config::parse(
            "[conversations]\ncorrelation_headers = [\"X-Asterisk-Linkedid\"]\nrecord_each_leg = true\n\n[rules.networks]\nservers = [\"10.0.0.1\", \"192.0.2.0/28\"]\n\n[[rules.tenants]]\nname = \"a\"\ntransfers = \"decide\"\n",
        )
        .unwrap();
        let e = c.engine_config();
        assert_eq!(e.correlation_headers, ["X-Asterisk-Linkedid"]);
        assert!(e.record_each_leg);
        assert_eq!(e.servers.len(), 2);
        let rules = c.compiled_rules.as_ref().unwrap();
        assert_eq!(
            rules.tenants[0].transfers,
            voxtap_core::policy::TransferPolicy::Decide
        );
        let d = Config::default().engine_config();
        assert_eq!(
            d.correlation_headers,
            ["Session-ID", "X-CID", "P-Charging-Vector"]
        );
        assert!(!d.record_each_leg && d.servers.is_empty());

        let bad = |text: &str| format!("{:#}", Config::parse(text).expect_err("refused"));
        let e =
            bad("[conversations]\ncorrelation_headers = [\n  \"X-CID\",\n  \"bad header\",\n]\n");
        assert!(e.contains("line 4"), "{e}");
        let e = bad("[rules.networks]\nservers = [\"pbx\"]\n");
        assert!(e.contains("line 2") && e.contains("servers"), "{e}");
        let e = bad("[[rules.tenants]]\nname = \"a\"\ntransfers = \"maybe\"\n");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn recording_format_rate_and_length_reach_the_engine() {
        let c = Config::parse(
            "[recording]\nformat = \"opus\"\nsample_rate = 16000\nmax_length_h = 2.5\n[engine]\nstall_ms = 8000\n",
        )
        .expect("parses");
        let e = c.engine_config();
        assert_eq!(e.format, RecordingFormat::Opus);
        assert_eq!(e.sample_rate, Some(16_000));
        assert_eq!(e.max_recording, Duration::from_secs(9000));
        assert_eq!(e.stall_allowance, Duration::from_secs(8));
        let d = Config::default().engine_config();
        assert_eq!((d.format, d.sample_rate), (RecordingFormat::Wav, None));
        let auto = Config::parse("[recording]\nsample_rate = \"auto\"\n").expect("auto");
        assert_eq!(auto.engine_config().sample_rate, None);
    }

    #[test]
    fn bad_recording_values_name_their_line() {
        let err = |text: &str| format!("{:#}", Config::parse(text).expect_err("refused"));
        let e = err("[recording]\nformat = \"wav\"\nsample_rate = 11025\n");
        assert!(e.contains("line 3") && e.contains("sample_rate"), "{e}");
        let e = err("[recording]\n\nsample_rate = \"fast\"\n");
        assert!(e.contains("line 3"), "{e}");
        let e = err("[recording]\nmax_length_h = 0\n");
        assert!(e.contains("line 2") && e.contains("max_length_h"), "{e}");
        let e = err("[recording]\nformat = \"aac\"\n");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn rules_name_the_engine_s_mode_and_info_record_headers() {
        let c = Config::parse(
            "[rules]\nmode_header = \"X-Rec\"\ninfo_record = { name = \"X-Yealink-Rec\", on = \"start\", off = \"stop\" }\n",
        )
        .expect("parses");
        let e = c.engine_config();
        assert_eq!(e.mode_header, "X-Rec");
        assert_eq!(
            (
                e.info_record.name.as_str(),
                e.info_record.on.as_str(),
                e.info_record.off.as_str()
            ),
            ("X-Yealink-Rec", "start", "stop")
        );
        let d = Config::default().engine_config();
        assert_eq!(d.mode_header, "X-Record-Mode");
        assert_eq!(d.info_record.name, "Record");
    }

    #[test]
    fn inband_dtmf_runs_only_when_a_tenant_counts_tones() {
        let tenant = |od: &str| {
            Config::parse(&format!(
                "[[rules.tenants]]\nname = \"t\"\n[rules.tenants.on_demand]\n{od}\n"
            ))
            .expect("parses")
            .engine_config()
            .inband_dtmf
        };
        assert!(tenant("enabled = true\ninband = true"));
        assert!(!tenant("enabled = true\ninband = false"));
        assert!(!tenant("enabled = false\ninband = true"));
        assert!(!Config::default().engine_config().inband_dtmf);
    }

    #[test]
    fn empty_config_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert!(c.recording.enabled);
        assert_eq!(c.engine.reorder_window_ms, 300);
    }

    #[test]
    fn unknown_key_names_the_line() {
        let err = Config::parse("[engine]\nreorder_window_ms = 200\nbogus = 1\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let err = Config::parse("[recording]\nenabled = \"yes\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }

    #[test]
    fn out_of_range_values_are_refused_with_their_line_and_column() {
        let err = |text: &str| format!("{:#}", Config::parse(text).expect_err(text));
        for (text, key) in [
            ("[engine]\nreorder_window_ms = 0\n", "reorder_window_ms"),
            ("[engine]\nbuffer_budget_mib = 0\n", "buffer_budget_mib"),
            ("[engine]\nstall_ms = 60001\n", "stall_ms"),
            ("[engine]\nmedia_timeout_s = 86401\n", "media_timeout_s"),
            ("[engine]\nsetup_timeout_s = 0\n", "setup_timeout_s"),
            ("[engine]\nmax_calls = 100000000000\n", "max_calls"),
            ("[engine]\npending_rtp_ms = 3600000\n", "pending_rtp_ms"),
            ("[capture]\nstats_interval_s = 0\n", "stats_interval_s"),
            ("[status]\nlinger_s = 99999999\n", "linger_s"),
            ("[recording]\nwav_flush_s = -1.0\n", "wav_flush_s"),
            ("[capture]\nsip_ports = [0]\n", "sip_ports"),
        ] {
            let e = err(&format!("# a comment\n{text}"));
            assert!(
                e.contains("line 3, column ") && e.contains(key),
                "{text}: {e}"
            );
        }
        // The largest integer TOML can hold (2^63-1), and 2^64-1 beyond it.
        let e = err("[engine]\nmedia_timeout_s = 9223372036854775807\n");
        assert!(
            e.contains("line 2, column 19") && e.contains("media_timeout_s"),
            "{e}"
        );
        let e = err("[engine]\nmedia_timeout_s = 18446744073709551615\n");
        assert!(e.contains("line 2"), "{e}");
        let e = err("[engine]\nmax_calls = 1e11\n");
        assert!(e.contains("line 2"), "{e}");
        // The bounds themselves are accepted.
        let c = Config::parse(
            "[engine]\nmedia_timeout_s = 86400\nsetup_timeout_s = 1\nmax_calls = 10000000\n",
        )
        .expect("the bounds are in range");
        assert_eq!(c.engine.max_calls, 10_000_000);
    }

    #[test]
    fn more_sip_ports_than_the_xdp_program_takes_are_refused_at_load() {
        let ports = |n: u16| {
            let list: Vec<String> = (1..=n).map(|p| (5000 + p).to_string()).collect();
            format!("[capture]\nsip_ports = [{}]\n", list.join(", "))
        };
        Config::parse(&ports(64)).expect("64 ports fit the XDP program's map");
        let e = format!("{:#}", Config::parse(&ports(66)).expect_err("66 ports"));
        assert!(
            e.contains("line 2, column 13") && e.contains("66 ports") && e.contains("at most 64"),
            "{e}"
        );
    }

    #[test]
    fn buffer_budget_reaches_the_engine() {
        let c = Config::parse("[engine]\nbuffer_budget_mib = 8\n").expect("parses");
        assert_eq!(c.engine_config().buffer_budget_bytes, 8 * MIB);
        assert_eq!(
            Config::default().engine_config().buffer_budget_bytes,
            voxtap_core::engine::DEFAULT_BUFFER_BUDGET
        );
    }
}

#[cfg(test)]
mod example {
    use super::*;

    #[test]
    fn shipped_example_parses_and_states_the_defaults() {
        let c = Config::parse(include_str!("../../../docs/voxtap.example.toml")).unwrap();
        let d = Config::default();
        assert_eq!(c.engine.sip_tcp_ports, d.engine.sip_tcp_ports);
        assert_eq!(c.engine.reorder_window_ms, d.engine.reorder_window_ms);
        assert_eq!(c.engine.media_timeout_s, d.engine.media_timeout_s);
        assert_eq!(c.engine.setup_timeout_s, d.engine.setup_timeout_s);
        assert_eq!(c.engine.pending_rtp_ms, d.engine.pending_rtp_ms);
        assert_eq!(c.engine.max_calls, d.engine.max_calls);
        assert_eq!(c.engine.buffer_budget_mib, d.engine.buffer_budget_mib);
        assert_eq!(c.recording.enabled, d.recording.enabled);
        assert_eq!(c.recording.wav_flush_s, d.recording.wav_flush_s);
        assert_eq!(c.capture.sip_ports, d.capture.sip_ports);
        assert_eq!(c.capture.pass_unknown_rtp, d.capture.pass_unknown_rtp);
        assert_eq!(c.evidence.enabled, d.evidence.enabled);
        assert_eq!(c.evidence.buffer_mib, d.evidence.buffer_mib);
        assert_eq!(c.evidence.chunk_kib, d.evidence.chunk_kib);
        assert_eq!(c.capture.stats_interval_s, d.capture.stats_interval_s);
        assert_eq!(c.status.enabled, d.status.enabled);
        assert_eq!(c.status.linger_s, d.status.linger_s);
        assert_eq!(c.metrics_listen(), None);
    }

    #[test]
    fn the_live_view_and_metrics_settings_parse_and_a_bad_address_names_its_line() {
        let c = Config::parse("[metrics]\nlisten = \"127.0.0.1:9477\"\n[status]\nlinger_s = 5\n")
            .unwrap();
        assert_eq!(c.metrics_listen(), Some("127.0.0.1:9477".parse().unwrap()));
        assert_eq!(c.status.linger_s, 5);
        let e = Config::parse("[capture]\n\n[metrics]\nlisten = \"localhost\"\n").unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("line 4") && msg.contains("metrics.listen"),
            "{msg}"
        );
        let e = Config::parse("[status]\nlinger = 5\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
    }
}

#[cfg(test)]
mod evidence {
    use super::*;

    #[test]
    fn evidence_is_off_by_default_and_its_values_are_checked() {
        assert!(Config::default().engine_config().evidence.is_none());
        let c =
            Config::parse("[evidence]\nenabled = true\nbuffer_mib = 8\nchunk_kib = 64\n").unwrap();
        let e = c.engine_config().evidence.expect("on");
        assert_eq!((e.budget_bytes, e.chunk_bytes), (8 * MIB, 64 * 1024));
        let err = Config::parse("[evidence]\nchunk_kib = 1\n").unwrap_err();
        assert!(format!("{err:#}").contains("evidence.chunk_kib"), "{err:#}");
        let err = Config::parse("[evidence]\nbuffer_mib = 0\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("evidence.buffer_mib"),
            "{err:#}"
        );
    }
}
