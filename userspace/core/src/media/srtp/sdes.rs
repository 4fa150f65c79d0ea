//! `a=crypto` values: SDP security descriptions (RFC 4568 §9.1), the SDES keys for SRTP.

use super::suite::SrtpSuite;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use core::fmt;

/// More `inline:` keys than this on one line is [`SdesError::TooManyKeys`].
pub const MAX_KEYS: usize = 16;
/// RFC 4568 §9.1: `mki-length = 1*3DIGIT ; range 1..128`.
pub const MAX_MKI_LEN: usize = 128;
/// `KDR=n` is 0..=24 (RFC 4568 §6.3.1).
pub const MAX_KDR: u8 = 24;
/// Unknown session parameters kept, each at most [`MAX_PARAM_LEN`] bytes.
pub const MAX_OTHER_PARAMS: usize = 16;
pub const MAX_PARAM_LEN: usize = 128;

/// Why an `a=crypto` value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdesError {
    #[error("a=crypto: missing or malformed tag")]
    BadTag,
    #[error("a=crypto: no crypto suite")]
    MissingSuite,
    /// A suite voxtap does not implement (F8, SEED, a future one): the media is encrypted and
    /// cannot be recorded.
    #[error("encrypted with unsupported SRTP suite {0}")]
    UnknownSuite(String),
    #[error("a=crypto: no key parameters")]
    MissingKey,
    /// Only `inline:` exists (RFC 4568 §6.1); any other method carries no key we can read.
    #[error("a=crypto: key method {0:?} is not inline")]
    UnsupportedKeyMethod(String),
    #[error("a=crypto: key is not base64")]
    BadBase64,
    #[error("a=crypto: {suite} needs {expected} bytes of key and salt, got {got}")]
    BadKeyLength {
        suite: SrtpSuite,
        expected: usize,
        got: usize,
    },
    #[error("a=crypto: malformed key lifetime")]
    BadLifetime,
    #[error("a=crypto: malformed MKI")]
    BadMki,
    /// Several keys need an MKI each, all of one length, all distinct (RFC 4568 §6.1).
    #[error("a=crypto: keys without distinct MKIs of one length")]
    InconsistentMki,
    #[error("a=crypto: more than {MAX_KEYS} keys")]
    TooManyKeys,
    #[error("a=crypto: bad session parameter {0:?}")]
    BadSessionParam(String),
}

/// An MKI (RFC 3711 §3.1): `value` written big-endian in `len` bytes in each packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mki {
    pub value: u64,
    /// 1..=128 bytes.
    pub len: u8,
}

impl Mki {
    /// The MKI as it appears in packets.
    pub fn write(&self, out: &mut Vec<u8>) {
        let len = usize::from(self.len);
        let be = self.value.to_be_bytes();
        if len >= be.len() {
            out.extend(core::iter::repeat_n(0, len - be.len()));
            out.extend_from_slice(&be);
        } else {
            out.extend_from_slice(&be[be.len() - len..]);
        }
    }

    fn fits(&self) -> bool {
        let len = usize::from(self.len);
        (1..=MAX_MKI_LEN).contains(&len) && (len >= 8 || self.value >> (8 * len) == 0)
    }
}

/// One `inline:` key of an `a=crypto` line (RFC 4568 §6.1).
#[derive(Clone, PartialEq, Eq)]
pub struct InlineKey {
    /// The master key: 16, 24 or 32 bytes by suite.
    pub key: Vec<u8>,
    /// The master salt: 14 bytes, 12 for GCM.
    pub salt: Vec<u8>,
    /// Packets the key may protect; `None` when not given (the suite's maximum applies).
    pub lifetime: Option<u64>,
    pub mki: Option<Mki>,
}

impl InlineKey {
    /// Splits `key_salt` (master key then master salt) for `suite`.
    pub fn new(suite: SrtpSuite, key_salt: &[u8]) -> Result<InlineKey, SdesError> {
        if key_salt.len() != suite.key_salt_len() {
            return Err(SdesError::BadKeyLength {
                suite,
                expected: suite.key_salt_len(),
                got: key_salt.len(),
            });
        }
        let (key, salt) = key_salt.split_at(suite.master_key_len());
        Ok(InlineKey {
            key: key.to_vec(),
            salt: salt.to_vec(),
            lifetime: None,
            mki: None,
        })
    }
}

