use super::crypto::{self, AesCtr, Transform, cm_iv, kdf};
use super::packet::{Layout, SrtcpPacket, SrtpPacket};
use super::*;
use proptest::prelude::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------- RFC vectors

/// RFC 3711 Appendix B.2: AES-CM keystream for session key/salt, SSRC 0, index 0.
#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let c = AesCtr::new(&unhex("2B7E151628AED2A6ABF7158809CF4F3C")).expect("key");
    let salt: [u8; 14] = unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")
        .try_into()
        .expect("salt");
    let iv = cm_iv(&salt, 0, 0);
    assert_eq!(hex(&iv), "f0f1f2f3f4f5f6f7f8f9fafbfcfd0000");
    let mut ks = vec![0u8; 0xff02 * 16];
    c.apply(&iv, &mut ks);
    let block = |i: usize| hex(&ks[i * 16..i * 16 + 16]);
    assert_eq!(block(0), "e03ead0935c95e80e166b16dd92b4eb4");
    assert_eq!(block(1), "d23513162b02d0f72a43a2fe4a5f97ab");
    assert_eq!(block(2), "41e95b3bb0a2e8dd477901e4fca894c0");
    assert_eq!(block(0xfeff), "ec8cdf7398607cb0f2d21675ea9ea1e4");
    assert_eq!(block(0xff00), "362b7c3c6773516318a077d7fc5073ae");
    assert_eq!(block(0xff01), "6a2cc3787889374fbeb4c81b17ba6c44");
}

/// RFC 3711 Appendix B.3: key derivation with KDR 0.
#[test]
fn rfc3711_b3_key_derivation() {
    let prf = AesCtr::new(&unhex("E1F97A0D3E018BE0D64FA32C06DE4139")).expect("key");
    let salt = unhex("0EC675AD498AFEEBB6960B3AABE6");
    let mut enc = [0u8; 16];
    kdf(&prf, &salt, 0, 0, &mut enc);
    assert_eq!(hex(&enc), "c61e7a93744f39ee10734afe3ff7a087");
    let mut s = [0u8; 14];
    kdf(&prf, &salt, 2, 0, &mut s);
    assert_eq!(hex(&s), "30cbbc08863d8c85d49db34a9ae1");
    let mut auth = [0u8; 94];
    kdf(&prf, &salt, 1, 0, &mut auth);
    assert_eq!(
        hex(&auth),
        "cebe321f6ff7716b6fd4ab49af256a156d38baa48f0a0acf3c34e2359e6cdbce\
         e049646c43d9327ad175578ef72270986371c10c9a369ac2f94a8c5fbcdddc25\
         6d6e919a48b610ef17c2041e474035766b68642c59bbfc2f34db60dbdfb2"
    );
}

/// RFC 6188 §7.1: AES-256-CM keystream.
#[test]
fn rfc6188_7_1_aes256_cm_keystream() {
    let c = AesCtr::new(&unhex(
        "57f82fe3613fd170a85ec93c40b1f0922ec4cb0dc025b58272147cc438944a98",
    ))
    .expect("key");
    let salt: [u8; 14] = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfd")
        .try_into()
        .expect("salt");
    let mut ks = [0u8; 48];
    c.apply(&cm_iv(&salt, 0, 0), &mut ks);
    assert_eq!(
        hex(&ks),
        "92bdd28a93c3f52511c677d08b5515a49da71b2378a854f67050756ded165bac\
         63c4868b7096d88421b563b8c94c9a31"
    );
}

/// RFC 6188 §7.2: AES-256 key derivation.
#[test]
fn rfc6188_7_2_aes256_key_derivation() {
    let prf = AesCtr::new(&unhex(
        "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6",
    ))
    .expect("key");
    let salt = unhex("3b04803de51ee7c96423ab5b78d2");
    let mut enc = [0u8; 32];
    kdf(&prf, &salt, 0, 0, &mut enc);
    assert_eq!(
        hex(&enc),
        "5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4"
    );
    let mut s = [0u8; 14];
    kdf(&prf, &salt, 2, 0, &mut s);
    assert_eq!(hex(&s), "fa31791685ca444a9e07c6c64e93");
    let mut auth = [0u8; 20];
    kdf(&prf, &salt, 1, 0, &mut auth);
    assert_eq!(hex(&auth), "fd9c32d39ed5fbb5a9dc96b30818454d1313dc05");
}

/// AES-192-CM has no RFC 6188 packet vector; NIST SP 800-38A F.5.5 (CTR-AES192) checks the
/// cipher at SRTP counter block 0xfeff, whose counter is the NIST initial counter.
#[test]
fn aes192_cm_keystream_nist_sp800_38a() {
    let c = AesCtr::new(&unhex("8E73B0F7DA0E6452C810F32B809079E562F8EAD2522C6B7B")).expect("key");
    let salt: [u8; 14] = unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")
        .try_into()
        .expect("salt");
    let mut ks = vec![0u8; 0xff00 * 16];
    c.apply(&cm_iv(&salt, 0, 0), &mut ks);
    assert_eq!(hex(&ks[0xfeff * 16..]), "717d2dc639128334a6167a488ded7921");
}

const GCM_KEY_128: &str = "000102030405060708090a0b0c0d0e0f";
const GCM_KEY_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const GCM_SALT: &str = "517569642070726f2071756f";
const GCM_RTP: &str = "8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e6973\
                       2064697669736120696e207061727465732074726573";
const GCM_RTCP: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e930\
                        4c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

fn gcm(key: &str) -> Transform {
    Transform::from_session_keys(&unhex(key), &unhex(GCM_SALT), None, 16)
}

fn gcm_layout() -> Layout {
    Layout {
        mki_len: 0,
        tag_len: 16,
        aead: true,
    }
}

