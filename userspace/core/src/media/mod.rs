//! Media: the stereo timeline of a recording and SRTP. No SIP here.
//!
//! Decoders live in the `voxtap-codec` crate (re-exported as [`crate::codec`]), one file per
//! codec family.

pub mod srtp;
pub mod timeline;

pub use timeline::{Placement, Timeline};
