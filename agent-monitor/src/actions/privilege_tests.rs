use agent_monitor_common::syscall::FIELD_UNREADABLE;

use super::*;
use crate::{
    actions::ActionFields,
    test_support::{Builder, action},
};

/// -1 as the 32-bit `uid_t`/`pid_t` a C caller passes.
const MINUS_ONE: u64 = 0xffff_ffff;

fn ids(ids: &[i64]) -> ActionFields {
    ActionFields {
        ids: Some(ids.to_vec()),
        ..Default::default()
    }
}

#[test]
fn setuid_family_reports_its_ids() {
    let got = Builder::new(nr::SETUID).args(&[0]).ret(-1).action();
    assert_eq!(got, action(ActionKind::PrivSetuid, "setuid", -1, ids(&[0])));
    assert_eq!(got.error(), Some("EPERM"));
    assert_eq!(got.kind.name(), "priv.setuid");

    // -1 (unchanged), as a 32-bit value and sign-extended; the unused
    // argument registers are not ids.
    let got = Builder::new(nr::SETRESUID)
        .args(&[MINUS_ONE, 1000, u64::MAX, 77, 88, 99])
        .action();
    let want = action(ActionKind::PrivSetuid, "setresuid", 0, ids(&[-1, 1000, -1]));
    assert_eq!(got, want);

    let got = Builder::new(nr::SETREUID).args(&[MINUS_ONE, 0, 5]).action();
    let want = action(ActionKind::PrivSetuid, "setreuid", 0, ids(&[-1, 0]));
    assert_eq!(got, want);

    // setfsuid returns the previous fsuid, not an error.
    let got = Builder::new(nr::SETFSUID).args(&[0]).ret(1000).action();
    assert_eq!(
        got,
        action(ActionKind::PrivSetuid, "setfsuid", 1000, ids(&[0]))
    );
    assert_eq!(got.error(), None);
}

#[test]
fn setgid_family_reports_its_ids() {
    let got = Builder::new(nr::SETGID).args(&[27]).action();
    assert_eq!(got, action(ActionKind::PrivSetgid, "setgid", 0, ids(&[27])));
    assert_eq!(got.kind.name(), "priv.setgid");

    let got = Builder::new(nr::SETRESGID)
        .args(&[MINUS_ONE, MINUS_ONE, 0])
        .action();
    let want = action(ActionKind::PrivSetgid, "setresgid", 0, ids(&[-1, -1, 0]));
    assert_eq!(got, want);

    let got = Builder::new(nr::SETREGID).args(&[4, 4]).action();
    assert_eq!(got.syscall, "setregid");
    assert_eq!(got.fields.ids, Some(vec![4, 4]));
    let got = Builder::new(nr::SETFSGID).args(&[0]).action();
    assert_eq!(
        (got.kind, got.syscall),
        (ActionKind::PrivSetgid, "setfsgid")
    );
}

/// `struct __user_cap_data_struct[2]`: effective, permitted, inheritable
/// of the low 32 capabilities, then of the high ones.
fn cap_data(low: [u32; 3], high: [u32; 3]) -> Vec<u8> {
    low.iter()
        .chain(&high)
        .flat_map(|word| word.to_ne_bytes())
        .collect()
}

#[test]
fn capset_shows_three_64_bit_masks() {
    // CAP_NET_BIND_SERVICE (10) effective; everything up to CAP_CHECKPOINT_RESTORE (40)
    // permitted; CAP_SYS_ADMIN (21) and CAP_BPF (39) inheritable.
    let data = cap_data([1 << 10, u32::MAX, 1 << 21], [0, 0x1ff, 1 << 7]);
    let got = Builder::new(nr::CAPSET)
        .args(&[0x7ff0, 0x7fe0])
        .field(tag::USER_STRUCT, data)
        .action();
    let fields = ActionFields {
        caps: Some(vec![
            "0x0000000000000400".into(),
            "0x000001ffffffffff".into(),
            "0x0000008000200000".into(),
        ]),
        ..Default::default()
    };
    assert_eq!(got, action(ActionKind::PrivCapset, "capset", 0, fields));
    assert_eq!(got.kind.name(), "priv.capset");

    // Dropping everything is all zeros.
    let got = Builder::new(nr::CAPSET)
        .field(tag::USER_STRUCT, cap_data([0; 3], [0; 3]))
        .action();
    assert_eq!(got.fields.caps, Some(vec!["0x0000000000000000".into(); 3]));
    // Without the struct there are no caps to show.
    let got = Builder::new(nr::CAPSET).ret(-14).action();
    assert_eq!(
        got,
        action(
            ActionKind::PrivCapset,
            "capset",
            -14,
            ActionFields::default()
        )
    );
}