fn check_gcm_rtp(key: &str, expected: &str) {
    let t = gcm(key);
    let plain = unhex(GCM_RTP);
    let mut out = Vec::new();
    crypto::rtp_seal(&t, &plain, 12, 0, &[], &mut out);
    assert_eq!(hex(&out), hex(&unhex(expected)));
    let protected = out.clone();
    let pkt = SrtpPacket::new_checked(&protected[..], gcm_layout()).expect("view");
    assert!(crypto::rtp_open(&t, &pkt, 0, &mut out));
    assert_eq!(hex(&out), hex(&plain));
    // Any flipped bit, in header, ciphertext or tag, fails; so does another ROC.
    assert!(!crypto::rtp_open(&t, &pkt, 1, &mut out));
    for i in [1, 5, 20, protected.len() - 1] {
        let mut bad = protected.clone();
        bad[i] ^= 0x10;
        let pkt = SrtpPacket::new_checked(&bad[..], gcm_layout()).expect("view");
        assert!(!crypto::rtp_open(&t, &pkt, 0, &mut out), "byte {i}");
    }
}

/// RFC 7714 §16.1.1, §16.1.2: AEAD_AES_128_GCM SRTP.
#[test]
fn rfc7714_16_1_aes128_gcm_srtp() {
    check_gcm_rtp(
        GCM_KEY_128,
        "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f\
         42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce",
    );
}

/// RFC 7714 §16.2.1, §16.2.2: AEAD_AES_256_GCM SRTP.
#[test]
fn rfc7714_16_2_aes256_gcm_srtp() {
    check_gcm_rtp(
        GCM_KEY_256,
        "8040f17b8041f8d35501a0b232b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3\
         b50b2a0276ffae0f1ba63799b87b7aa3db36dfffd6b0f9bb7878d7a76c13",
    );
}

fn check_gcm_rtcp(key: &str, encrypt: bool, expected: &str) {
    let t = gcm(key);
    let plain = unhex(GCM_RTCP);
    let mut out = Vec::new();
    crypto::rtcp_seal(&t, &plain, 0x4d617273, 0x5d4, encrypt, &[], &mut out);
    assert_eq!(hex(&out), hex(&unhex(expected)));
    let protected = out.clone();
    let pkt = SrtcpPacket::new_checked(&protected[..], gcm_layout()).expect("view");
    assert_eq!(pkt.index(), 0x5d4);
    assert_eq!(pkt.encrypted(), encrypt);
    assert!(crypto::rtcp_open(&t, &pkt, &mut out));
    assert_eq!(hex(&out), hex(&plain));
    for i in [0, 9, protected.len() - 5, protected.len() - 1] {
        let mut bad = protected.clone();
        bad[i] ^= 1;
        let pkt = SrtcpPacket::new_checked(&bad[..], gcm_layout()).expect("view");
        assert!(!crypto::rtcp_open(&t, &pkt, &mut out), "byte {i}");
    }
}

/// RFC 7714 §17.1: AEAD_AES_128_GCM SRTCP, SRTCP index 0x5d4.
#[test]
fn rfc7714_17_1_aes128_gcm_srtcp() {
    check_gcm_rtcp(
        GCM_KEY_128,
        true,
        "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1\
         730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4",
    );
}

/// RFC 7714 §17.2: AEAD_AES_256_GCM SRTCP.
#[test]
fn rfc7714_17_2_aes256_gcm_srtcp() {
    check_gcm_rtcp(
        GCM_KEY_256,
        true,
        "81c8000d4d617273d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1\
         110555be8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be800005d4",
    );
}

/// RFC 7714 §17.3: SRTCP authenticated but not encrypted (E = 0).
#[test]
fn rfc7714_17_3_aes128_gcm_srtcp_tag_only() {
    check_gcm_rtcp(
        GCM_KEY_128,
        false,
        "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeef\
         deadbeefdeadbeefdeadbeefdeadbeef841dd9683dd78ec92ae58790125f62b3000005d4",
    );
}

// ---------------------------------------------------------------- a=crypto

const EXAMPLE: &str =
    "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32";

#[test]
fn parses_rfc4568_example() {
    let a = CryptoAttr::parse(EXAMPLE).expect("parse");
    assert_eq!(a.tag, 1);
    assert_eq!(a.suite, SrtpSuite::AesCm128HmacSha1_80);
    assert_eq!(a.keys.len(), 1);
    let k = &a.keys[0];
    assert_eq!(k.key.len(), 16);
    assert_eq!(k.salt.len(), 14);
    assert_eq!(k.lifetime, Some(1 << 20));
    assert_eq!(k.mki, Some(Mki { value: 1, len: 32 }));
    assert_eq!(a.mki_len(), 32);
    assert_eq!(a.to_string(), EXAMPLE);
    assert_eq!(
        CryptoAttr::parse(&format!("a=crypto:{EXAMPLE}")),
        Ok(a.clone())
    );
    assert_eq!(CryptoAttr::parse(&format!("crypto:{EXAMPLE}  ")), Ok(a));
    // Debug never shows the key.
    let dbg = format!("{:?}", CryptoAttr::parse(EXAMPLE).expect("parse"));
    assert!(!dbg.contains("PS1u") && dbg.contains("<16 bytes>"), "{dbg}");
}

