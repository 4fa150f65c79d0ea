//! Key derivation and the per-packet transforms, with expanded cipher and HMAC states.

use super::packet::{RTCP_HEADER_LEN, SRTCP_TRAILER_LEN, SrtcpPacket, SrtpPacket};
use super::suite::{CipherKind, SrtpSuite};
use aes::{Aes128Enc, Aes192Enc, Aes256Enc};
use aes_gcm::{AeadInOut, Aes128Gcm, Aes256Gcm};
use cipher::{InOutBuf, InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use ctr::CtrCore;
use ctr::flavors::Ctr128BE;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// HMAC-SHA1 session authentication key: 160 bits (RFC 3711 §8.2).
const AUTH_KEY_LEN: usize = 20;
const GCM_TAG_LEN: usize = 16;
const CM_SALT_LEN: usize = 14;
const GCM_SALT_LEN: usize = 12;

/// Key derivation labels (RFC 3711 §4.3.1, §4.3.2).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Labels {
    pub encryption: u8,
    pub auth: u8,
    pub salt: u8,
}

pub(crate) const RTP_LABELS: Labels = Labels {
    encryption: 0,
    auth: 1,
    salt: 2,
};
pub(crate) const RTCP_LABELS: Labels = Labels {
    encryption: 3,
    auth: 4,
    salt: 5,
};

/// Best-effort clearing of a derived key once it is expanded into a cipher state.
fn wipe(b: &mut [u8]) {
    b.fill(0);
    core::hint::black_box(b);
}

/// AES in counter mode (RFC 3711 §4.1.1) with the key schedule expanded once.
#[derive(Clone)]
pub(crate) enum AesCtr {
    A128(Aes128Enc),
    A192(Aes192Enc),
    A256(Aes256Enc),
}

fn ctr_apply<C: cipher::BlockCipherEncrypt<BlockSize = cipher::consts::U16>>(
    cipher: &C,
    iv: &[u8; 16],
    buf: &mut [u8],
) {
    let core = CtrCore::<&C, Ctr128BE>::inner_iv_init(cipher, &(*iv).into());
    StreamCipherCoreWrapper::from_core(core).apply_keystream(buf);
}

