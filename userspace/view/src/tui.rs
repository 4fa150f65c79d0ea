//! The terminal dashboard: draws [`crate::proto::Snapshot`]s with ratatui (docs/tui.md).