#[test]
fn parses_capture_lines_and_all_suites() {
    for (line, suite) in [
        (
            "1 AES_256_CM_HMAC_SHA1_80 inline:R+USwMt3d0q/xyfdSq9aK+vrdTf0x6n6SOcC4E6AZmL5vqEzRofmJm7xWsV9Eg==",
            SrtpSuite::AesCm256HmacSha1_80,
        ),
        (
            "2 AES_256_CM_HMAC_SHA1_32 inline:pb8SO+G4GE9RbroFPELfQM+hteg19T9jm6NPXMC9cn21/2h2hCFjEcJg/6ZduQ==",
            SrtpSuite::AesCm256HmacSha1_32,
        ),
        (
            "3 AES_CM_128_HMAC_SHA1_80 inline:D2YmkapsLg7GhQkROWl3wLJxRXuRBhnHYVjq4nsO",
            SrtpSuite::AesCm128HmacSha1_80,
        ),
        (
            "4 aes_cm_128_hmac_sha1_32 inline:IyxCvTVuJp0GBLldSiDoLDmoThje4412XyDRa1G7",
            SrtpSuite::AesCm128HmacSha1_32,
        ),
    ] {
        let a = CryptoAttr::parse(line).expect(line);
        assert_eq!(a.suite, suite);
        SrtpContext::new(&a).expect("context");
    }
    assert_eq!(
        SrtpSuite::from_name("AES_CM_256_HMAC_SHA1_32"),
        Some(SrtpSuite::AesCm256HmacSha1_32)
    );
    for suite in SrtpSuite::ALL {
        assert_eq!(SrtpSuite::from_name(suite.name()), Some(suite));
        let key: Vec<u8> = (0..suite.key_salt_len() as u8).collect();
        let attr = CryptoAttr {
            tag: 7,
            suite,
            keys: vec![InlineKey::new(suite, &key).expect("key")],
            params: SessionParams::default(),
        };
        let back = CryptoAttr::parse(&attr.to_string()).expect("round trip");
        assert_eq!(back, attr);
        // Unpadded base64, as some endpoints write it, is accepted.
        let unpadded = attr.to_string().replace('=', "");
        assert_eq!(CryptoAttr::parse(&unpadded).expect("unpadded"), attr);
    }
}

#[test]
fn parses_several_keys_lifetimes_and_session_params() {
    let k1 = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4";
    let k2 = "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|1048576|2:4";
    let line = format!(
        "42 AES_CM_128_HMAC_SHA1_32 {k1};{k2} KDR=23 UNENCRYPTED_SRTCP FEC_ORDER=SRTP_FEC WSH=128 -FUTURE=1"
    );
    let a = CryptoAttr::parse(&line).expect("parse");
    assert_eq!(a.tag, 42);
    assert_eq!(a.keys.len(), 2);
    assert_eq!(a.keys[1].lifetime, Some(1 << 20));
    assert_eq!(a.keys[1].mki, Some(Mki { value: 2, len: 4 }));
    assert_eq!(a.params.kdr, Some(23));
    assert!(a.params.unencrypted_srtcp && !a.params.unencrypted_srtp);
    assert_eq!(a.params.fec_order, Some(FecOrder::SrtpFec));
    assert_eq!(a.params.window_size_hint, Some(128));
    assert_eq!(a.params.other, vec!["-FUTURE=1".to_owned()]);
    // A lone field after the key is the MKI when it has a colon, else the lifetime.
    let b = CryptoAttr::parse(
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|7:1",
    )
    .expect("mki only");
    assert_eq!(
        (b.keys[0].lifetime, b.keys[0].mki),
        (None, Some(Mki { value: 7, len: 1 }))
    );
    let c = CryptoAttr::parse(
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31",
    )
    .expect("lifetime only");
    assert_eq!((c.keys[0].lifetime, c.keys[0].mki), (Some(1 << 31), None));
}

#[test]
fn refuses_bad_lines_naming_the_fault() {
    let key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    let cases: &[(&str, SdesError)] = &[
        ("", SdesError::BadTag),
        ("x AES_CM_128_HMAC_SHA1_80 inline:AAAA", SdesError::BadTag),
        (
            "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            SdesError::BadTag,
        ),
        ("1", SdesError::MissingSuite),
        ("1 AES_CM_128_HMAC_SHA1_80", SdesError::MissingKey),
        (
            "1 F8_128_HMAC_SHA1_80 inline:AAAA",
            SdesError::UnknownSuite("F8_128_HMAC_SHA1_80".into()),
        ),
        (
            "1 AES_CM_128_HMAC_SHA1_80 uri:http://x",
            SdesError::UnsupportedKeyMethod("uri".into()),
        ),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!",
            SdesError::BadBase64,
        ),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            SdesError::BadKeyLength {
                suite: SrtpSuite::AesCm128HmacSha1_80,
                expected: 30,
                got: 3,
            },
        ),
    ];
    for (line, err) in cases {
        assert_eq!(CryptoAttr::parse(line).as_ref(), Err(err), "{line}");
    }
    let with = |tail: &str| CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 {key}{tail}"));
    assert_eq!(with("|2^x"), Err(SdesError::BadLifetime));
    assert_eq!(with("|2^64"), Err(SdesError::BadLifetime));
    assert_eq!(with("|0"), Err(SdesError::BadLifetime));
    assert_eq!(with("|1:0"), Err(SdesError::BadMki));
    assert_eq!(with("|1:129"), Err(SdesError::BadMki));
    assert_eq!(with("|256:1"), Err(SdesError::BadMki));
    assert_eq!(with("|2^20|1:4|x"), Err(SdesError::BadMki));
    assert_eq!(with(&format!(";{key}")), Err(SdesError::InconsistentMki));
    assert_eq!(
        with(&format!("|1:4;{key}|1:4")),
        Err(SdesError::InconsistentMki)
    );
    assert_eq!(
        with(&format!("|1:4;{key}|2:2")),
        Err(SdesError::InconsistentMki)
    );
    assert_eq!(
        with(" KDR=25"),
        Err(SdesError::BadSessionParam("KDR=25".into()))
    );
    assert_eq!(
        with(" FEC_ORDER=X"),
        Err(SdesError::BadSessionParam("FEC_ORDER=X".into()))
    );
    let many = vec![format!("{key}|1:4"); MAX_KEYS + 1].join(";");
    assert_eq!(
        CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 {many}")),
        Err(SdesError::TooManyKeys)
    );
    let gcm = "inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==";
    assert!(CryptoAttr::parse(&format!("1 AEAD_AES_128_GCM {gcm}")).is_ok());
    assert_eq!(
        CryptoAttr::parse(&format!("1 AEAD_AES_128_GCM {gcm} UNAUTHENTICATED_SRTP")),
        Err(SdesError::BadSessionParam("UNAUTHENTICATED_SRTP".into()))
    );
    assert!(
        SdesError::UnknownSuite("SEED_CTR_128_HMAC_SHA1_80".into())
            .to_string()
            .contains("unsupported SRTP suite SEED_CTR_128_HMAC_SHA1_80")
    );
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,200}") {
        let _ = CryptoAttr::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_near_misses(
        tag in "[0-9]{0,10}",
        suite in prop::sample::select(vec!["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_256_GCM", "X"]),
        b64 in "[A-Za-z0-9+/=]{0,70}",
        tail in "(\\|[0-9^:]{0,8}){0,4}( [A-Z_=0-9]{0,12}){0,3}",
    ) {
        let _ = CryptoAttr::parse(&format!("{tag} {suite} inline:{b64}{tail}"));
    }
}