impl AesCtr {
    pub fn new(key: &[u8]) -> Option<AesCtr> {
        Some(match key.len() {
            16 => AesCtr::A128(Aes128Enc::new_from_slice(key).ok()?),
            24 => AesCtr::A192(Aes192Enc::new_from_slice(key).ok()?),
            32 => AesCtr::A256(Aes256Enc::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    /// XORs the keystream that starts at counter `iv` into `buf`.
    pub fn apply(&self, iv: &[u8; 16], buf: &mut [u8]) {
        match self {
            AesCtr::A128(c) => ctr_apply(c, iv, buf),
            AesCtr::A192(c) => ctr_apply(c, iv, buf),
            AesCtr::A256(c) => ctr_apply(c, iv, buf),
        }
    }
}

/// The PRF of RFC 3711 §4.3.3: AES-CM keyed with the master key, IV = (key_id XOR salt)·2^16
/// where key_id = label || r (§4.3.1). GCM's 96-bit master salt is padded with zeros on the
/// right to 112 bits (RFC 7714 §11 as libsrtp and pion read it; see cisco/libsrtp#179).
pub(crate) fn kdf(prf: &AesCtr, master_salt: &[u8], label: u8, r: u64, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    let n = master_salt.len().min(CM_SALT_LEN);
    iv[..n].copy_from_slice(&master_salt[..n]);
    iv[7] ^= label;
    let r = r.to_be_bytes();
    for (d, s) in iv[8..14].iter_mut().zip(&r[2..]) {
        *d ^= s;
    }
    out.fill(0);
    prf.apply(&iv, out);
}

#[derive(Clone)]
pub(crate) enum Gcm {
    A128(Aes128Gcm),
    A256(Aes256Gcm),
}

impl Gcm {
    fn new(key: &[u8]) -> Option<Gcm> {
        Some(match key.len() {
            16 => Gcm::A128(Aes128Gcm::new_from_slice(key).ok()?),
            32 => Gcm::A256(Aes256Gcm::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    /// Decrypts `ct` into `out` (same length) when the tag verifies; `out` is untouched
    /// otherwise.
    fn open(&self, nonce: &[u8; 12], aad: &[u8], ct: &[u8], out: &mut [u8], tag: &[u8]) -> bool {
        let Ok(buf) = InOutBuf::new(ct, out) else {
            return false;
        };
        let Ok(tag) = <&[u8; GCM_TAG_LEN]>::try_from(tag) else {
            return false;
        };
        let nonce = &(*nonce).into();
        let tag = &(*tag).into();
        match self {
            Gcm::A128(g) => g.decrypt_inout_detached(nonce, aad, buf, tag).is_ok(),
            Gcm::A256(g) => g.decrypt_inout_detached(nonce, aad, buf, tag).is_ok(),
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; GCM_TAG_LEN] {
        let nonce = &(*nonce).into();
        let tag = match self {
            Gcm::A128(g) => g.encrypt_inout_detached(nonce, aad, buf.into()),
            Gcm::A256(g) => g.encrypt_inout_detached(nonce, aad, buf.into()),
        };
        // Only lengths beyond 2^36 bytes fail, which no packet has.
        tag.map(Into::into).unwrap_or([0; GCM_TAG_LEN])
    }
}

/// What a direction gets: the `UNENCRYPTED_*` / `UNAUTHENTICATED_SRTP` switches and its tag.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Services {
    pub encrypt: bool,
    pub authenticate: bool,
    pub tag_len: usize,
}

/// The session keys of one direction (SRTP or SRTCP), ready to use.
// One per key and direction, built once and never moved per packet: the size is harmless.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum Transform {
    /// AES-CM or NULL encryption with HMAC-SHA1 (RFC 3711 §4.1.1, §4.2.1).
    Hmac {
        /// `None`: NULL cipher or `UNENCRYPTED_*`.
        cipher: Option<AesCtr>,
        salt: [u8; CM_SALT_LEN],
        /// Keyed once; cloned per packet. `None`: `UNAUTHENTICATED_SRTP`.
        auth: Option<Hmac<Sha1>>,
        tag_len: usize,
    },
    /// AEAD_AES_*_GCM (RFC 7714).
    Gcm { aead: Gcm, salt: [u8; GCM_SALT_LEN] },
}

impl Transform {
    /// Derives the session keys for `labels` at r = index DIV key_derivation_rate.
    pub fn derive(
        suite: SrtpSuite,
        prf: &AesCtr,
        master_salt: &[u8],
        labels: Labels,
        r: u64,
        services: Services,
    ) -> Option<Transform> {
        let Services {
            encrypt,
            authenticate,
            tag_len,
        } = services;
        let key_len = suite.master_key_len();
        let mut key = [0u8; 32];
        let key = &mut key[..key_len];
        let t = match suite.cipher() {
            CipherKind::AesGcm => {
                kdf(prf, master_salt, labels.encryption, r, key);
                let mut salt = [0u8; GCM_SALT_LEN];
                kdf(prf, master_salt, labels.salt, r, &mut salt);
                Transform::Gcm {
                    aead: Gcm::new(key)?,
                    salt,
                }
            }
            kind => {
                let cipher = if kind == CipherKind::AesCm && encrypt {
                    kdf(prf, master_salt, labels.encryption, r, key);
                    Some(AesCtr::new(key)?)
                } else {
                    None
                };
                let mut salt = [0u8; CM_SALT_LEN];
                kdf(prf, master_salt, labels.salt, r, &mut salt);
                let auth = if authenticate {
                    let mut k = [0u8; AUTH_KEY_LEN];
                    kdf(prf, master_salt, labels.auth, r, &mut k);
                    let mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&k).ok();
                    wipe(&mut k);
                    Some(mac?)
                } else {
                    None
                };
                Transform::Hmac {
                    cipher,
                    salt,
                    auth,
                    tag_len,
                }
            }
        };
        wipe(key);
        Some(t)
    }

    /// From session keys directly, for the RFC vectors that give no master key.
    #[cfg(test)]
    pub fn from_session_keys(
        key: &[u8],
        salt: &[u8],
        auth_key: Option<&[u8]>,
        tag_len: usize,
    ) -> Transform {
        match auth_key {
            None if salt.len() == GCM_SALT_LEN => Transform::Gcm {
                aead: Gcm::new(key).expect("GCM key length"),
                salt: salt.try_into().expect("salt length"),
            },
            _ => Transform::Hmac {
                cipher: AesCtr::new(key),
                salt: salt.try_into().expect("salt length"),
                auth: auth_key.map(|k| <Hmac<Sha1> as KeyInit>::new_from_slice(k).expect("any")),
                tag_len,
            },
        }
    }
}

/// AES-CM IV = (k_s·2^16) XOR (SSRC·2^64) XOR (i·2^16) (RFC 3711 §4.1.1).
pub(crate) fn cm_iv(salt: &[u8; CM_SALT_LEN], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..CM_SALT_LEN].copy_from_slice(salt);
    for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *d ^= s;
    }
    for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *d ^= s;
    }
    iv
}

/// GCM SRTP IV = (00 00 || SSRC || ROC || SEQ) XOR salt (RFC 7714 §8.1).
fn gcm_rtp_iv(salt: &[u8; GCM_SALT_LEN], ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    for (d, s) in iv.iter_mut().zip(salt) {
        *d ^= s;
    }
    iv
}

/// GCM SRTCP IV = (00 00 || SSRC || 00 00 || 0 || SRTCP index) XOR salt (RFC 7714 §9.1).
fn gcm_rtcp_iv(salt: &[u8; GCM_SALT_LEN], ssrc: u32, index: u32) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&(index & 0x7fff_ffff).to_be_bytes());
    for (d, s) in iv.iter_mut().zip(salt) {
        *d ^= s;
    }
    iv
}

/// RFC 3711 §4.2: tag = HMAC(k_a, M) truncated, M = authenticated portion || ROC for SRTP.
fn hmac_verify(auth: &Hmac<Sha1>, data: &[u8], roc: Option<u32>, tag: &[u8]) -> bool {
    let mut m = auth.clone();
    m.update(data);
    if let Some(roc) = roc {
        m.update(&roc.to_be_bytes());
    }
    m.verify_truncated_left(tag).is_ok()
}

fn hmac_tag(auth: &Hmac<Sha1>, data: &[u8], roc: Option<u32>) -> [u8; 20] {
    let mut m = auth.clone();
    m.update(data);
    if let Some(roc) = roc {
        m.update(&roc.to_be_bytes());
    }
    m.finalize().into_bytes().into()
}

/// What is known of the packet when a candidate ROC is tried.
pub(crate) fn rtp_index(roc: u32, seq: u16) -> u64 {
    (u64::from(roc) << 16) | u64::from(seq)
}

/// RFC 3711 §3.3 steps 4-6 for one candidate ROC: authenticate, then decrypt into `out`
/// (header and payload). Returns false when authentication fails.
pub(crate) fn rtp_open(
    t: &Transform,
    pkt: &SrtpPacket<&[u8]>,
    roc: u32,
    out: &mut Vec<u8>,
) -> bool {
    let header = pkt.header();
    let payload = pkt.payload();
    match t {
        Transform::Hmac {
            cipher, salt, auth, ..
        } => {
            if let Some(auth) = auth
                && !hmac_verify(auth, pkt.authenticated(), Some(roc), pkt.tag())
            {
                return false;
            }
            out.clear();
            out.extend_from_slice(pkt.authenticated());
            if let Some(c) = cipher {
                let index = rtp_index(roc, pkt.sequence_number());
                c.apply(&cm_iv(salt, pkt.ssrc(), index), &mut out[header.len()..]);
            }
            true
        }
        Transform::Gcm { aead, salt } => {
            out.clear();
            out.extend_from_slice(header);
            out.resize(header.len() + payload.len(), 0);
            let iv = gcm_rtp_iv(salt, pkt.ssrc(), roc, pkt.sequence_number());
            aead.open(&iv, header, payload, &mut out[header.len()..], pkt.tag())
        }
    }
}

/// RFC 3711 §3.3 for the sender: `out` gets header, encrypted payload, MKI and tag.
pub(crate) fn rtp_seal(
    t: &Transform,
    packet: &[u8],
    header_len: usize,
    roc: u32,
    mki: &[u8],
    out: &mut Vec<u8>,
) {
    let pkt = SrtpPacket::new_unchecked_header(packet, header_len);
    let (ssrc, seq) = (pkt.ssrc(), pkt.sequence_number());
    out.clear();
    out.extend_from_slice(packet);
    match t {
        Transform::Hmac {
            cipher,
            salt,
            auth,
            tag_len,
        } => {
            if let Some(c) = cipher {
                let iv = cm_iv(salt, ssrc, rtp_index(roc, seq));
                c.apply(&iv, &mut out[header_len..]);
            }
            let tag = auth.as_ref().map(|a| hmac_tag(a, out, Some(roc)));
            out.extend_from_slice(mki);
            if let Some(tag) = tag {
                out.extend_from_slice(&tag[..*tag_len]);
            }
        }
        Transform::Gcm { aead, salt } => {
            let iv = gcm_rtp_iv(salt, ssrc, roc, seq);
            let (header, payload) = out.split_at_mut(header_len);
            let tag = aead.seal(&iv, header, payload);
            out.extend_from_slice(&tag);
            out.extend_from_slice(mki);
        }
    }
}

/// RFC 3711 §3.4 (RFC 7714 §9 for GCM): authenticate, then decrypt when the E flag says so.
/// `out` gets the plain RTCP compound packet.
pub(crate) fn rtcp_open(t: &Transform, pkt: &SrtcpPacket<&[u8]>, out: &mut Vec<u8>) -> bool {
    let header = pkt.header();
    let payload = pkt.payload();
    match t {
        Transform::Hmac {
            cipher, salt, auth, ..
        } => {
            // SRTCP is always authenticated (RFC 3711 §3.4).
            let Some(auth) = auth else {
                return false;
            };
            if !hmac_verify(auth, pkt.authenticated(), None, pkt.tag()) {
                return false;
            }
            out.clear();
            out.extend_from_slice(header);
            out.extend_from_slice(payload);
            if pkt.encrypted()
                && let Some(c) = cipher
            {
                let iv = cm_iv(salt, pkt.ssrc(), u64::from(pkt.index()));
                c.apply(&iv, &mut out[RTCP_HEADER_LEN..]);
            }
            true
        }
        Transform::Gcm { aead, salt } => {
            let iv = gcm_rtcp_iv(salt, pkt.ssrc(), pkt.index());
            out.clear();
            out.extend_from_slice(header);
            if pkt.encrypted() {
                // AAD = first header and sender SSRC || E || SRTCP index (RFC 7714 §9.2).
                let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_TRAILER_LEN];
                aad[..RTCP_HEADER_LEN].copy_from_slice(header);
                aad[RTCP_HEADER_LEN..].copy_from_slice(pkt.trailer());
                out.resize(RTCP_HEADER_LEN + payload.len(), 0);
                aead.open(&iv, &aad, payload, &mut out[RTCP_HEADER_LEN..], pkt.tag())
            } else {
                // Unencrypted: the whole packet and the trailer are AAD (RFC 7714 §9.3); `out`
                // holds that AAD, then loses the trailer.
                out.extend_from_slice(payload);
                out.extend_from_slice(pkt.trailer());
                let ok = aead.open(&iv, out, &[], &mut [], pkt.tag());
                out.truncate(RTCP_HEADER_LEN + payload.len());
                ok
            }
        }
    }
}

