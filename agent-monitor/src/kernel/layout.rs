//! The kernel structure offsets the probes need, resolved from BTF.

use agent_monitor_common::layout::{FIELDS, KernelLayout};

use crate::kernel::btf::{Btf, BtfError};

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error("{strukt}.{path} is {actual} bytes in this kernel, the probes read {expected}")]
    Size {
        strukt: &'static str,
        path: &'static str,
        expected: u32,
        actual: u32,
    },
}

/// Resolves every field of [`KernelLayout`]. A field whose size differs
/// from what the probes read would be misread, so that is an error too.
pub fn resolve(btf: &Btf) -> Result<KernelLayout, LayoutError> {
    let mut offsets = Vec::with_capacity(FIELDS.len());
    for field in FIELDS {
        if field.size != 0 {
            let actual = btf.field_size(field.strukt, field.path)?;
            if actual != field.size {
                return Err(LayoutError::Size {
                    strukt: field.strukt,
                    path: field.path,
                    expected: field.size,
                    actual,
                });
            }
        }
        offsets.push(btf.field_offset(field.strukt, field.path)?);
    }
    Ok(KernelLayout::from_offsets(&offsets).expect("one offset per field"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against the BTF of the kernel the tests run on.
    #[test]
    fn resolves_every_field_on_this_kernel() {
        let btf = Btf::from_file(std::path::Path::new("/sys/kernel/btf/vmlinux"))
            .expect("this test needs /sys/kernel/btf/vmlinux");
        let layout = resolve(&btf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(layout.task_tgid, layout.task_pid + 4);
        assert!(layout.mm_arg_end > layout.mm_arg_start);
        assert_eq!(layout.path_dentry, layout.path_mnt + 8);
        // The probes read uid, gid and name in two reads only when these
        // hold (`Task::identity`); on this kernel they must.
        assert_eq!(layout.cred_gid, layout.cred_uid + 4);
        assert!(
            [8, 16, 24].contains(&(layout.task_comm - layout.task_cred)),
            "comm is {} bytes after cred",
            i64::from(layout.task_comm) - i64::from(layout.task_cred)
        );
    }
}
