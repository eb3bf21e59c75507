//! The kernel structure offsets the probes need, resolved from BTF.

use agent_monitor_common::layout::KernelLayout;

use crate::kernel::btf::{Btf, BtfError};

/// Every field the probes read, with the size they read it as. A size that
/// differs would mean a misread, so it is an error, not a warning.
const FIELDS: [(&str, &str, u32); 12] = [
    ("task_struct", "pid", 4),
    ("task_struct", "tgid", 4),
    ("task_struct", "real_parent", 8),
    ("task_struct", "group_leader", 8),
    ("task_struct", "start_boottime", 8),
    ("task_struct", "exit_code", 4),
    ("task_struct", "mm", 8),
    ("task_struct", "signal", 8),
    ("signal_struct", "live.counter", 4),
    ("mm_struct", "arg_start", 8),
    ("mm_struct", "arg_end", 8),
    ("linux_binprm", "filename", 8),
];

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error("{strukt}.{field} is {actual} bytes in this kernel, the probes read {expected}")]
    Size {
        strukt: &'static str,
        field: &'static str,
        expected: u32,
        actual: u32,
    },
}

pub fn resolve(btf: &Btf) -> Result<KernelLayout, LayoutError> {
    let mut offsets = [0u32; FIELDS.len()];
    for (slot, (strukt, field, expected)) in offsets.iter_mut().zip(FIELDS) {
        let actual = btf.field_size(strukt, field)?;
        if actual != expected {
            return Err(LayoutError::Size {
                strukt,
                field,
                expected,
                actual,
            });
        }
        *slot = btf.field_offset(strukt, field)?;
    }
    let [
        task_pid,
        task_tgid,
        task_real_parent,
        task_group_leader,
        task_start_boottime,
        task_exit_code,
        task_mm,
        task_signal,
        signal_live,
        mm_arg_start,
        mm_arg_end,
        binprm_filename,
    ] = offsets;
    Ok(KernelLayout {
        task_pid,
        task_tgid,
        task_real_parent,
        task_group_leader,
        task_start_boottime,
        task_exit_code,
        task_mm,
        task_signal,
        signal_live,
        mm_arg_start,
        mm_arg_end,
        binprm_filename,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against the BTF of the kernel the tests run on.
    #[test]
    fn resolves_every_field_on_this_kernel() {
        let btf = Btf::from_file(std::path::Path::new("/sys/kernel/btf/vmlinux"))
            .expect("this test needs /sys/kernel/btf/vmlinux");
        let layout = resolve(&btf).expect("every field resolves");
        assert_ne!(layout.task_tgid, layout.task_pid);
        assert_eq!(layout.task_tgid, layout.task_pid + 4);
        assert!(layout.mm_arg_end > layout.mm_arg_start);
    }
}
