//! voxtap's live view, without I/O of its own where it can be helped: the status protocol a
//! running voxtap publishes ([`proto`]), the terminal dashboard that draws it ([`tui`]) and
//! the Prometheus exposition of the same figures ([`metrics`]).

pub mod metrics;
pub mod proto;
pub mod tui;
