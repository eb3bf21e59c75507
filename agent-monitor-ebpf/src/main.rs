//! agent-monitor's kernel programs. One module per hook family under
//! `probes/`, mirrored by the event modules of `agent-monitor-common`.
#![no_std]
#![no_main]
// The BPF target has no `AtomicU64` read-modify-write; the intrinsic lowers
// to BPF's atomic add (see `maps::mark_tracked`).
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
// A tail call with a constant index is written in assembly
// (`maps::tail_call_exit`).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]
#![cfg_attr(
    target_arch = "bpf",
    allow(
        internal_features,
        reason = "atomic_xadd is the BPF target's only atomic add"
    )
)]

mod capture;
mod emit;
mod maps;
mod probes;
mod regs;
mod sock;
mod task;
mod vfs;

// Verified BPF code cannot panic; the handler only has to exist.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_probe_read_kernel and the ring-buffer helpers are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
