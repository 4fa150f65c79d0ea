//! SRTP crypto suites as SDES names them (RFC 4568 §6.2, RFC 6188 §3, RFC 7714 §14.1).

use core::fmt;

/// A crypto suite of an `a=crypto` line: the cipher, the authentication and the key sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// RFC 4568 §6.2.1.
    AesCm128HmacSha1_80,
    /// RFC 4568 §6.2.2: 32-bit tag on SRTP only; SRTCP keeps 80 bits.
    AesCm128HmacSha1_32,
    /// RFC 6188 §3.
    AesCm192HmacSha1_80,
    AesCm192HmacSha1_32,
    /// RFC 6188 §3.
    AesCm256HmacSha1_80,
    AesCm256HmacSha1_32,
    /// RFC 7714 §14.1.
    AeadAes128Gcm,
    AeadAes256Gcm,
    /// No RFC names these, but rtpengine, pjsip and others write them: no encryption,
    /// HMAC-SHA1, keys derived from a 128-bit master key (libsrtp's `null_sha1_80` profile).
    NullHmacSha1_80,
    NullHmacSha1_32,
}

/// The cipher a suite encrypts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CipherKind {
    Null,
    AesCm,
    AesGcm,
}

impl SrtpSuite {
    pub const ALL: [SrtpSuite; 10] = [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::AesCm192HmacSha1_80,
        SrtpSuite::AesCm192HmacSha1_32,
        SrtpSuite::AesCm256HmacSha1_80,
        SrtpSuite::AesCm256HmacSha1_32,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AeadAes256Gcm,
        SrtpSuite::NullHmacSha1_80,
        SrtpSuite::NullHmacSha1_32,
    ];

    /// The name as written in SDP.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::AesCm192HmacSha1_80 => "AES_192_CM_HMAC_SHA1_80",
            SrtpSuite::AesCm192HmacSha1_32 => "AES_192_CM_HMAC_SHA1_32",
            SrtpSuite::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            SrtpSuite::AesCm256HmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
            SrtpSuite::NullHmacSha1_80 => "NULL_HMAC_SHA1_80",
            SrtpSuite::NullHmacSha1_32 => "NULL_HMAC_SHA1_32",
        }
    }

    /// ABNF string literals are case-insensitive (RFC 5234 §2.3), so the names are too. The
    /// RFC 6188 names are also accepted in the `AES_CM_256_...` order some endpoints write.
    pub fn from_name(name: &str) -> Option<SrtpSuite> {
        const ALIASES: [(&str, SrtpSuite); 4] = [
            ("AES_CM_192_HMAC_SHA1_80", SrtpSuite::AesCm192HmacSha1_80),
            ("AES_CM_192_HMAC_SHA1_32", SrtpSuite::AesCm192HmacSha1_32),
            ("AES_CM_256_HMAC_SHA1_80", SrtpSuite::AesCm256HmacSha1_80),
            ("AES_CM_256_HMAC_SHA1_32", SrtpSuite::AesCm256HmacSha1_32),
        ];
        SrtpSuite::ALL
            .into_iter()
            .map(|s| (s.name(), s))
            .chain(ALIASES)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, s)| s)
    }

    pub(crate) fn cipher(self) -> CipherKind {
        match self {
            SrtpSuite::NullHmacSha1_80 | SrtpSuite::NullHmacSha1_32 => CipherKind::Null,
            SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => CipherKind::AesGcm,
            _ => CipherKind::AesCm,
        }
    }

    /// AEAD suites authenticate with the cipher; the others with HMAC-SHA1.
    pub fn is_aead(self) -> bool {
        self.cipher() == CipherKind::AesGcm
    }

    /// Master key length in bytes; also the session encryption key length.
    pub fn master_key_len(self) -> usize {
        match self {
            SrtpSuite::AesCm192HmacSha1_80 | SrtpSuite::AesCm192HmacSha1_32 => 24,
            SrtpSuite::AesCm256HmacSha1_80
            | SrtpSuite::AesCm256HmacSha1_32
            | SrtpSuite::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes: 112 bits, 96 for GCM (RFC 7714 §12); also the session
    /// salt length.
    pub fn master_salt_len(self) -> usize {
        if self.is_aead() { 12 } else { 14 }
    }

    /// Bytes of the `inline:` key: master key then master salt (RFC 4568 §6.1).
    pub fn key_salt_len(self) -> usize {
        self.master_key_len() + self.master_salt_len()
    }

    /// Authentication tag appended to SRTP packets.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => 16,
            SrtpSuite::AesCm128HmacSha1_32
            | SrtpSuite::AesCm192HmacSha1_32
            | SrtpSuite::AesCm256HmacSha1_32
            | SrtpSuite::NullHmacSha1_32 => 4,
            _ => 10,
        }
    }

    /// Authentication tag appended to SRTCP packets: the `_32` suites still use 80 bits
    /// there (RFC 4568 §6.2.2, RFC 6188 §3).
    pub fn rtcp_tag_len(self) -> usize {
        if self.is_aead() { 16 } else { 10 }
    }

    /// Largest key lifetime in packets (RFC 3711 §3.2.1: 2^48 for SRTP).
    pub fn max_lifetime(self) -> u64 {
        1 << 48
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
