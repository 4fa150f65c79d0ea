//! The Prometheus exposition of a [`crate::proto::Snapshot`] (docs/metrics.md).
