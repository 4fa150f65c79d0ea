//! `voxtap-gen`: deterministic SIP/RTP traffic generator for voxtap tests.
//!
//! [`generate`] turns a [`GenConfig`] into Ethernet frames (sorted by
//! timestamp) plus a [`GroundTruth`] describing every call, and
//! [`write_pcap`] stores the frames as a classic microsecond pcap file
//! (link type Ethernet).
//!
//! Every call carries a pure sine tone per direction (caller → left channel,
//! callee → right channel), so a test can check that a recording holds the
//! right tone on the right channel for the right Call-ID. G.711 by default;
//! [`GenConfig::codec`] (or [`Scenario::Codecs`]) puts any other codec in the
//! calls, encoded by the real encoder as one continuous stream per direction
//! (see [`codec`] for how each is packetised). [`GenConfig::srtp`] (or
//! [`Scenario::Srtp`]) protects the media with SDES-keyed SRTP (RFC 4568,
//! RFC 3711). All randomness comes from `GenConfig::seed`: the same config
//! always yields byte-identical output.
//!
//! Conventions used in the ground truth:
//! * all `*_ns` values are absolute Unix-epoch nanoseconds (pcap timestamps,
//!   always whole microseconds);
//! * `recorded_secs` is answer (200 OK to INVITE) → BYE;
//! * `rtp_packets_*` count the RTP packets of that side actually present in
//!   the capture (audio, telephone-event and early media), `lost_*` the
//!   packets the network "dropped" (seq gaps as tshark counts them);
//! * `at_secs`, `from_secs`, `to_secs` are seconds relative to the answer.
//!
//! The PBX scenarios ([`Scenario::PBX`], built by [`pbx`]) put a B2BUA between the
//! parties: each `CallTruth` is then one leg (one SIP dialog, the PBX at one end) and
//! [`GroundTruth::conversations`] groups the legs of each conversation. A leg's caller and
//! callee are its From and To, and its channels what each side sends on it: the PBX's side
//! relays the other leg's person, so every answered leg carries both people's tones (a
//! transfer changes one channel's tone, see `tone_spans`). [`GenConfig::mirror`] keeps only
//! the phone side or the carrier side of the PBX.

pub mod call;
pub mod codec;
pub mod encap;
pub mod g711;
pub mod net;
pub mod pbx;
pub mod pcap;
pub mod rng;
pub mod rtp;
pub mod scenario;
pub mod sip;
pub mod timing;

#[cfg(test)]
mod tests;

pub use codec::Codec;
pub use encap::{Encap, encapsulate};
pub use pcap::write_pcap;

/// 2026-01-01T00:00:00Z.
pub const DEFAULT_START_UNIX_SECS: u64 = 1_767_225_600;