/// BUG: capset data the kernel could not read (`FIELD_UNREADABLE`, no
/// bytes) is shown as three all-zero masks, which reads as "dropped every
/// capability"; nothing is known, so `caps` should be absent.
#[test]
fn unreadable_capset_data_is_no_caps_rather_than_zero_caps() {
    let got = Builder::new(nr::CAPSET)
        .ret(-14)
        .flagged(tag::USER_STRUCT, FIELD_UNREADABLE, b"")
        .action();
    assert_eq!(got.fields.caps, None);
}

#[test]
fn ptrace_reports_request_and_target() {
    // PTRACE_ATTACH (16) of pid 1234.
    let got = Builder::new(nr::PTRACE).args(&[16, 1234, 0, 0]).action();
    let fields = ActionFields {
        request: Some(16),
        target_pid: Some(1234),
        ..Default::default()
    };
    assert_eq!(got, action(ActionKind::ProcPtrace, "ptrace", 0, fields));
    assert_eq!(got.kind.name(), "proc.ptrace");

    // PTRACE_SEIZE (0x4206), refused.
    let got = Builder::new(nr::PTRACE)
        .args(&[0x4206, 1, 0, 0])
        .ret(-1)
        .action();
    let f = &got.fields;
    assert_eq!((f.request, f.target_pid), (Some(0x4206), Some(1)));
    assert_eq!(got.error(), Some("EPERM"));
}

#[test]
fn signals_report_target_and_signal() {
    let signal = |target: i64, signal: i64| ActionFields {
        target_pid: Some(target),
        signal: Some(signal),
        ..Default::default()
    };
    let got = Builder::new(nr::KILL).args(&[1234, 15]).action();
    assert_eq!(
        got,
        action(ActionKind::ProcSignal, "kill", 0, signal(1234, 15))
    );
    assert_eq!(got.kind.name(), "proc.signal");

    // kill(-1, SIGKILL): every process it may signal.
    let got = Builder::new(nr::KILL).args(&[MINUS_ONE, 9]).action();
    assert_eq!(
        got,
        action(ActionKind::ProcSignal, "kill", 0, signal(-1, 9))
    );
    // kill(-pgid, SIGTERM), sign-extended by the caller.
    let got = Builder::new(nr::KILL)
        .args(&[-4321i64 as u64, 15])
        .ret(-3)
        .action();
    assert_eq!(
        got,
        action(ActionKind::ProcSignal, "kill", -3, signal(-4321, 15))
    );
    assert_eq!(got.error(), Some("ESRCH"));

    // tgkill(tgid, tid, sig): the process is the target.
    let got = Builder::new(nr::TGKILL).args(&[1234, 1240, 9]).action();
    assert_eq!(
        got,
        action(ActionKind::ProcSignal, "tgkill", 0, signal(1234, 9))
    );
    let got = Builder::new(nr::TKILL).args(&[1240, 19]).action();
    assert_eq!(
        got,
        action(ActionKind::ProcSignal, "tkill", 0, signal(1240, 19))
    );
}

#[test]
fn bpf_names_its_command_and_the_type_of_a_load() {
    // union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, …
    let mut attr = 6u32.to_ne_bytes().to_vec(); // BPF_PROG_TYPE_TRACEPOINT
    attr.extend_from_slice(&12u32.to_ne_bytes());
    attr.resize(64, 0);
    let got = Builder::new(nr::BPF)
        .args(&[5, 0x7ff0, 148])
        .ret(7)
        .field(tag::USER_STRUCT, &attr)
        .action();
    let fields = ActionFields {
        bpf_cmd: Some("prog_load"),
        prog_type: Some(6),
        ..Default::default()
    };
    assert_eq!(got, action(ActionKind::KernelBpf, "bpf", 7, fields));
    assert_eq!(got.kind.name(), "kernel.bpf");

    let cmd = |cmd: u64| {
        let a = Builder::new(nr::BPF)
            .args(&[cmd, 0x7ff0, 64])
            .field(tag::USER_STRUCT, &attr)
            .action();
        (a.fields.bpf_cmd, a.fields.prog_type)
    };
    // Only a load has a program type; the others' attr means something else.
    assert_eq!(cmd(8), (Some("prog_attach"), None));
    assert_eq!(cmd(17), (Some("raw_tracepoint_open"), None));
    assert_eq!(cmd(28), (Some("link_create"), None));
    assert_eq!(cmd(0), (Some("other"), None));

    // A load whose attr was too short to hold the type.
    let got = Builder::new(nr::BPF)
        .args(&[5, 0x7ff0, 2])
        .field(tag::USER_STRUCT, [1, 0])
        .action();
    let f = got.fields;
    assert_eq!((f.bpf_cmd, f.prog_type), (Some("prog_load"), None));
}

#[test]
fn only_privilege_syscalls_are_privilege_actions() {
    assert_eq!(interpret(&Builder::new(nr::CONNECT).record()), None);
    assert_eq!(interpret(&Builder::new(nr::OPEN).record()), None);
}