// ---------------------------------------------------------------- contexts

fn attr(suite: SrtpSuite, seed: u8) -> CryptoAttr {
    let key: Vec<u8> = (0..suite.key_salt_len())
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    CryptoAttr {
        tag: 1,
        suite,
        keys: vec![InlineKey::new(suite, &key).expect("key")],
        params: SessionParams::default(),
    }
}

fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
    p
}

fn rtcp(ssrc: u32, n: u8) -> Vec<u8> {
    // A receiver report with one report block: 8 + 24 bytes.
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..24).map(|i| i ^ n));
    p
}

fn pair(a: &CryptoAttr) -> (SrtpContext, SrtpContext) {
    (
        SrtpContext::new(a).expect("sender"),
        SrtpContext::new(a).expect("receiver"),
    )
}

#[test]
fn every_suite_round_trips_rtp_and_rtcp_with_expected_overhead() {
    for suite in SrtpSuite::ALL {
        let (mut tx, mut rx) = pair(&attr(suite, 3));
        let mut wire = Vec::new();
        let mut plain = Vec::new();
        let p = rtp(1000, 0xdead_beef, 160);
        tx.protect_rtp(&p, &mut wire).expect("protect");
        assert_eq!(wire.len(), p.len() + suite.rtp_tag_len(), "{suite}");
        if suite.cipher() == CipherKind::Null {
            assert_eq!(wire[12..172], p[12..], "{suite} NULL leaves the payload");
        } else {
            assert_ne!(wire[12..172], p[12..], "{suite} encrypts");
        }
        rx.unprotect_rtp(&wire, &mut plain).expect("unprotect");
        assert_eq!(plain, p, "{suite}");
        let c = rtcp(0xdead_beef, 9);
        tx.protect_rtcp(&c, &mut wire).expect("protect rtcp");
        assert_eq!(wire.len(), c.len() + 4 + suite.rtcp_tag_len(), "{suite}");
        // The E flag: set unless the NULL cipher.
        let layout = Layout {
            mki_len: 0,
            tag_len: suite.rtcp_tag_len(),
            aead: suite.is_aead(),
        };
        let view = SrtcpPacket::new_checked(&wire[..], layout).expect("view");
        assert_eq!(
            (view.encrypted(), view.index()),
            (suite.cipher() != CipherKind::Null, 0),
            "{suite}"
        );
        rx.unprotect_rtcp(&wire, &mut plain)
            .expect("unprotect rtcp");
        assert_eq!(plain, c, "{suite}");
        // Another key fails authentication, never decrypts garbage.
        let mut other = SrtpContext::new(&attr(suite, 4)).expect("other");
        assert_eq!(
            other.unprotect_rtcp(&wire, &mut plain),
            Err(SrtpError::AuthFailed)
        );
        tx.protect_rtp(&p, &mut wire).expect("protect");
        assert_eq!(
            other.unprotect_rtp(&wire, &mut plain),
            Err(SrtpError::AuthFailed)
        );
        assert_eq!(other.rollover_counter(0xdead_beef), None);
        assert_eq!(other.stats().rtp_auth_failed, 1);
    }
}

#[test]
fn srtcp_index_counts_from_zero_per_ssrc() {
    let (mut tx, _) = pair(&attr(SrtpSuite::AesCm128HmacSha1_80, 1));
    let mut wire = Vec::new();
    for i in 0..3u32 {
        tx.protect_rtcp(&rtcp(5, 0), &mut wire).expect("protect");
        let pkt = SrtcpPacket::new_checked(
            &wire[..],
            Layout {
                mki_len: 0,
                tag_len: 10,
                aead: false,
            },
        )
        .expect("view");
        assert_eq!((pkt.index(), pkt.encrypted()), (i, true));
    }
}