/// Which kind of traffic to generate.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Plain G.711 μ-law call over UDP.
    Pcmu,
    /// Plain G.711 A-law call over UDP (callee hangs up).
    Pcma,
    /// PCMU call with RFC 4733 DTMF: caller presses 1 and #, callee presses 5.
    Dtmf,
    /// Caller puts the callee on hold (sendonly) then resumes from a new RTP port and SSRC.
    HoldMove,
    /// Caller behind NAT: SDP/Contact advertise 192.168.1.x, packets come from 203.0.113.x.
    Nat,
    /// ~2% RTP loss and ~2% adjacent reordering per direction.
    LossReorder,
    /// Every frame 802.1Q tagged (VID 100).
    Vlan,
    /// Every frame double tagged: outer 802.1ad VID 200, inner 802.1Q VID 100.
    #[value(name = "qinq", alias = "qin-q")]
    #[serde(rename = "qinq")]
    QinQ,
    /// INVITE larger than the MTU, sent as IPv4 fragments (every second call in reverse order).
    FragmentedInvite,
    /// SIP over TCP (handshake, split INVITE, coalesced 100+180, FIN); RTP over UDP.
    Tcp,
    /// Everything over IPv6 (fd00:1::/64 caller side, fd00:2::/64 callee side).
    Ipv6,
    /// INVITE → 100 → 180 → CANCEL → 200 → 487 → ACK; never answered, nothing to record.
    CancelBeforeAnswer,
    /// 183 Session Progress with SDP and ~1 s of early media before the 200 OK.
    EarlyMedia,
    /// Many overlapping PCMU/PCMA calls, all up at the same time (default 200): a call every
    /// 20-50 ms, or all within [`GenConfig::ramp_ms`]. Each call's phones have addresses of
    /// their own (10.1.0.0/16 calling 10.2.0.0/16, up to 63,750 calls).
    Concurrent,
    /// The callee presses the Yealink Record key: SIP INFO `Record: off` at 30% of the talk
    /// time, `Record: on` at 60%.
    InfoRecord,
    /// The callee pauses (20%) and resumes (35%) with in-dialog MESSAGEs
    /// (`application/x-media-control`), then pauses (55%) and resumes (75%) with out-of-dialog
    /// JSON MESSAGEs naming the `X-Session-Id` of the INVITE.
    MediaControl,
    /// Two calls whose INVITEs carry `X-Record-Mode`: the first `deny`, the second `force`.
    ModeHeader,
    /// The callee pauses (`*48` at 30% of the talk time), resumes (`*49` at 60%) and stops
    /// with the toggle (`*1` at 85%), in RFC 4733 DTMF codes.
    DtmfPause,
    /// The direction matrix, four calls per round: inbound (an offnet caller to an onnet
    /// callee), outbound, internal and external-to-external. Onnet parties are on 10.0.0.0/8
    /// with extensions (1NNNN caller, 2NNNN callee); offnet ones on 198.51.100.0/24 (caller)
    /// and 192.0.2.0/24 (callee) with E.164 numbers. From and To name the domain `gen.test`.
    /// `calls` = rounds.
    Matrix,
    /// An offnet caller (198.51.100.x, E.164) reaches an onnet callee (10.2.x.x) at the PBX,
    /// which at 50% of the talk time puts the call through to an external number: an
    /// in-dialog re-INVITE from the callee side whose P-Asserted-Identity names +4940777NNNN.
    /// From and To name `gen.test`.
    TransferExternal,
    /// The caller dials `*48` (pause, at 25% of the talk time) and `*49` (resume, at 65%) as
    /// in-band dual tones in its audio (100 ms per digit, 100 ms apart), no RFC 4733. Every
    /// second call is PCMA.
    InbandDtmf,
    /// One call of every other scenario (both fragment orders) per round; `calls` = rounds.
    Mix,
    /// One call per codec this build can encode ([`Codec::CATALOG`]: G.711, G.722, G.726 in
    /// both packings, G.729, GSM, Speex at 8/16/32 kHz, Opus mono and stereo, AMR and AMR-WB
    /// in both RFC 4867 layouts, L16 at 16 kHz); `calls` = rounds.
    Codecs,
    /// SRTP, five calls per round: SDES keys (RFC 4568) with the answer picking tag 1 of
    /// `AES_CM_128_HMAC_SHA1_80` / `AES_256_CM_HMAC_SHA1_80`, then tag 2, then
    /// `AEAD_AES_128_GCM`; a call that re-keys by re-INVITE at 50% of the talk time; and a
    /// call keyed by DTLS (`UDP/TLS/RTP/SAVPF`, `a=fingerprint`) that no observer can
    /// decrypt. `calls` = calls (default 5).
    Srtp,
    /// Calls one after another between the same two phones on the same RTP ports (a desk
    /// phone's fixed port), each with new SSRCs and its own tones, the next INVITE a second
    /// after the previous BYE (default 3 calls).
    BackToBack,
    /// Through a PBX (a B2BUA at 10.0.0.1, `User-Agent: Asterisk PBX 18.0.0`, media anchored on
    /// its own ports): a phone (10.1.x.x, extension 1NNNN) dials an E.164 number `+4420...`.
    /// Leg A phone → PBX (Request-URI and To `+4420...@10.0.0.1`, From `1NNNN`); leg B PBX →
    /// carrier SBC 192.0.2.1, 20-60 ms after A's INVITE, presenting our DDI `+3491555NNNN` in
    /// From and `P-Asserted-Identity`. The carrier answers, then the PBX answers A; the PBX
    /// relays the payloads unchanged, keeping the SSRCs on even calls and rewriting them on odd
    /// ones. Correlation per call (cycle of 4): `X-CID` on leg B naming leg A's Call-ID,
    /// `Session-ID` (RFC 7989) on both legs, none, none. In every PBX scenario odd
    /// conversations are PCMA, even ones PCMU, and the SSRCs are kept on even conversations.
    /// `calls` = conversations (default 4).
    PbxOutbound,
    /// Through the PBX: the carrier (E.164 caller `+34912...`) calls our DDI `+3491555NNNN`
    /// (Request-URI and To), the PBX calls the phone (extension 2NNNN in the Request-URI, From
    /// the external caller, no `Diversion`). SSRCs and correlation headers as `pbx-outbound`.
    /// `calls` = conversations (default 4).
    PbxInbound,
    /// Through the PBX: the carrier calls a DDI, the PBX rings phone B, B answers, then sends an
    /// in-dialog REFER (`Refer-To` phone C, `Referred-By` B); the PBX answers 202, NOTIFYs
    /// (100 Trying, then 200 OK), calls C with `Referred-By: B` and the external caller in
    /// From, re-INVITEs the carrier leg asserting C (`P-Asserted-Identity`) and BYEs B. The
    /// external caller talks to C on the same carrier leg. `calls` = conversations (default 2).
    BlindTransfer,
    /// Through the PBX: carrier → PBX → phone B; B holds (re-INVITE `sendonly`), calls C through
    /// the PBX (consultation legs B → PBX and PBX → C), then REFERs its first leg with
    /// `Refer-To: <sip:C@10.0.0.1?Replaces=<B's consultation dialog>>`. The PBX calls C on a
    /// new leg whose `Replaces` names the PBX → C consultation dialog (C answers at once and
    /// BYEs the replaced one), BYEs both of B's legs and bridges the carrier leg to C (a new leg,
    /// not the consultation leg re-used). `calls` = conversations (default 2).
    AttendedTransfer,
    /// Through the PBX: the carrier calls a DDI that is forwarded unconditionally to an external
    /// mobile; the PBX calls back out through the carrier with the original caller in From,
    /// `Diversion` (RFC 5806) and `History-Info` (RFC 7044) naming the DDI. The second leg
    /// connects two external parties. `calls` = conversations (default 2).
    ForwardExternal,
    /// Through the PBX: the carrier calls a DDI, phone X rings (180), phone Y picks the call
    /// up: with `INVITE sip:*8@10.0.0.1` (group pickup) on even calls, with a directed pickup
    /// (`Replaces: <the PBX → X early dialog>;early-only`, RFC 3891) on odd ones. The PBX
    /// CANCELs X (487), answers Y (asserting the caller) and then the carrier.
    /// `calls` = conversations (default 2).
    Pickup,
}

