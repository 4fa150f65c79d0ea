//! Capture backends for voxtap. They hand out `(timestamp, link type, frame)` and know nothing
//! of SIP. Offline files are here; AF_PACKET and AF_XDP come with live capture.

pub mod file;

pub use file::{CaptureError, CaptureFile, FrameRef};