#[test]
fn mki_selects_the_key() {
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let mut a = attr(suite, 1);
    let mut k2 = attr(suite, 2).keys.remove(0);
    a.keys[0].mki = Some(Mki { value: 1, len: 4 });
    k2.mki = Some(Mki { value: 2, len: 4 });
    a.keys.push(k2);
    let line = a.to_string();
    assert!(
        line.contains("|1:4;inline:") && line.ends_with("|2:4"),
        "{line}"
    );
    let (mut tx, mut rx) = pair(&a);
    let mut wire = Vec::new();
    let mut plain = Vec::new();
    for (key, seq) in [(0, 1u16), (1, 2), (0, 3), (1, 4)] {
        assert!(tx.set_protect_key(key));
        let p = rtp(seq, 77, 40);
        tx.protect_rtp(&p, &mut wire).expect("protect");
        assert_eq!(wire.len(), p.len() + 4 + 10);
        assert_eq!(wire[p.len()..p.len() + 4], [0, 0, 0, key as u8 + 1]);
        rx.unprotect_rtp(&wire, &mut plain).expect("unprotect");
        assert_eq!(plain, p);
        let c = rtcp(77, seq as u8);
        tx.protect_rtcp(&c, &mut wire).expect("protect rtcp");
        rx.unprotect_rtcp(&wire, &mut plain)
            .expect("unprotect rtcp");
        assert_eq!(plain, c);
    }
    assert!(!tx.set_protect_key(2));
    // An MKI naming no key is its own error.
    tx.protect_rtp(&rtp(5, 77, 40), &mut wire).expect("protect");
    wire[52 + 3] = 9;
    assert_eq!(
        rx.unprotect_rtp(&wire, &mut plain),
        Err(SrtpError::UnknownMki)
    );
    // GCM puts the MKI after the tag.
    let mut g = attr(SrtpSuite::AeadAes256Gcm, 1);
    g.keys[0].mki = Some(Mki {
        value: 0x0102,
        len: 2,
    });
    let (mut tx, mut rx) = pair(&g);
    let p = rtp(9, 1, 20);
    tx.protect_rtp(&p, &mut wire).expect("protect");
    assert_eq!(wire.len(), p.len() + 16 + 2);
    assert_eq!(wire[wire.len() - 2..], [1, 2]);
    rx.unprotect_rtp(&wire, &mut plain).expect("unprotect");
    assert_eq!(plain, p);
    let c = rtcp(1, 1);
    tx.protect_rtcp(&c, &mut wire).expect("protect rtcp");
    assert_eq!(wire[wire.len() - 2..], [1, 2]);
    rx.unprotect_rtcp(&wire, &mut plain)
        .expect("unprotect rtcp");
    assert_eq!(plain, c);
}

#[test]
fn session_params_change_what_is_protected() {
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let mut wire = Vec::new();
    let mut plain = Vec::new();
    let p = rtp(10, 3, 50);

    let mut a = attr(suite, 5);
    a.params.unencrypted_srtp = true;
    let (mut tx, mut rx) = pair(&a);
    tx.protect_rtp(&p, &mut wire).expect("protect");
    assert_eq!(wire[..p.len()], p[..], "payload in the clear");
    assert_eq!(wire.len(), p.len() + 10, "still authenticated");
    rx.unprotect_rtp(&wire, &mut plain).expect("unprotect");
    wire[20] ^= 1;
    assert_eq!(
        rx.unprotect_rtp(&wire, &mut plain),
        Err(SrtpError::AuthFailed)
    );

    let mut a = attr(suite, 5);
    a.params.unauthenticated_srtp = true;
    a.params.unencrypted_srtcp = true;
    let (mut tx, mut rx) = pair(&a);
    tx.protect_rtp(&p, &mut wire).expect("protect");
    assert_eq!(wire.len(), p.len(), "no tag");
    rx.unprotect_rtp(&wire, &mut plain).expect("unprotect");
    assert_eq!(plain, p);
    let c = rtcp(3, 1);
    tx.protect_rtcp(&c, &mut wire).expect("protect rtcp");
    assert_eq!(wire[..c.len()], c[..], "SRTCP in the clear");
    assert_eq!(wire[c.len()] >> 7, 0, "E flag clear");
    assert_eq!(wire.len(), c.len() + 4 + 10, "SRTCP still authenticated");
    rx.unprotect_rtcp(&wire, &mut plain)
        .expect("unprotect rtcp");
    assert_eq!(plain, c);

    let mut g = attr(SrtpSuite::AeadAes128Gcm, 5);
    g.params.unencrypted_srtcp = true;
    let (mut tx, mut rx) = pair(&g);
    tx.protect_rtcp(&c, &mut wire).expect("protect rtcp");
    assert_eq!(wire[..c.len()], c[..], "GCM SRTCP in the clear");
    rx.unprotect_rtcp(&wire, &mut plain)
        .expect("unprotect rtcp");
    assert_eq!(plain, c);
}

#[test]
fn key_derivation_rate_rederives_session_keys() {
    let suite = SrtpSuite::AesCm128HmacSha1_32;
    let mut with_kdr = attr(suite, 8);
    with_kdr.params.kdr = Some(2);
    let (mut tx, mut rx) = pair(&with_kdr);
    let (mut tx0, _) = pair(&attr(suite, 8));
    let mut wire = Vec::new();
    let mut wire0 = Vec::new();
    let mut plain = Vec::new();
    for seq in 0..40u16 {
        let p = rtp(seq, 1, 30);
        tx.protect_rtp(&p, &mut wire).expect("protect");
        tx0.protect_rtp(&p, &mut wire0).expect("protect");
        // r = index DIV 4: the same keys as without KDR while r = 0, others after.
        assert_eq!(wire == wire0, seq < 4, "seq {seq}");
        rx.unprotect_rtp(&wire, &mut plain).expect("unprotect");
        assert_eq!(plain, p);
    }
    for i in [0u32, 3, 4, 1000] {
        let c = rtcp(1, i as u8);
        tx.protect_rtcp_with_index(&c, i, &mut wire)
            .expect("protect");
        rx.unprotect_rtcp(&wire, &mut plain).expect("unprotect");
        assert_eq!(plain, c);
    }
}