/// Keys must not end up in logs: Debug shows their lengths only.
impl fmt::Debug for InlineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InlineKey")
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("salt", &format_args!("<{} bytes>", self.salt.len()))
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .finish()
    }
}

/// `FEC_ORDER` (RFC 4568 §6.3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FecOrder {
    /// FEC before SRTP on the sending side (the default).
    FecSrtp,
    SrtpFec,
}

/// Session parameters (RFC 4568 §6.3).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SessionParams {
    /// `KDR=n`: keys are derived again every 2^n packets (RFC 3711 §4.3.1). `None`: once.
    pub kdr: Option<u8>,
    /// RTP payloads are sent in the clear (authenticated still).
    pub unencrypted_srtp: bool,
    /// RTCP in the clear; the SRTCP E flag tells per packet (RFC 3711 §3.4).
    pub unencrypted_srtcp: bool,
    /// No authentication tag on SRTP; SRTCP is always authenticated (RFC 4568 §6.3.3).
    pub unauthenticated_srtp: bool,
    pub fec_order: Option<FecOrder>,
    /// `FEC_KEY=` as written: keys for a separate FEC stream, which voxtap does not decode.
    pub fec_key: Option<String>,
    /// `WSH=n`: the replay window the sender suggests (RFC 4568 §6.3.6).
    pub window_size_hint: Option<u32>,
    /// Parameters not known here, as written (bounded); `-` marks optional ones (§6.3.7).
    pub other: Vec<String>,
}

/// A parsed `a=crypto` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoAttr {
    /// Matches an answer's line to the offer's (RFC 4568 §5.1.2).
    pub tag: u32,
    pub suite: SrtpSuite,
    /// At least one; several only with MKIs.
    pub keys: Vec<InlineKey>,
    pub params: SessionParams,
}

fn lenient_base64() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

fn strict_base64() -> GeneralPurpose {
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new())
}

fn digits(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
}

/// `["2^"] 1*DIGIT` (RFC 4568 §6.1).
fn parse_lifetime(s: &str) -> Result<u64, SdesError> {
    let value = if let Some(exp) = s.strip_prefix("2^") {
        if !digits(exp, 2) {
            return Err(SdesError::BadLifetime);
        }
        let exp: u32 = exp.parse().map_err(|_| SdesError::BadLifetime)?;
        1u64.checked_shl(exp)
            .filter(|_| exp < 64)
            .ok_or(SdesError::BadLifetime)?
    } else {
        if !digits(s, 20) {
            return Err(SdesError::BadLifetime);
        }
        s.parse().map_err(|_| SdesError::BadLifetime)?
    };
    if value == 0 {
        return Err(SdesError::BadLifetime);
    }
    Ok(value)
}

/// `mki-value ":" mki-length` (RFC 4568 §9.1).
fn parse_mki(s: &str) -> Result<Mki, SdesError> {
    let (value, len) = s.split_once(':').ok_or(SdesError::BadMki)?;
    if !digits(value, 20) || !digits(len, 3) {
        return Err(SdesError::BadMki);
    }
    let mki = Mki {
        value: value.parse().map_err(|_| SdesError::BadMki)?,
        len: len.parse().map_err(|_| SdesError::BadMki)?,
    };
    if !mki.fits() {
        return Err(SdesError::BadMki);
    }
    Ok(mki)
}

