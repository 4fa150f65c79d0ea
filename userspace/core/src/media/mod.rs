//! Media: the stereo timeline of a recording, resampling and SRTP. No SIP here.
//!
//! Decoders live in the `voxtap-codec` crate (re-exported as [`crate::codec`]), one file per
//! codec family.

pub mod resample;
pub mod srtp;
pub mod timeline;

pub use resample::Resample;
pub use timeline::{AudioSink, ChannelFigures, Placement, Timeline, TimelineConfig};