#[test]
fn roc_follows_wraps_reordering_and_late_packets() {
    let a = attr(SrtpSuite::AesCm128HmacSha1_80, 11);
    let (mut tx, mut rx) = pair(&a);
    let ssrc = 0x1234;
    let mut wires = Vec::new();
    let mut wire = Vec::new();
    let mut plain = Vec::new();
    // Three wraps at 20 ms: the sender counts its ROC from the sequence numbers.
    let start = 65_000u32;
    let mut last = 0;
    for i in 0..(3 * 65_536 + 1000u32) {
        let seq = (start + i) as u16;
        tx.protect_rtp(&rtp(seq, ssrc, 8), &mut wire)
            .expect("protect");
        // Only 300 packets either side of each wrap reach the observer.
        if !(300..65_236).contains(&seq) || i < 10 {
            wires.push((seq, wire.clone()));
            last = start + i;
        }
    }
    // Delivered with swaps around each wrap, duplicates and huge gaps (lost packets).
    for w in wires.chunks_mut(7) {
        w.reverse();
    }
    for (seq, w) in &wires {
        rx.unprotect_rtp(w, &mut plain).expect("unprotect");
        assert_eq!(&plain[2..4], seq.to_be_bytes());
        assert_eq!(plain[12..], rtp(*seq, ssrc, 8)[12..]);
        rx.unprotect_rtp(w, &mut plain).expect("duplicate");
    }
    assert_eq!(rx.rollover_counter(ssrc), Some((last >> 16, last as u16)));
    assert_eq!(last >> 16, 4);
    let s = rx.stats();
    assert_eq!(s.rtp_auth_failed, 0);
    // Each gap of ~65 000 lost packets hides a wrap from the estimate: ROC + 1 finds it.
    assert!(s.roc_plus_one >= 2, "{s:?}");
}

#[test]
fn roc_minus_and_plus_one_rescue_fooled_estimates() {
    let a = attr(SrtpSuite::AeadAes128Gcm, 12);
    let (mut tx, mut rx) = pair(&a);
    let mut wire = Vec::new();
    let mut plain = Vec::new();
    let send = |tx: &mut SrtpContext, seq: u16, roc: u32, wire: &mut Vec<u8>| {
        tx.protect_rtp_with_roc(&rtp(seq, 9, 20), roc, wire)
            .expect("protect")
    };
    send(&mut tx, 100, 5, &mut wire);
    rx.set_rollover_counter(9, 5, 99);
    rx.unprotect_rtp(&wire, &mut plain).expect("seeded");
    // 40 000 packets later in the same ROC: the estimate says ROC − 1.
    send(&mut tx, 40_100, 5, &mut wire);
    rx.unprotect_rtp(&wire, &mut plain).expect("plus one");
    assert_eq!(rx.stats().roc_plus_one, 1);
    assert_eq!(rx.rollover_counter(9), Some((5, 40_100)));
    // A packet 38 000 behind, same ROC: the estimate says ROC + 1.
    send(&mut tx, 2_100, 5, &mut wire);
    rx.unprotect_rtp(&wire, &mut plain).expect("minus one");
    assert_eq!(rx.stats().roc_minus_one, 1);
    assert_eq!(
        rx.rollover_counter(9),
        Some((5, 40_100)),
        "late packets don't move s_l"
    );
    // Two ROCs off is beyond the window.
    send(&mut tx, 40_101, 7, &mut wire);
    assert_eq!(
        rx.unprotect_rtp(&wire, &mut plain),
        Err(SrtpError::AuthFailed)
    );
    assert_eq!(rx.rollover_counter(9), Some((5, 40_100)));
}

#[test]
fn mid_stream_start_searches_the_roc_once() {
    let a = attr(SrtpSuite::AesCm256HmacSha1_80, 13);
    let (mut tx, mut rx) = pair(&a);
    let mut wire = Vec::new();
    let mut plain = Vec::new();
    for seq in 500..510u16 {
        tx.protect_rtp_with_roc(&rtp(seq, 4, 20), 6, &mut wire)
            .expect("protect");
        rx.unprotect_rtp(&wire, &mut plain).expect("unprotect");
    }
    assert_eq!(rx.rollover_counter(4), Some((6, 509)));
    assert_eq!(rx.stats().roc_searched, 1);
    // Beyond the search the ROC can be given instead.
    tx.protect_rtp_with_roc(&rtp(1, 5, 20), 100, &mut wire)
        .expect("protect");
    assert_eq!(
        rx.unprotect_rtp(&wire, &mut plain),
        Err(SrtpError::AuthFailed)
    );
    assert_eq!(rx.rollover_counter(5), None, "failures create no state");
    rx.set_rollover_counter(5, 100, 0);
    rx.unprotect_rtp(&wire, &mut plain).expect("seeded");
}

#[test]
fn streams_are_bounded() {
    let a = attr(SrtpSuite::AesCm128HmacSha1_80, 14);
    let opts = SrtpOptions {
        max_streams: 4,
        ..SrtpOptions::default()
    };
    let mut tx = SrtpContext::new(&a).expect("tx");
    let mut rx = SrtpContext::with_options(&a, opts).expect("rx");
    let mut wire = Vec::new();
    let mut plain = Vec::new();
    for ssrc in 0..10u32 {
        tx.protect_rtp(&rtp(1, ssrc, 10), &mut wire)
            .expect("protect");
        rx.unprotect_rtp(&wire, &mut plain).expect("unprotect");
    }
    assert_eq!(rx.rx.entries.len(), 4);
    assert_eq!(rx.stats().streams_evicted, 6);
    assert!(rx.rollover_counter(9).is_some() && rx.rollover_counter(0).is_none());
}

