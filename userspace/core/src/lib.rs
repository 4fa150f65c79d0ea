//! voxtap's sans-IO engine.
//!
//! The data flow is capture → `wire` → `reasm` → `sip`/`sdp` → `dialog` → `rtp` →
//! `media` → events. The engine is fed `(timestamp, link type, frame)` and hands back
//! [`event::Event`]s; it owns no clock, file, socket or thread, so replay and live capture run
//! the same code and every test is deterministic. Time comes only from packet timestamps.
//!
//! The words the layers share (handles, [`vocab::Side`], [`vocab::Party`], [`vocab::Action`]...)
//! are in [`vocab`], which imports nothing of the crate: [`event`], [`policy`], [`dialog`] and
//! the store speak them without importing one another. The recording commands a SIP message
//! carries (the INFO record key, media control) are the policy's input, read in
//! [`policy::signals`]; the dialogs only say which call and side sent them.

pub use voxtap_codec as codec;
pub mod conversation;
pub mod dialog;
pub mod dtmf;
pub mod engine;
pub mod event;
pub mod evidence;
pub mod fuzz;
pub mod media;
pub mod net;
pub mod policy;
pub mod reasm;
pub mod recording;
pub mod rtp;
pub mod sdp;
pub mod servers;
pub mod sip;
pub mod stats;
pub mod stream;
pub mod time;
pub mod vocab;
pub mod wire;

pub use engine::{Engine, EngineConfig};
pub use event::Event;
pub use time::Timestamp;
pub use wire::LinkType;
