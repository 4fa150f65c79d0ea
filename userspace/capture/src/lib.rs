//! Capture backends for voxtap. They hand out `(timestamp, link type, frame)` and know nothing
//! of SIP. Offline files are here, and the XDP pre-filter that feeds AF_XDP (`xdp`); AF_PACKET and
//! AF_XDP sockets come with live capture.

pub mod file;
pub mod xdp;

pub use file::{CaptureError, CaptureFile, FrameRef};
#[cfg(target_os = "linux")]
pub mod afpacket;
#[cfg(target_os = "linux")]
pub mod afxdp;
pub mod live;
#[cfg(target_os = "linux")]
pub mod promisc;
#[cfg(all(feature = "testnet", target_os = "linux"))]
pub mod testnet;