#[test]
fn malformed_packets_are_named() {
    let a = attr(SrtpSuite::AesCm128HmacSha1_80, 15);
    let (mut tx, mut rx) = pair(&a);
    let mut out = Vec::new();
    assert_eq!(rx.unprotect_rtp(&[], &mut out), Err(SrtpError::TooShort));
    assert_eq!(
        rx.unprotect_rtp(&[0x80; 21], &mut out),
        Err(SrtpError::TooShort)
    );
    assert_eq!(
        rx.unprotect_rtp(&[0x40; 40], &mut out),
        Err(SrtpError::BadVersion)
    );
    // CSRC count and extension length are honoured.
    assert_eq!(
        rx.unprotect_rtp(&[0x8f; 70], &mut out),
        Err(SrtpError::TooShort)
    );
    assert_eq!(
        rx.unprotect_rtcp(&[0x80; 21], &mut out),
        Err(SrtpError::TooShort)
    );
    assert_eq!(
        rx.unprotect_rtcp(&[0x00; 40], &mut out),
        Err(SrtpError::BadVersion)
    );
    assert_eq!(
        tx.protect_rtp(&[0x80; 5], &mut out),
        Err(SrtpError::TooShort)
    );
    assert_eq!(
        tx.protect_rtcp(&[0x80; 5], &mut out),
        Err(SrtpError::TooShort)
    );
    // A header extension and CSRCs stay in the clear and authenticated.
    let mut p = vec![0x92, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7];
    p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // two CSRCs
    p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]); // one-byte extension
    p.extend_from_slice(b"payload");
    let mut wire = Vec::new();
    tx.protect_rtp(&p, &mut wire).expect("protect");
    assert_eq!(wire[..28], p[..28]);
    assert_ne!(wire[28..35], p[28..]);
    rx.unprotect_rtp(&wire, &mut out).expect("unprotect");
    assert_eq!(out, p);
}

