//! PBX scenario tests.
