//! Reassembly with bounded memory: IP fragments into datagrams, TCP segments into byte streams.

pub mod defrag;
pub mod tcp;

pub use defrag::{DefragConfig, DefragError, Defragmenter, Reassembled};
pub use tcp::{ByteStream, FlowKey, TcpConfig, TcpError, TcpReassembler};