fn suites() -> impl Strategy<Value = SrtpSuite> {
    prop::sample::select(SrtpSuite::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random keys, SSRCs and start sequences near the wrap; reordering within a window,
    /// losses and duplicates: everything delivered decrypts to what was sent.
    #[test]
    fn round_trip_with_reordering_loss_and_wraps(
        suite in suites(),
        key in prop::collection::vec(any::<u8>(), 46),
        ssrc in any::<u32>(),
        start in 65_000u16..=65_535,
        count in 100usize..1500,
        shuffle in prop::collection::vec((0usize..1500, 0usize..8), 0..200),
        lost in prop::collection::vec(0usize..1500, 0..100),
        dup in prop::collection::vec(0usize..1500, 0..20),
        payload_len in 0usize..200,
        with_mki in any::<bool>(),
    ) {
        let mut a = attr(suite, 0);
        a.keys[0] = InlineKey::new(suite, &key[..suite.key_salt_len()]).expect("key");
        if with_mki {
            a.keys[0].mki = Some(Mki { value: u64::from(ssrc & 0xff), len: 1 });
        }
        let (mut tx, mut rx) = pair(&a);
        let mut sent = Vec::new();
        let mut wire = Vec::new();
        for i in 0..count {
            let seq = start.wrapping_add(i as u16);
            let p = rtp(seq, ssrc, payload_len);
            tx.protect_rtp(&p, &mut wire).expect("protect");
            sent.push((p, wire.clone()));
        }
        let mut order: Vec<usize> = (0..count).filter(|i| !lost.contains(i)).collect();
        for (at, by) in shuffle {
            if at + by < order.len() {
                order.swap(at, at + by);
            }
        }
        order.extend(dup.into_iter().filter(|&i| i < count));
        let mut plain = Vec::new();
        let newest = order.iter().max().copied();
        for i in order {
            rx.unprotect_rtp(&sent[i].1, &mut plain).expect("unprotect");
            prop_assert_eq!(&plain, &sent[i].0);
        }
        prop_assert_eq!(rx.stats().rtp_auth_failed, 0);
        // The ROC and s_l are those of the newest packet delivered.
        if let Some(newest) = newest {
            let index = u32::from(start) + newest as u32;
            prop_assert_eq!(rx.rollover_counter(ssrc), Some((index >> 16, index as u16)));
        }
    }

    /// Nothing panics, whatever the bytes, with or without MKI, for every suite.
    #[test]
    fn random_bytes_never_panic(
        suite in suites(),
        mki_len in 0u8..3,
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        version_two in any::<bool>(),
    ) {
        let mut a = attr(suite, 1);
        if mki_len > 0 {
            a.keys[0].mki = Some(Mki { value: 1, len: mki_len });
        }
        let mut ctx = SrtpContext::new(&a).expect("ctx");
        let mut bytes = bytes;
        if version_two && !bytes.is_empty() {
            bytes[0] = 0x80 | (bytes[0] & 0x3f);
        }
        let mut out = Vec::new();
        let _ = ctx.unprotect_rtp(&bytes, &mut out);
        let _ = ctx.unprotect_rtcp(&bytes, &mut out);
        let _ = ctx.protect_rtp(&bytes, &mut out);
        let _ = ctx.protect_rtcp(&bytes, &mut out);
        prop_assert_eq!(ctx.stats().rtp_ok + ctx.stats().rtcp_ok, 0);
    }

    /// Flipping any bit of a protected packet fails (tags of 32 bits could collide, at 2^-32).
    #[test]
    fn any_flipped_bit_fails(suite in suites(), bit in 0usize..(8 * 62)) {
        let a = attr(suite, 2);
        let (mut tx, mut rx) = pair(&a);
        let mut wire = Vec::new();
        let mut out = Vec::new();
        tx.protect_rtp(&rtp(7, 7, 32), &mut wire).expect("protect");
        let bit = bit % (8 * wire.len());
        wire[bit / 8] ^= 1 << (bit % 8);
        let r = rx.unprotect_rtp(&wire, &mut out);
        prop_assert!(r.is_err());
        tx.protect_rtcp(&rtcp(7, 1), &mut wire).expect("protect");
        let bit = bit % (8 * wire.len());
        wire[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(rx.unprotect_rtcp(&wire, &mut out).is_err());
    }
}

// ---------------------------------------------------------------- libsrtp known answers

/// Reference packets of libsrtp's own test driver (test/srtp_driver.c, `srtp_validate*`,
/// libsrtp 2.8; the AES-192 one from the RFC 6188 §7.4 master key after cisco/libsrtp#765):
/// whole packets with HMAC tags, MKI and SRTCP trailers, through the public API.
#[test]
fn libsrtp_reference_packets() {
    const KEY: &str = "e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6";
    const KEY_2: &str = "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6";
    const RTP: &str = "800f1234decafbadcafebabeabababababababababababababababab";
    const RTCP: &str = "81c8000bcafebabeabababababababababababababababab";
    let cases: &[(SrtpSuite, &str, Option<u64>, &str, &str)] = &[
        (
            SrtpSuite::AesCm128HmacSha1_80,
            KEY,
            None,
            "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb",
            "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798",
        ),
        (
            SrtpSuite::AesCm128HmacSha1_80,
            KEY,
            Some(0xe1f9_7a0d),
            "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402e1f97a0db78d6acc99ea179b8dbb",
            "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001e1f97a0d993e08cd54d6c1230798",
        ),
        (
            SrtpSuite::NullHmacSha1_80,
            KEY,
            None,
            "800f1234decafbadcafebabeabababababababababababababababababa136270b679134ce9b",
            "81c8000bcafebabeabababababababababababababababab00000001fe88c7fdfd37ebce615d",
        ),
        (
            SrtpSuite::AeadAes128Gcm,
            "000102030405060708090a0b0c0d0e0fa0a1a2a3a4a5a6a7a8a9aaab",
            None,
            "800f1234decafbadcafebabec5002ede04cfdd2eb91159e0880aa06ed2976826f796b201df3131a127e8a392",
            "81c8000bcafebabec98b8b5df0392a55852b6c21ac8e7025c52c6fbea2b3b446ea31123ba88ce61e80000001",
        ),
        (
            SrtpSuite::AesCm256HmacSha1_80,
            "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b63b04803de51ee7c96423ab5b78d2",
            None,
            "800f1234decafbadcafebabef1d9de17ff251ff1aa007774b0b4b40da08d9d9a5b3a55d8873b",
            "",
        ),
    ];
    for &(suite, key, mki, srtp, srtcp) in cases {
        let mut keys = vec![InlineKey::new(suite, &unhex(key)).expect("key")];
        if let Some(v) = mki {
            keys[0].mki = Some(Mki { value: v, len: 4 });
            // A second key, MKI f3a14671, that the packets do not use.
            let mut k2 = unhex(KEY_2);
            k2.truncate(16);
            k2.extend_from_slice(&unhex(key)[16..]);
            let mut k2 = InlineKey::new(suite, &k2).expect("key 2");
            k2.mki = Some(Mki {
                value: 0xf3a1_4671,
                len: 4,
            });
            keys.push(k2);
        }
        let a = CryptoAttr {
            tag: 1,
            suite,
            keys,
            params: SessionParams::default(),
        };
        let (mut tx, mut rx) = pair(&a);
        let mut out = Vec::new();
        tx.protect_rtp(&unhex(RTP), &mut out).expect("protect");
        assert_eq!(hex(&out), srtp, "{suite} {mki:?}");
        rx.unprotect_rtp(&unhex(srtp), &mut out).expect("unprotect");
        assert_eq!(hex(&out), RTP);
        if !srtcp.is_empty() {
            tx.protect_rtcp_with_index(&unhex(RTCP), 1, &mut out)
                .expect("protect rtcp");
            assert_eq!(hex(&out), srtcp, "{suite} {mki:?}");
            rx.unprotect_rtcp(&unhex(srtcp), &mut out)
                .expect("unprotect rtcp");
            assert_eq!(hex(&out), RTCP);
        }
    }
}

/// RFC 6188 §7.4 master key and salt, AES_192_CM_HMAC_SHA1_80: libsrtp's fixed reference
/// packet (before cisco/libsrtp#765 libsrtp derived AES-192 keys with AES-256).
#[test]
fn aes192_reference_packet_rfc6188_7_4_key() {
    let suite = SrtpSuite::AesCm192HmacSha1_80;
    let key = unhex("73edc66c4fa15776fb57f9505c17136550ffda71f3e8e5f1c8522f3acd4ce86d5add78edbb11");
    let a = CryptoAttr {
        tag: 1,
        suite,
        keys: vec![InlineKey::new(suite, &key).expect("key")],
        params: SessionParams::default(),
    };
    let (mut tx, mut rx) = pair(&a);
    let plain = unhex("800f0000decafbad00000000abababababababababababababababab");
    let expected = "800f0000decafbad00000000d98865552f2762c3ef37f837acfdb7122d6bc4dc84c76f74aea5";
    let mut out = Vec::new();
    tx.protect_rtp(&plain, &mut out).expect("protect");
    assert_eq!(hex(&out), expected);
    rx.unprotect_rtp(&unhex(expected), &mut out)
        .expect("unprotect");
    assert_eq!(out, plain);
}