impl Scenario {
    /// The scenarios whose traffic goes through the PBX (several legs per conversation).
    pub const PBX: [Scenario; 6] = [
        Scenario::PbxOutbound,
        Scenario::PbxInbound,
        Scenario::BlindTransfer,
        Scenario::AttendedTransfer,
        Scenario::ForwardExternal,
        Scenario::Pickup,
    ];

    /// Whether the scenario's calls go through the PBX.
    pub fn is_pbx(self) -> bool {
        Scenario::PBX.contains(&self)
    }
}

/// Which legs of PBX traffic a capture holds: where the mirror port is.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mirror {
    /// Only the phone ↔ PBX legs (the mirror on the phones' switch); `forward-external` has
    /// none, so its capture is empty.
    Phones,
    /// Only the PBX ↔ carrier legs (the mirror on the trunk side).
    Carrier,
    /// Every leg (the PBX's own port).
    #[default]
    Both,
}

/// Generator settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenConfig {
    pub scenario: Scenario,
    /// Number of calls (for `Mix`: number of rounds of 14 calls; for the PBX scenarios: number
    /// of conversations, each of several legs).
    pub calls: usize,
    /// Talk time (answer → BYE) in seconds; clamped to at least 0.5 s.
    pub talk_secs: f64,
    pub seed: u64,
    /// Capture start (first INVITE is ~100 ms later).
    pub start_unix_secs: u64,
    /// Every call carries this codec instead of the scenario's (G.711 by default). Signalling,
    /// timing and addresses stay those of the scenario; tones may differ (they are picked
    /// from 400-2000 Hz for codecs other than G.711).
    #[serde(default)]
    pub codec: Option<Codec>,
    /// Every call protects its media with SRTP keyed by SDES (`RTP/SAVP`, `a=crypto`).
    #[serde(default)]
    pub srtp: bool,
    /// PBX scenarios: which legs the capture holds (the others' scenarios have one leg).
    #[serde(default)]
    pub mirror: Mirror,
    /// `Concurrent`: about this many milliseconds from the first INVITE to the last (the
    /// same jitter between calls, scaled), and as long again from the first BYE to the last.
    /// `None` (the default): a call every 20-50 ms and a BYE every 5 ms, as always; at that
    /// pace 10,000 calls take 350 s to ramp up.
    #[serde(default)]
    pub ramp_ms: Option<f64>,
}

