//! voxtap's sans-IO engine.
//!
//! The data flow is capture → `wire` → `reasm` → `sip`/`sdp` → `dialog` → `rtp` →
//! `media` → events. The engine is fed `(timestamp, link type, frame)` and hands back
//! [`event::Event`]s; it owns no clock, file, socket or thread, so replay and live capture run
//! the same code and every test is deterministic. Time comes only from packet timestamps.

pub mod codec;
pub mod event;
pub mod rtp;
pub mod stats;
pub mod time;

pub use event::Event;
pub use time::Timestamp;
