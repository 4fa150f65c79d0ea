//! Dropping privileges once capture is set up: the XDP program is attached, the sockets are
//! bound and the output is open, so from then on voxtap needs no capability at all.

use anyhow::{Context, Result};
use caps::{CapSet, CapsHashSet};

/// Empties the effective, permitted, inheritable and ambient capability sets and forbids
/// regaining any (no_new_privs), so a bug in packet handling cannot use them.
pub fn drop_all() -> Result<()> {
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::set(None, set, &CapsHashSet::new())
            .with_context(|| format!("cannot clear the {set:?} capability set"))?;
    }
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes plain integer arguments and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot set no_new_privs");
    }
    Ok(())
}