impl GenConfig {
    /// Defaults: 1 call (Concurrent: 200, FragmentedInvite: 2 so both
    /// fragment orders are present, Srtp: 5; PbxOutbound and PbxInbound: 4 conversations, the
    /// other PBX scenarios 2), 4 s talk, seed 1, 2026-01-01T00:00:00Z, the scenario's codecs,
    /// no SRTP, every leg mirrored, the concurrent calls' own ramp.
    pub fn new(scenario: Scenario) -> Self {
        let calls = match scenario {
            Scenario::Concurrent => 200,
            Scenario::FragmentedInvite | Scenario::ModeHeader => 2,
            Scenario::Srtp => scenario::SRTP_ROUND,
            Scenario::BackToBack => 3,
            Scenario::PbxOutbound | Scenario::PbxInbound => 4,
            s if s.is_pbx() => 2,
            _ => 1,
        };
        GenConfig {
            scenario,
            calls,
            talk_secs: 4.0,
            seed: 1,
            start_unix_secs: DEFAULT_START_UNIX_SECS,
            codec: None,
            srtp: false,
            mirror: Mirror::Both,
            ramp_ms: None,
        }
    }
}

/// One complete Ethernet frame (no FCS) and its capture time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Unix-epoch nanoseconds (whole microseconds).
    pub ts_ns: u64,
    pub data: Vec<u8>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct GroundTruth {
    pub scenario: Scenario,
    pub calls: Vec<CallTruth>,
    /// Number of frames in the capture.
    pub frames: usize,
    /// PBX scenarios: the conversations, each listing its legs (the calls) in the capture.
    /// Empty for scenarios without a PBX, where every call is its own conversation.
    #[serde(default)]
    pub conversations: Vec<ConversationTruth>,
}

/// One conversation between people, carried by one or more legs (SIP dialogs) through the PBX.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct ConversationTruth {
    /// The `conversation` of its legs.
    pub id: usize,
    /// "outbound", "inbound", "blind-transfer", "attended-transfer", "forward-external" or
    /// "pickup".
    pub kind: String,
    /// The Call-IDs of its legs present in the capture, in the order of their INVITEs.
    pub legs: Vec<String>,
    /// The caller and the callee as people, each by their own number: a phone by its
    /// extension, an outside party by its E.164 number (the DDI dialled is in `dialled`).
    pub people: [String; 2],
    /// The people talking at the end: after a transfer or a pickup, the target instead of the
    /// person first called; else the same as `people`.
    pub final_people: [String; 2],
    /// The number the caller dialled: a DDI of ours, an E.164 number or an extension.
    pub dialled: String,
    /// The conversation's direction: "inbound", "outbound", "internal" or
    /// "external-to-external".
    pub direction: String,
    /// What correlation header its legs carry: "x-cid", "session-id" or "none".
    pub correlation: String,
    /// Whether the PBX relays the SSRCs unchanged (else it sends with SSRCs of its own).
    pub relays_ssrc: bool,
    /// How long the people talked in all: the sum of `talk_spans_ns`, seconds.
    pub recorded_secs: f64,
    /// [from, to) absolute ns in which two people were connected through the PBX (a hold,
    /// a transfer's ringing and a pickup's ringing are not in them).
    pub talk_spans_ns: Vec<[u64; 2]>,
}