/// `"inline:" key-salt ["|" lifetime] ["|" mki]` (RFC 4568 §6.1).
fn parse_key_param(suite: SrtpSuite, param: &str) -> Result<InlineKey, SdesError> {
    let (method, info) = param.split_once(':').ok_or(SdesError::MissingKey)?;
    if !method.eq_ignore_ascii_case("inline") {
        return Err(SdesError::UnsupportedKeyMethod(bounded(method)));
    }
    let mut parts = info.split('|');
    let b64 = parts.next().unwrap_or_default();
    let key_salt = lenient_base64()
        .decode(b64)
        .map_err(|_| SdesError::BadBase64)?;
    let mut key = InlineKey::new(suite, &key_salt)?;
    let rest: Vec<&str> = parts.collect();
    match rest.as_slice() {
        [] => {}
        // A lone field is the MKI when it has the colon, else the lifetime.
        [one] if one.contains(':') => key.mki = Some(parse_mki(one)?),
        [one] => key.lifetime = Some(parse_lifetime(one)?),
        [lifetime, mki] => {
            key.lifetime = Some(parse_lifetime(lifetime)?);
            key.mki = Some(parse_mki(mki)?);
        }
        _ => return Err(SdesError::BadMki),
    }
    Ok(key)
}

fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_PARAM_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl SessionParams {
    fn apply(&mut self, param: &str) -> Result<(), SdesError> {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (param, None),
        };
        let bad = || SdesError::BadSessionParam(bounded(param));
        let is = |s: &str| name.eq_ignore_ascii_case(s);
        match value {
            None if is("UNENCRYPTED_SRTP") => self.unencrypted_srtp = true,
            None if is("UNENCRYPTED_SRTCP") => self.unencrypted_srtcp = true,
            None if is("UNAUTHENTICATED_SRTP") => self.unauthenticated_srtp = true,
            Some(v) if is("KDR") => {
                if !digits(v, 2) {
                    return Err(bad());
                }
                let n: u8 = v.parse().map_err(|_| bad())?;
                if n > MAX_KDR {
                    return Err(bad());
                }
                self.kdr = Some(n);
            }
            Some(v) if is("FEC_ORDER") => {
                self.fec_order = Some(if v.eq_ignore_ascii_case("FEC_SRTP") {
                    FecOrder::FecSrtp
                } else if v.eq_ignore_ascii_case("SRTP_FEC") {
                    FecOrder::SrtpFec
                } else {
                    return Err(bad());
                });
            }
            Some(v) if is("FEC_KEY") => self.fec_key = Some(bounded(v)),
            Some(v) if is("WSH") => {
                if !digits(v, 10) {
                    return Err(bad());
                }
                self.window_size_hint = Some(v.parse().map_err(|_| bad())?);
            }
            _ => {
                if self.other.len() < MAX_OTHER_PARAMS {
                    self.other.push(bounded(param));
                }
            }
        }
        Ok(())
    }
}

impl CryptoAttr {
    /// Parses an `a=crypto` value as [`crate::sdp::MediaDescription::crypto`] keeps it
    /// (`1 AES_CM_128_HMAC_SHA1_80 inline:...`); a leading `a=crypto:` or `crypto:` is allowed.
    pub fn parse(value: &str) -> Result<CryptoAttr, SdesError> {
        let mut s = value.trim();
        for prefix in ["a=", "crypto:"] {
            if s.len() >= prefix.len()
                && s.is_char_boundary(prefix.len())
                && s[..prefix.len()].eq_ignore_ascii_case(prefix)
            {
                s = &s[prefix.len()..];
            }
        }
        let mut fields = s.split_ascii_whitespace();
        let tag = fields.next().ok_or(SdesError::BadTag)?;
        if !digits(tag, 9) {
            return Err(SdesError::BadTag);
        }
        let tag = tag.parse().map_err(|_| SdesError::BadTag)?;
        let suite_name = fields.next().ok_or(SdesError::MissingSuite)?;
        let suite = SrtpSuite::from_name(suite_name)
            .ok_or_else(|| SdesError::UnknownSuite(bounded(suite_name)))?;
        let key_params = fields.next().ok_or(SdesError::MissingKey)?;
        let mut keys = Vec::new();
        for param in key_params.split(';') {
            if keys.len() == MAX_KEYS {
                return Err(SdesError::TooManyKeys);
            }
            keys.push(parse_key_param(suite, param)?);
        }
        let mut params = SessionParams::default();
        for param in fields {
            params.apply(param)?;
        }
        let attr = CryptoAttr {
            tag,
            suite,
            keys,
            params,
        };
        attr.validate()?;
        Ok(attr)
    }

