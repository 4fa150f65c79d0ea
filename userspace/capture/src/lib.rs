//! Capture backends.
