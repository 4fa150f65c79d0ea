//! Replays the `cargo fuzz` corpus (fuzz/corpus/<target>/) through the same entry points on
//! stable Rust, so every seed and every crash ever found stays a regression test.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        f(&data);
        // Every prefix too: truncation is the commonest damage.
        for cut in (0..data.len()).step_by(7) {
            f(&data[..cut]);
        }
        n += 1;
    }
    assert!(n > 0, "no corpus for {target}");
}

#[test]
fn frame_corpus() {
    replay("frame", voxtap_core::fuzz::frame);
}

#[test]
fn sip_corpus() {
    replay("sip", voxtap_core::fuzz::sip);
}

#[test]
fn sdp_corpus() {
    replay("sdp", voxtap_core::fuzz::sdp);
}

#[test]
fn rtp_corpus() {
    replay("rtp", voxtap_core::fuzz::rtp);
}

#[test]
fn engine_corpus() {
    replay("engine", voxtap_core::fuzz::engine);
}

#[test]
fn engine_timed_corpus() {
    replay("engine_timed", voxtap_core::fuzz::engine_timed);
}

#[test]
fn engine_workers_corpus() {
    replay("engine_workers", voxtap_core::fuzz::engine_workers);
}
