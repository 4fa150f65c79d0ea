//! Reassembly with bounded memory: IP fragments into datagrams, TCP segments into byte streams,
//! every buffer under one [`Budget`].

pub mod budget;
pub mod defrag;
pub mod tcp;

pub use budget::{Budget, Evict};
pub use defrag::{DefragConfig, DefragError, Defragmenter, Reassembled};
pub use tcp::{ByteStream, FlowKey, TcpConfig, TcpError, TcpReassembler};