    /// The checks [`CryptoAttr::parse`] makes, for values built by hand.
    pub fn validate(&self) -> Result<(), SdesError> {
        let first = self.keys.first().ok_or(SdesError::MissingKey)?;
        if self.keys.len() > MAX_KEYS {
            return Err(SdesError::TooManyKeys);
        }
        for k in &self.keys {
            if k.key.len() != self.suite.master_key_len()
                || k.salt.len() != self.suite.master_salt_len()
            {
                return Err(SdesError::BadKeyLength {
                    suite: self.suite,
                    expected: self.suite.key_salt_len(),
                    got: k.key.len() + k.salt.len(),
                });
            }
            if k.lifetime == Some(0) {
                return Err(SdesError::BadLifetime);
            }
            if let Some(m) = k.mki
                && !m.fits()
            {
                return Err(SdesError::BadMki);
            }
        }
        // RFC 4568 §6.1: with several keys the MKI tells them apart.
        let mki_len = first.mki.map(|m| m.len);
        if self.keys.iter().any(|k| k.mki.map(|m| m.len) != mki_len)
            || (self.keys.len() > 1 && mki_len.is_none())
        {
            return Err(SdesError::InconsistentMki);
        }
        for (i, a) in self.keys.iter().enumerate() {
            if self.keys[..i].iter().any(|b| b.mki == a.mki) {
                return Err(SdesError::InconsistentMki);
            }
        }
        if let Some(kdr) = self.params.kdr
            && kdr > MAX_KDR
        {
            return Err(SdesError::BadSessionParam(format!("KDR={kdr}")));
        }
        // AEAD always encrypts and authenticates SRTP together (RFC 7714 §5); only SRTCP
        // may go unencrypted, through its E flag (§9.2).
        if self.suite.is_aead() {
            if self.params.unauthenticated_srtp {
                return Err(SdesError::BadSessionParam("UNAUTHENTICATED_SRTP".into()));
            }
            if self.params.unencrypted_srtp {
                return Err(SdesError::BadSessionParam("UNENCRYPTED_SRTP".into()));
            }
        }
        Ok(())
    }

    /// Width of the MKI field in packets (0 without MKI).
    pub fn mki_len(&self) -> usize {
        self.keys
            .first()
            .and_then(|k| k.mki)
            .map_or(0, |m| usize::from(m.len))
    }
}

/// The value as it goes after `a=crypto:`, keys included: for generators and tests.
impl fmt::Display for CryptoAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.tag, self.suite)?;
        for (i, k) in self.keys.iter().enumerate() {
            let mut key_salt = k.key.clone();
            key_salt.extend_from_slice(&k.salt);
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "inline:{}", strict_base64().encode(&key_salt))?;
            match k.lifetime {
                Some(l) if l.is_power_of_two() => write!(f, "|2^{}", l.trailing_zeros())?,
                Some(l) => write!(f, "|{l}")?,
                None => {}
            }
            if let Some(m) = k.mki {
                write!(f, "|{}:{}", m.value, m.len)?;
            }
        }
        let p = &self.params;
        if let Some(kdr) = p.kdr {
            write!(f, " KDR={kdr}")?;
        }
        for (set, name) in [
            (p.unencrypted_srtp, "UNENCRYPTED_SRTP"),
            (p.unencrypted_srtcp, "UNENCRYPTED_SRTCP"),
            (p.unauthenticated_srtp, "UNAUTHENTICATED_SRTP"),
        ] {
            if set {
                write!(f, " {name}")?;
            }
        }
        match p.fec_order {
            Some(FecOrder::FecSrtp) => f.write_str(" FEC_ORDER=FEC_SRTP")?,
            Some(FecOrder::SrtpFec) => f.write_str(" FEC_ORDER=SRTP_FEC")?,
            None => {}
        }
        if let Some(k) = &p.fec_key {
            write!(f, " FEC_KEY={k}")?;
        }
        if let Some(w) = p.window_size_hint {
            write!(f, " WSH={w}")?;
        }
        for o in &p.other {
            write!(f, " {o}")?;
        }
        Ok(())
    }
}