/// The sender side of [`rtcp_open`]: `out` gets the SRTCP packet.
pub(crate) fn rtcp_seal(
    t: &Transform,
    packet: &[u8],
    ssrc: u32,
    index: u32,
    encrypt: bool,
    mki: &[u8],
    out: &mut Vec<u8>,
) {
    let index = index & 0x7fff_ffff;
    let trailer = (u32::from(encrypt) << 31 | index).to_be_bytes();
    out.clear();
    out.extend_from_slice(packet);
    match t {
        Transform::Hmac {
            cipher,
            salt,
            auth,
            tag_len,
        } => {
            if encrypt && let Some(c) = cipher {
                c.apply(
                    &cm_iv(salt, ssrc, u64::from(index)),
                    &mut out[RTCP_HEADER_LEN..],
                );
            }
            out.extend_from_slice(&trailer);
            let tag = auth.as_ref().map(|a| hmac_tag(a, out, None));
            out.extend_from_slice(mki);
            if let Some(tag) = tag {
                out.extend_from_slice(&tag[..*tag_len]);
            }
        }
        Transform::Gcm { aead, salt } => {
            let iv = gcm_rtcp_iv(salt, ssrc, index);
            if encrypt {
                let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_TRAILER_LEN];
                aad[..RTCP_HEADER_LEN].copy_from_slice(&out[..RTCP_HEADER_LEN]);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&trailer);
                let tag = aead.seal(&iv, &aad, &mut out[RTCP_HEADER_LEN..]);
                out.extend_from_slice(&tag);
            } else {
                out.extend_from_slice(&trailer);
                let tag = aead.seal(&iv, out, &mut []);
                out.truncate(out.len() - SRTCP_TRAILER_LEN);
                out.extend_from_slice(&tag);
            }
            out.extend_from_slice(&trailer);
            out.extend_from_slice(mki);
        }
    }
}
