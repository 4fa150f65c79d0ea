//! Finds the C codec libraries. A missing one is a warning, not an error: the crate builds
//! without it and `decoder_for` says `Undecodable::NotBuilt` for its codecs.
//!
//! `VOXTAP_CODEC_WITHOUT=opus,gsm,...` (or `all`) builds as if those libraries were absent,
//! so the fallback path can be tested on a machine that has them.

use std::env;
use std::path::PathBuf;

/// One C library: the cfg it turns on, its pkg-config name (if it ships a .pc), the header
/// that proves it is there otherwise, and the name to link.
struct Lib {
    cfg: &'static str,
    pkg: Option<&'static str>,
    header: &'static str,
    link: &'static str,
    /// Only the `encode` feature needs it.
    encode_only: bool,
}

const LIBS: &[Lib] = &[
    Lib {
        cfg: "have_opus",
        pkg: Some("opus"),
        header: "opus/opus.h",
        link: "opus",
        encode_only: false,
    },
    Lib {
        cfg: "have_bcg729",
        pkg: Some("libbcg729"),
        header: "bcg729/decoder.h",
        link: "bcg729",
        encode_only: false,
    },
    // Debian's libgsm1-dev ships no .pc file.
    Lib {
        cfg: "have_gsm",
        pkg: None,
        header: "gsm/gsm.h",
        link: "gsm",
        encode_only: false,
    },
    Lib {
        cfg: "have_speex",
        pkg: Some("speex"),
        header: "speex/speex.h",
        link: "speex",
        encode_only: false,
    },
    Lib {
        cfg: "have_amrnb",
        pkg: Some("opencore-amrnb"),
        header: "opencore-amrnb/interf_dec.h",
        link: "opencore-amrnb",
        encode_only: false,
    },
    Lib {
        cfg: "have_amrwb",
        pkg: Some("opencore-amrwb"),
        header: "opencore-amrwb/dec_if.h",
        link: "opencore-amrwb",
        encode_only: false,
    },
    Lib {
        cfg: "have_avcodec",
        pkg: Some("libavcodec"),
        header: "libavcodec/avcodec.h",
        link: "avcodec",
        encode_only: false,
    },
    Lib {
        cfg: "have_spandsp",
        pkg: Some("spandsp"),
        header: "spandsp/g722.h",
        link: "spandsp",
        encode_only: true,
    },
    Lib {
        cfg: "have_voamrwbenc",
        pkg: Some("vo-amrwbenc"),
        header: "vo-amrwbenc/enc_if.h",
        link: "vo-amrwbenc",
        encode_only: true,
    },
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/ilbc_shim.c");
    println!("cargo:rerun-if-env-changed=VOXTAP_CODEC_WITHOUT");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    // A library installed after the first build (`cargo xtask deps` run late, an `apt-get
    // install` of one codec) must be found without `cargo clean`: dpkg's database changes
    // with every package installed or removed, so probe again then. (A library built by hand
    // into /usr/local is not seen this way: `cargo clean -p voxtap-codec` after it.)
    for db in ["/var/lib/dpkg/status", "/var/lib/rpm/rpmdb.sqlite"] {
        if std::path::Path::new(db).exists() {
            println!("cargo:rerun-if-changed={db}");
        }
    }
    let without = env::var("VOXTAP_CODEC_WITHOUT").unwrap_or_default();
    let disabled = |cfg: &str| {
        without
            .split(',')
            .map(str::trim)
            .any(|w| w == "all" || w == cfg || w == cfg.trim_start_matches("have_"))
    };
    let encode = env::var_os("CARGO_FEATURE_ENCODE").is_some();

    for lib in LIBS {
        println!("cargo:rustc-check-cfg=cfg({})", lib.cfg);
        if lib.encode_only && !encode {
            continue;
        }
        if disabled(lib.cfg) {
            println!(
                "cargo:warning={} disabled by VOXTAP_CODEC_WITHOUT",
                lib.link
            );
            continue;
        }
        match find(lib) {
            Some(includes) => {
                println!("cargo:rustc-cfg={}", lib.cfg);
                if lib.cfg == "have_avcodec" {
                    // The shim calls libavutil too (frames, channel layouts).
                    let _ = pkg_config::Config::new().probe("libavutil");
                    build_ilbc_shim(&includes);
                }
            }
            None => println!(
                "cargo:warning=lib{} not found: its codecs are not built (install its -dev package)",
                lib.link
            ),
        }
    }
}

/// The include paths of `lib` when it is there (and links it), else None.
fn find(lib: &Lib) -> Option<Vec<PathBuf>> {
    if let Some(pkg) = lib.pkg
        && let Ok(found) = pkg_config::Config::new().probe(pkg)
    {
        return Some(found.include_paths);
    }
    // Debian puts some headers (libavcodec's) under the multiarch directory.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let roots = [
        PathBuf::from("/usr/include"),
        PathBuf::from("/usr/local/include"),
        PathBuf::from(format!("/usr/include/{arch}-linux-gnu")),
    ];
    let root = roots.into_iter().find(|r| r.join(lib.header).exists())?;
    println!("cargo:rustc-link-lib={}", lib.link);
    if lib.link == "avcodec" {
        println!("cargo:rustc-link-lib=avutil");
    }
    Some(vec![root])
}

fn build_ilbc_shim(includes: &[PathBuf]) {
    let mut build = cc::Build::new();
    build.file("csrc/ilbc_shim.c").warnings(true);
    for inc in includes {
        build.include(inc);
    }
    build.compile("voxtap_ilbc_shim");
}
