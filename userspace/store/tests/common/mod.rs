//! What the limit tests share: calls and recordings as events, audio that says which
//! recording and frame it is, and the files read back.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use voxtap_core::Timestamp;
use voxtap_core::event::{
    CallStarted, ChannelReport, EndReason, Event, RecordingOutcome, RecordingStarted,
    RecordingState, StopReason,
};
use voxtap_core::vocab::{CallHandle, Party, RecordingFormat, RecordingHandle, SipTransport};
use voxtap_store::Store;

pub const T0: u64 = 1_709_287_200;
pub const RATE: u32 = 8000;
/// 20 ms of 8 kHz audio.
pub const FRAMES: u64 = 160;

pub fn t(ms: u64) -> Timestamp {
    Timestamp::from_nanos(T0 * 1_000_000_000 + ms * 1_000_000)
}

pub fn call_started(call: u64) -> Event {
    Event::CallStarted(CallStarted {
        call: CallHandle(call),
        ts: t(0),
        sip_call_id: format!("call-{call}@limits"),
        from_tag: "f".into(),
        caller: Party {
            user: "alice".into(),
            host: "a.example".into(),
            display_name: None,
        },
        callee: Party {
            user: "bob".into(),
            host: "b.example".into(),
            display_name: None,
        },
        caller_signalling: "192.0.2.10:5060".parse().unwrap(),
        callee_signalling: "192.0.2.20:5060".parse().unwrap(),
        transport: SipTransport::Udp,
        picked_up: false,
    })
}

pub fn open_call(store: &mut Store, n: u64) {
    store.handle(call_started(n)).unwrap();
    store
        .handle(Event::CallAnswered {
            call: CallHandle(n),
            ts: t(10),
            to_tag: "t".into(),
        })
        .unwrap();
    store
        .handle(Event::RecordingStarted(RecordingStarted {
            rec: RecordingHandle(n),
            call: CallHandle(n),
            ts: t(10),
            sample_rate: RATE,
            channels: 2,
            format: RecordingFormat::Wav,
            codec: "PCMU".into(),
            reason: "test".into(),
            min_secs: None,
            repeats: None,
        }))
        .unwrap();
}

/// Frame `i` of recording `rec`: different on each channel and in each recording.
pub fn sample(rec: u64, i: u64) -> [i16; 2] {
    let v = ((rec * 31 + i) % 20_000) as i16;
    [v, -v]
}

pub fn audio(rec: u64, packet: u64) -> Event {
    let samples = (packet * FRAMES..(packet + 1) * FRAMES)
        .flat_map(|i| sample(rec, i))
        .collect();
    Event::RecordingAudio {
        rec: RecordingHandle(rec),
        samples,
    }
}

pub fn stop(store: &mut Store, n: u64, frames: u64) {
    let ch = ChannelReport {
        heard_frames: frames,
        ..Default::default()
    };
    store
        .handle(Event::RecordingStopped {
            rec: RecordingHandle(n),
            call: CallHandle(n),
            ts: t(10 + frames / 8),
            frames,
            reason: StopReason::CallEnded,
            outcome: RecordingOutcome {
                state: RecordingState::Complete,
                reason: None,
                channels: [ch, ch],
            },
        })
        .unwrap();
    store
        .handle(Event::CallEnded {
            call: CallHandle(n),
            ts: t(10 + frames / 8),
            reason: EndReason::Bye,
            final_status: None,
        })
        .unwrap();
}

pub fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

pub fn set_nofile(soft: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = soft.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

pub fn wavs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn check_wav(path: &Path, rec: u64, frames: u64) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(r.duration() as u64, frames, "{}", path.display());
    let got: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    let want: Vec<i16> = (0..frames).flat_map(|i| sample(rec, i)).collect();
    assert!(
        got == want,
        "{}: the audio is not what was written",
        path.display()
    );
}