/// What one channel of a call carries from one time to another, when a transfer changes it.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct ToneSpan {
    /// "left" (caller) or "right" (callee).
    pub channel: String,
    /// Seconds after the answer.
    pub from_secs: f64,
    pub to_secs: f64,
    pub hz: f64,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct CallTruth {
    pub sip_call_id: String,
    pub caller_user: String,
    pub caller_display: Option<String>,
    pub callee_user: String,
    pub answered: bool,
    /// Every answered call is expected to be recorded.
    pub recorded: bool,
    /// The rtpmap's encoding name: "PCMU", "PCMA", "G722", "AMR-WB", "opus"...
    pub codec: String,
    /// The generator's name of the codec setup (`--codec`): "pcmu", "amr-wb-be"...
    #[serde(default)]
    pub codec_id: String,
    /// RTP clock rate of the codec (G.722: 8000 for 16 kHz audio; Opus: 48000).
    #[serde(default = "rate_8000")]
    pub clock_rate: u32,
    /// The `a=fmtp` parameters of the codec in both SDPs (empty when none).
    #[serde(default)]
    pub fmtp: String,
    /// The sample rate the recording must have: 16000 for wide-band codecs, else 8000.
    #[serde(default = "rate_8000")]
    pub record_rate: u32,
    /// How the media is protected: "rtp", "sdes-srtp" or "dtls-srtp".
    #[serde(default = "security_rtp")]
    pub security: String,
    /// The SDES suite the answer picked (its tag), when "sdes-srtp".
    #[serde(default)]
    pub srtp_suite: Option<String>,
    #[serde(default)]
    pub srtp_tag: Option<u32>,
    /// Seconds after the answer from which both sides send with new SDES keys (re-INVITE).
    #[serde(default)]
    pub rekeys_at_secs: Vec<f64>,
    /// What the recording must hold: "complete", or "no-audio" when its media cannot be
    /// decrypted (DTLS-SRTP).
    #[serde(default = "state_complete")]
    pub recording_state: String,
    /// The status every stream must end with: "decoded", or "encrypted".
    #[serde(default = "status_decoded")]
    pub stream_status: String,
    /// Tone sent by the caller (left channel).
    pub caller_tone_hz: f64,
    /// Tone sent by the callee (right channel).
    pub callee_tone_hz: f64,
    /// INVITE time.
    pub start_ns: u64,
    /// 200 OK (to the INVITE) time.
    pub answer_ns: Option<u64>,
    /// BYE time, or the 487 time for a cancelled call.
    pub end_ns: u64,
    /// Answer → BYE, seconds (0 when not answered).
    pub recorded_secs: f64,
    /// Final response to the INVITE (200 or 487).
    pub final_status: u16,
    /// "bye" or "cancelled".
    pub end_reason: String,
    /// Signalling transport, "udp" or "tcp".
    pub transport: String,
    pub dtmf: Vec<DtmfTruth>,
    /// Spans (relative to the answer) where a channel carries no tone (hold).
    pub silent_spans: Vec<SilentSpan>,
    pub rtp_packets_caller: u64,
    pub rtp_packets_callee: u64,
    pub lost_caller: u64,
    pub lost_callee: u64,
    /// On-demand requests sent in the call (SIP INFO record key, media-control MESSAGE).
    #[serde(default)]
    pub controls: Vec<ControlTruth>,
    /// The `X-Record-Mode` of the INVITE, if it had one.
    #[serde(default)]
    pub record_mode: Option<String>,
    // ---- PBX legs (scenarios without a PBX leave these at their defaults) ----------------
    /// The conversation this leg carries (see [`GroundTruth::conversations`]); None for a call
    /// straight between two endpoints.
    #[serde(default)]
    pub conversation: Option<usize>,
    /// The leg's part in its conversation: "phone" (PBX ↔ a phone), "carrier" (PBX ↔ the
    /// carrier), "consultation", "transfer-target", "forward" or "pickup".
    #[serde(default)]
    pub leg: String,
    /// Which mirror sees the leg (`--mirror`): "phones" or "carrier".
    #[serde(default)]
    pub segment: String,
    /// Whether the caller's / callee's signalling in this leg is at a server address (the PBX
    /// 10.0.0.1, the carrier's SBC 192.0.2.1), not a phone.
    #[serde(default)]
    pub via_server: [bool; 2],
    /// Whether the calling / called person is ours: a phone user, or a DDI of ours, is
    /// internal; an E.164 number we do not own is external. In the order of the call, not of
    /// the signalling: a pickup leg is placed by the called person (its caller side, left), so
    /// there `[0]` is its callee side.
    #[serde(default)]
    pub parties_internal: [bool; 2],
    /// The direction a correct recorder gives this leg, from `parties_internal`: "inbound",
    /// "outbound", "internal" or "external-to-external".
    #[serde(default)]
    pub expected_direction: String,
    /// What ties this leg to an earlier leg of its conversation (empty for the first):
    /// "header:X-CID", "header:Session-ID", "header:Diversion", "header:History-Info",
    /// "referred-by", "replaces" (a Replaces, as a header or in a REFER's Refer-To, names this
    /// dialog or an earlier one), "feature-code" (a group pickup's `*8`), "media:ssrc" (the PBX
    /// relays an earlier leg's SSRC into it), "numbers" (a caller or dialled number of an
    /// earlier leg) and "timing" (its INVITE follows an event of an earlier leg by ms).
    #[serde(default)]
    pub link_evidence: Vec<String>,
    /// Whether the PBX sends on this leg the SSRCs it receives on the bridged leg.
    #[serde(default)]
    pub relays_ssrc: bool,
    /// Whether the leg carries both people's audio (with anchored media every answered leg
    /// does, until it is transferred away).
    #[serde(default)]
    pub sees_both_parties: bool,
    /// When a channel carries more than one person's tone (a transfer), the span of each;
    /// empty when the channels keep `caller_tone_hz` and `callee_tone_hz` throughout.
    #[serde(default)]
    pub tone_spans: Vec<ToneSpan>,
}

