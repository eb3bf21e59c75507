//! Giving freed heap back to the system.
//!
//! Loading the programs parses the kernel's BTF (tens of MiB, freed once
//! loaded), and publishing a segment encodes whole row groups: both leave
//! large free regions the allocator keeps mapped, which a long-running
//! monitor would carry as resident memory for nothing.

/// Returns the allocator's free memory to the system; a no-op where the C
/// library has no `malloc_trim`.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
