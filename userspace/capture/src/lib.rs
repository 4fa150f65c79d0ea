//! Capture backends for voxtap. They hand out `(timestamp, link type, frame)` and know nothing
//! of SIP. Offline files are here, and the XDP pre-filter that feeds AF_XDP (`xdp`); AF_PACKET and
//! AF_XDP sockets come with live capture.

pub mod file;
pub mod xdp;

pub use file::{CaptureError, CaptureFile, FrameRef};

/// The network interfaces of this network namespace, sorted by name (from `/sys/class/net`),
/// for an error that names one that is not there.
pub fn interface_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether an interface of that name exists here (`if_nametoindex(3)`).
pub fn interface_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// "no network interface named X; the interfaces here are: a, b" (what a typo needs to hear;
/// another capture method would not help).
pub fn no_such_interface(name: &str) -> String {
    let names = interface_names();
    if names.is_empty() {
        format!("no network interface named {name:?} (and none are listed in /sys/class/net)")
    } else {
        format!(
            "no network interface named {name:?}; the interfaces here are: {}",
            names.join(", ")
        )
    }
}
#[cfg(target_os = "linux")]
pub mod afpacket;
#[cfg(target_os = "linux")]
pub mod afxdp;
pub mod live;
#[cfg(target_os = "linux")]
pub mod promisc;
#[cfg(all(feature = "testnet", target_os = "linux"))]
pub mod testnet;
