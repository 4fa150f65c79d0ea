//! Promiscuous mode for a mirror port. Mirrored frames are addressed to other hosts, so a NIC
//! that filters by destination MAC drops them in hardware before XDP could see them. The
//! membership is held through a packet socket (PACKET_MR_PROMISC, packet(7)): the kernel
//! counts it and takes it back when the socket closes, also if the process is killed, so a
//! crash never leaves the interface promiscuous behind voxtap's back.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Holds the interface in promiscuous mode while it lives.
#[derive(Debug)]
pub struct Promiscuous {
    _socket: OwnedFd,
    ifindex: u32,
}

impl Promiscuous {
    /// Needs CAP_NET_RAW, like any packet socket; the membership outlives dropping it.
    pub fn enable(iface: &str) -> io::Result<Promiscuous> {
        let name = CString::new(iface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string we own.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no network interface named {iface:?}"),
            ));
        }
        // Protocol 0: the socket receives nothing; it exists only to hold the membership.
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("{iface}: cannot open a packet socket for promiscuous mode: {e}"),
            ));
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        // SAFETY: setsockopt reads exactly size_of::<packet_mreq>() bytes from &mreq.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("{iface}: cannot enter promiscuous mode: {e}"),
            ));
        }
        Ok(Promiscuous {
            _socket: socket,
            ifindex,
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

/// Whether the interface is promiscuous now (IFF_PROMISC), from sysfs.
pub fn is_promiscuous(iface: &str) -> io::Result<bool> {
    let flags = std::fs::read_to_string(format!("/sys/class/net/{iface}/flags"))?;
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(flags & libc::IFF_PROMISC as u32 != 0)
}
