//! Kernel structure offsets, resolved by userspace from the running kernel's
//! BTF and handed to the programs as a global before load.
//!
//! aya's Rust programs have no CO-RE relocations, so this is how the probes
//! read `task_struct` and friends without hard-coding one kernel's layout.
//! The table below is the one list: it defines the struct the programs read
//! and the lookups userspace makes.

/// One offset the programs need: `offset_of(strukt, path)`, read as `size`
/// bytes (0: the offset of an embedded struct, not read directly).
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub strukt: &'static str,
    pub path: &'static str,
    pub size: u32,
}

macro_rules! kernel_layout {
    ($($field:ident => $strukt:literal, $path:literal, $size:literal;)*) => {
        /// Byte offsets of the fields the probes read, each within the
        /// struct its name starts with.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[repr(C)]
        pub struct KernelLayout {
            $(pub $field: u32,)*
        }

        /// How to resolve every field of [`KernelLayout`], in order.
        pub const FIELDS: &[Field] = &[
            $(Field { name: stringify!($field), strukt: $strukt, path: $path, size: $size },)*
        ];

        impl KernelLayout {
            /// All zero: what the global holds until userspace sets it.
            pub const ZERO: KernelLayout = KernelLayout { $($field: 0,)* };

            /// Builds the layout from offsets in [`FIELDS`] order.
            pub fn from_offsets(offsets: &[u32]) -> Option<KernelLayout> {
                let mut offsets = offsets.iter().copied();
                let layout = KernelLayout { $($field: offsets.next()?,)* };
                offsets.next().is_none().then_some(layout)
            }
        }
    };
}

kernel_layout! {
    task_pid => "task_struct", "pid", 4;
    task_tgid => "task_struct", "tgid", 4;
    task_real_parent => "task_struct", "real_parent", 8;
    task_group_leader => "task_struct", "group_leader", 8;
    task_start_boottime => "task_struct", "start_boottime", 8;
    task_exit_code => "task_struct", "exit_code", 4;
    task_mm => "task_struct", "mm", 8;
    task_signal => "task_struct", "signal", 8;
    task_cred => "task_struct", "cred", 8;
    task_comm => "task_struct", "comm", 16;
    task_fs => "task_struct", "fs", 8;
    task_files => "task_struct", "files", 8;
    cred_uid => "cred", "uid", 4;
    cred_gid => "cred", "gid", 4;
    signal_live => "signal_struct", "live.counter", 4;
    mm_arg_start => "mm_struct", "arg_start", 8;
    mm_arg_end => "mm_struct", "arg_end", 8;
    binprm_filename => "linux_binprm", "filename", 8;
    fs_pwd => "fs_struct", "pwd", 0;
    fs_root => "fs_struct", "root", 0;
    path_mnt => "path", "mnt", 8;
    path_dentry => "path", "dentry", 8;
    dentry_parent => "dentry", "d_parent", 8;
    dentry_name => "dentry", "d_name.name", 8;
    vfsmount_root => "vfsmount", "mnt_root", 8;
    mount_mnt => "mount", "mnt", 0;
    mount_parent => "mount", "mnt_parent", 8;
    mount_mountpoint => "mount", "mnt_mountpoint", 8;
    files_fdt => "files_struct", "fdt", 8;
    fdtable_max_fds => "fdtable", "max_fds", 4;
    fdtable_fd => "fdtable", "fd", 8;
    file_path => "file", "f_path", 0;
    file_inode => "file", "f_inode", 8;
    file_mode => "file", "f_mode", 4;
    file_private_data => "file", "private_data", 8;
    inode_mode => "inode", "i_mode", 2;
    socket_type => "socket", "type", 2;
    socket_sk => "socket", "sk", 8;
    sock_family => "sock", "__sk_common.skc_family", 2;
    sock_num => "sock", "__sk_common.skc_num", 2;
    sock_dport => "sock", "__sk_common.skc_dport", 2;
    sock_daddr => "sock", "__sk_common.skc_daddr", 4;
    sock_rcv_saddr => "sock", "__sk_common.skc_rcv_saddr", 4;
    sock_v6_daddr => "sock", "__sk_common.skc_v6_daddr", 16;
    sock_v6_rcv_saddr => "sock", "__sk_common.skc_v6_rcv_saddr", 16;
}

const _: () = assert!(core::mem::size_of::<KernelLayout>() == FIELDS.len() * 4);
const _: () = assert!(core::mem::align_of::<KernelLayout>() == 4);
