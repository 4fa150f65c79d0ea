//! Recording and catalog sinks.