fn rate_8000() -> u32 {
    8000
}

fn security_rtp() -> String {
    "rtp".into()
}

fn state_complete() -> String {
    "complete".into()
}

fn status_decoded() -> String {
    "decoded".into()
}

/// Why a capture could not be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenError {
    /// This build cannot encode the codec (its C library was missing), or it failed.
    Codec { codec: Codec, why: String },
    /// The SRTP layer refused a key or a packet.
    Srtp(String),
}

impl std::fmt::Display for GenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GenError::Codec { codec, why } => write!(f, "codec {codec}: {why}"),
            GenError::Srtp(why) => write!(f, "SRTP: {why}"),
        }
    }
}

impl std::error::Error for GenError {}

/// An on-demand recording request seen on the wire.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct ControlTruth {
    /// "start", "stop", "pause" or "resume".
    pub action: String,
    /// "caller" or "callee".
    pub side: String,
    /// "sip-info", "message" (in dialog), "message-json" (out of dialog) or "inband" (tones
    /// in the audio).
    pub via: String,
    /// Seconds after the answer (for "inband": the end of the code's last tone).
    pub at_secs: f64,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct DtmfTruth {
    pub digit: char,
    /// "caller" or "callee".
    pub side: String,
    /// Event start, seconds after the answer.
    pub at_secs: f64,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct SilentSpan {
    /// "left" (caller) or "right" (callee).
    pub channel: String,
    pub from_secs: f64,
    pub to_secs: f64,
}

/// Generate the capture for `cfg`: frames sorted by time, plus ground truth.
///
/// # Panics
///
/// When [`try_generate`] fails: only with a [`GenConfig::codec`] this build cannot encode.
pub fn generate(cfg: &GenConfig) -> (Vec<Frame>, GroundTruth) {
    try_generate(cfg).unwrap_or_else(|e| panic!("voxtap-gen: {e}"))
}

/// Generate the capture for `cfg`: frames sorted by time, plus ground truth; an error when
/// a codec cannot be encoded by this build.
pub fn try_generate(cfg: &GenConfig) -> Result<(Vec<Frame>, GroundTruth), GenError> {
    if let Some(codec) = cfg.codec {
        codec
            .encoder_available()
            .map_err(|why| GenError::Codec { codec, why })?;
    }
    if cfg.scenario.is_pbx() {
        let (frames, calls, conversations) = pbx::generate(cfg)?;
        let n = frames.len();
        return Ok((
            frames,
            GroundTruth {
                scenario: cfg.scenario,
                calls,
                frames: n,
                conversations,
            },
        ));
    }
    let specs = scenario::plan(cfg);
    let mut frames = Vec::new();
    let mut calls = Vec::with_capacity(specs.len());
    for spec in &specs {
        let (f, t) = call::generate_call(spec)?;
        frames.extend(f);
        calls.push(t);
    }
    frames.sort_by_key(|f| f.ts_ns); // stable: keeps intra-call order for equal stamps
    let n = frames.len();
    Ok((
        frames,
        GroundTruth {
            scenario: cfg.scenario,
            calls,
            frames: n,
            conversations: Vec::new(),
        },
    ))
}
