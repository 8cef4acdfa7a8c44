//! Unit tests: compile profiles and run the program through `Filter::evaluate`.

use super::*;
use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSyscall};

fn nr(name: &str) -> i32 {
    syscalls::Sysno::from_str(name).unwrap().id()
}

fn arch() -> u32 {
    native_audit_arch().unwrap()
}

fn errno(e: i32) -> u32 {
    bpf::RET_ERRNO | e as u32
}

fn rule(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names.iter().map(|s| s.to_string()).collect());
    r.set_action(action);
    r
}

fn with_args(
    mut r: LinuxSyscall,
    args: &[(usize, LinuxSeccompOperator, u64, Option<u64>)],
) -> LinuxSyscall {
    r.set_args(Some(
        args.iter()
            .map(|&(index, op, value, value_two)| {
                let b = LinuxSeccompArgBuilder::default()
                    .index(index)
                    .op(op)
                    .value(value);
                match value_two {
                    Some(v) => b.value_two(v),
                    None => b,
                }
                .build()
                .unwrap()
            })
            .collect(),
    ));
    r
}

fn profile(default: LinuxSeccompAction, rules: Vec<LinuxSyscall>) -> LinuxSeccomp {
    let mut p = LinuxSeccomp::default();
    p.set_default_action(default);
    p.set_syscalls(Some(rules));
    p
}

fn eval(f: &Filter, name: &str, args: [u64; 6]) -> u32 {
    f.evaluate(arch(), nr(name), args)
}

const NO_ARGS: [u64; 6] = [0; 6];

/// Every jump lands inside the program and the last instruction returns, as the
/// kernel's verifier demands.
fn assert_well_formed(f: &Filter) {
    let p = f.instructions();
    assert!(!p.is_empty() && p.len() <= bpf::MAX_INSNS);
    assert_eq!(p.last().unwrap().code, bpf::RET_K);
    for (i, insn) in p.iter().enumerate() {
        let targets: Vec<usize> = match insn.code {
            bpf::JA => vec![insn.k as usize],
            bpf::JEQ_K | bpf::JGT_K | bpf::JGE_K => vec![insn.jt.into(), insn.jf.into()],
            bpf::LD_ABS | bpf::AND_K | bpf::RET_K => vec![],
            other => panic!("unexpected opcode {other:#x} at {i}"),
        };
        for t in targets {
            assert!(i + 1 + t < p.len(), "jump at {i} leaves the program");
        }
    }
}

#[test]
fn action_mapping() {
    let cases = [
        (LinuxSeccompAction::ScmpActAllow, None, bpf::RET_ALLOW),
        (LinuxSeccompAction::ScmpActErrno, None, errno(libc::EPERM)),
        (
            LinuxSeccompAction::ScmpActErrno,
            Some(13),
            errno(libc::EACCES),
        ),
        (LinuxSeccompAction::ScmpActKill, None, bpf::RET_KILL_THREAD),
        (
            LinuxSeccompAction::ScmpActKillThread,
            None,
            bpf::RET_KILL_THREAD,
        ),
        (
            LinuxSeccompAction::ScmpActKillProcess,
            None,
            bpf::RET_KILL_PROCESS,
        ),
        (LinuxSeccompAction::ScmpActTrap, None, bpf::RET_TRAP),
        (LinuxSeccompAction::ScmpActTrace, None, bpf::RET_TRACE | 1),
        (
            LinuxSeccompAction::ScmpActTrace,
            Some(7),
            bpf::RET_TRACE | 7,
        ),
        (LinuxSeccompAction::ScmpActLog, None, bpf::RET_LOG),
    ];
    for (action, errno_ret, want) in cases {
        let mut r = rule(&["mkdirat"], action);
        r.set_errno_ret(errno_ret);
        let f = compile(&profile(LinuxSeccompAction::ScmpActAllow, vec![r])).unwrap();
        assert_well_formed(&f);
        assert_eq!(
            eval(&f, "mkdirat", NO_ARGS),
            want,
            "{action:?} {errno_ret:?}"
        );
        assert_eq!(eval(&f, "getpid", NO_ARGS), bpf::RET_ALLOW);
    }
}

#[test]
fn default_action_and_default_errno() {
    let mut p = profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![rule(&["getpid"], LinuxSeccompAction::ScmpActAllow)],
    );
    let f = compile(&p).unwrap();
    // read (0) is below getpid (39): the default; mkdirat (258) is newer than
    // anything named: ENOSYS, as runc answers.
    assert_eq!(eval(&f, "read", NO_ARGS), errno(libc::EPERM));
    assert_eq!(eval(&f, "mkdirat", NO_ARGS), errno(libc::ENOSYS));
    assert_eq!(eval(&f, "getpid", NO_ARGS), bpf::RET_ALLOW);

    p.set_default_errno_ret(Some(libc::ENOSYS as u32));
    let f = compile(&p).unwrap();
    assert_eq!(eval(&f, "mkdirat", NO_ARGS), errno(libc::ENOSYS));
}

#[test]
fn empty_or_missing_syscalls_apply_the_default_to_everything() {
    let mut p = profile(LinuxSeccompAction::ScmpActKillProcess, vec![]);
    let f = compile(&p).unwrap();
    assert_well_formed(&f);
    for name in ["read", "write", "mkdirat", "exit_group"] {
        assert_eq!(eval(&f, name, NO_ARGS), bpf::RET_KILL_PROCESS);
    }
    p.set_syscalls(None);
    let g = compile(&p).unwrap();
    assert_eq!(f, g);
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let known = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno)],
    );
    let with_unknown = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![
            rule(
                &["no_such_syscall", "mkdirat", "chown32"],
                LinuxSeccompAction::ScmpActErrno,
            ),
            rule(
                &["another_made_up_one"],
                LinuxSeccompAction::ScmpActKillProcess,
            ),
        ],
    );
    // `chown32` exists only on 32-bit architectures.
    assert_eq!(compile(&known).unwrap(), compile(&with_unknown).unwrap());
}

#[test]
fn notify_asks_for_a_listener_and_is_refused_where_the_runtime_needs_the_syscall() {
    let p = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![rule(
            &["mkdirat", "unlinkat"],
            LinuxSeccompAction::ScmpActNotify,
        )],
    );
    let f = compile(&p).unwrap();
    assert!(f.has_listener());
    assert_eq!(
        f.flags() & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    );
    assert!(!compile(&profile(LinuxSeccompAction::ScmpActAllow, vec![]))
        .unwrap()
        .has_listener());

    let p = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![rule(&["write"], LinuxSeccompAction::ScmpActNotify)],
    );
    let msg = compile(&p).unwrap_err().to_string();
    assert!(
        msg.contains("SCMP_ACT_NOTIFY cannot be used for the write syscall"),
        "{msg}"
    );
    let p = profile(LinuxSeccompAction::ScmpActNotify, vec![]);
    let msg = compile(&p).unwrap_err().to_string();
    assert!(msg.contains("as default action"), "{msg}");
}

#[test]
fn invalid_inputs_are_refused() {
    let mut r = rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno);
    r.set_errno_ret(Some(70_000));
    let err = compile(&profile(LinuxSeccompAction::ScmpActAllow, vec![r])).unwrap_err();
    assert!(
        matches!(err, SeccompError::ReturnDataTooLarge { value: 70_000, .. }),
        "{err}"
    );

    let r = with_args(
        rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno),
        &[(6, LinuxSeccompOperator::ScmpCmpEq, 0, None)],
    );
    let err = compile(&profile(LinuxSeccompAction::ScmpActAllow, vec![r])).unwrap_err();
    assert!(
        matches!(err, SeccompError::ArgIndexOutOfRange { index: 6, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("mkdirat"));
}

/// 64-bit comparisons against values straddling the 32-bit halves.
#[test]
fn arg_operators() {
    use LinuxSeccompOperator as Op;
    let v: u64 = 0x0000_0001_0000_0005;
    let probes: [u64; 9] = [
        0,
        5,
        6,
        0xffff_ffff,
        0x0000_0001_0000_0000,
        0x0000_0001_0000_0004,
        v,
        0x0000_0001_0000_0006,
        u64::MAX,
    ];
    type Holds = fn(u64, u64) -> bool;
    let ops: [(Op, Holds); 6] = [
        (Op::ScmpCmpEq, |a, b| a == b),
        (Op::ScmpCmpNe, |a, b| a != b),
        (Op::ScmpCmpLt, |a, b| a < b),
        (Op::ScmpCmpLe, |a, b| a <= b),
        (Op::ScmpCmpGt, |a, b| a > b),
        (Op::ScmpCmpGe, |a, b| a >= b),
    ];
    for (op, holds) in ops {
        for index in [0usize, 3, 5] {
            let r = with_args(
                rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno),
                &[(index, op, v, None)],
            );
            let f = compile(&profile(LinuxSeccompAction::ScmpActAllow, vec![r])).unwrap();
            assert_well_formed(&f);
            for a in probes {
                let mut args = [0xdead_beef_u64; 6];
                args[index] = a;
                let want = if holds(a, v) {
                    errno(libc::EPERM)
                } else {
                    bpf::RET_ALLOW
                };
                assert_eq!(
                    eval(&f, "mkdirat", args),
                    want,
                    "{op:?} arg{index}={a:#x} vs {v:#x}"
                );
            }
        }
    }
}

#[test]
fn masked_eq_uses_value_as_mask_and_value_two_as_datum() {
    let mask = 0xff00_0000_0000_00f0_u64;
    let r = with_args(
        rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno),
        &[(
            1,
            LinuxSeccompOperator::ScmpCmpMaskedEq,
            mask,
            Some(0x1200_0000_0000_0030),
        )],
    );
    let f = compile(&profile(LinuxSeccompAction::ScmpActAllow, vec![r])).unwrap();
    let at = |a: u64| eval(&f, "mkdirat", [0, a, 0, 0, 0, 0]);
    assert_eq!(at(0x1200_0000_0000_0030), errno(libc::EPERM));
    assert_eq!(at(0x12ff_ffff_ffff_ff3f), errno(libc::EPERM));
    assert_eq!(at(0x1300_0000_0000_0030), bpf::RET_ALLOW);
    assert_eq!(at(0x1200_0000_0000_0040), bpf::RET_ALLOW);

    // Missing valueTwo means 0: Docker's "clone without namespace flags".
    let r = with_args(
        rule(&["clone"], LinuxSeccompAction::ScmpActAllow),
        &[(0, LinuxSeccompOperator::ScmpCmpMaskedEq, 0x7e02_0000, None)],
    );
    let f = compile(&profile(LinuxSeccompAction::ScmpActErrno, vec![r])).unwrap();
    let clone = |flags: u64| eval(&f, "clone", [flags, 0, 0, 0, 0, 0]);
    assert_eq!(clone(libc::SIGCHLD as u64 | 0x0100_0000), bpf::RET_ALLOW);
    assert_eq!(clone(libc::CLONE_NEWNS as u64), errno(libc::EPERM));
    assert_eq!(clone(libc::CLONE_NEWUSER as u64 | 17), errno(libc::EPERM));
}

#[test]
fn conditions_in_a_rule_are_anded_and_rules_are_ored() {
    use LinuxSeccompOperator as Op;
    let both = with_args(
        rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno),
        &[(0, Op::ScmpCmpEq, 1, None), (1, Op::ScmpCmpGe, 10, None)],
    );
    let other = with_args(
        rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno),
        &[(2, Op::ScmpCmpEq, 7, None)],
    );
    let f = compile(&profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![both, other],
    ))
    .unwrap();
    assert_well_formed(&f);
    let deny = errno(libc::EPERM);
    assert_eq!(eval(&f, "mkdirat", [1, 10, 0, 0, 0, 0]), deny);
    assert_eq!(eval(&f, "mkdirat", [1, 9, 0, 0, 0, 0]), bpf::RET_ALLOW);
    assert_eq!(eval(&f, "mkdirat", [2, 10, 0, 0, 0, 0]), bpf::RET_ALLOW);
    assert_eq!(eval(&f, "mkdirat", [0, 0, 7, 0, 0, 0]), deny);
    assert_eq!(eval(&f, "mkdirat", [1, 99, 7, 0, 0, 0]), deny);
}

#[test]
fn conditional_rules_win_over_syscall_wide_rules_in_any_order() {
    use LinuxSeccompOperator as Op;
    let wide = rule(&["personality"], LinuxSeccompAction::ScmpActErrno);
    let narrow = with_args(
        rule(&["personality"], LinuxSeccompAction::ScmpActAllow),
        &[(0, Op::ScmpCmpEq, 0, None)],
    );
    for rules in [vec![wide.clone(), narrow.clone()], vec![narrow, wide]] {
        let f = compile(&profile(LinuxSeccompAction::ScmpActKillProcess, rules)).unwrap();
        assert_eq!(eval(&f, "personality", NO_ARGS), bpf::RET_ALLOW);
        assert_eq!(
            eval(&f, "personality", [8, 0, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(eval(&f, "getpid", NO_ARGS), bpf::RET_KILL_PROCESS);
    }
    // Among conditional rules, the first in profile order wins.
    let first = with_args(
        rule(&["mkdirat"], LinuxSeccompAction::ScmpActTrap),
        &[(0, Op::ScmpCmpGt, 5, None)],
    );
    let second = with_args(
        rule(&["mkdirat"], LinuxSeccompAction::ScmpActLog),
        &[(0, Op::ScmpCmpGt, 1, None)],
    );
    let f = compile(&profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![first, second],
    ))
    .unwrap();
    assert_eq!(eval(&f, "mkdirat", [6, 0, 0, 0, 0, 0]), bpf::RET_TRAP);
    assert_eq!(eval(&f, "mkdirat", [3, 0, 0, 0, 0, 0]), bpf::RET_LOG);
    assert_eq!(eval(&f, "mkdirat", [1, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
}

#[test]
fn multi_action_profile_in_one_program() {
    let mut enosys = rule(&["clone3"], LinuxSeccompAction::ScmpActErrno);
    enosys.set_errno_ret(Some(libc::ENOSYS as u32));
    let mut eacces = rule(&["mkdirat", "unlinkat"], LinuxSeccompAction::ScmpActErrno);
    eacces.set_errno_ret(Some(libc::EACCES as u32));
    let p = profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![
            rule(
                &["read", "write", "getpid"],
                LinuxSeccompAction::ScmpActAllow,
            ),
            enosys,
            eacces,
            rule(&["getppid"], LinuxSeccompAction::ScmpActLog),
            rule(&["gettid"], LinuxSeccompAction::ScmpActKillProcess),
            rule(&["kill"], LinuxSeccompAction::ScmpActTrap),
            rule(&["tkill"], LinuxSeccompAction::ScmpActTrace),
        ],
    );
    let f = compile(&p).unwrap();
    assert_well_formed(&f);
    let expect = [
        ("read", bpf::RET_ALLOW),
        ("write", bpf::RET_ALLOW),
        ("getpid", bpf::RET_ALLOW),
        ("clone3", errno(libc::ENOSYS)),
        ("mkdirat", errno(libc::EACCES)),
        ("unlinkat", errno(libc::EACCES)),
        ("getppid", bpf::RET_LOG),
        ("gettid", bpf::RET_KILL_PROCESS),
        ("kill", bpf::RET_TRAP),
        ("tkill", bpf::RET_TRACE | libc::EPERM as u32),
        ("getuid", errno(libc::EPERM)),
    ];
    for (name, want) in expect {
        assert_eq!(eval(&f, name, NO_ARGS), want, "{name}");
    }
}

#[test]
fn foreign_architectures_and_x32_are_killed() {
    let p = profile(LinuxSeccompAction::ScmpActAllow, vec![]);
    let f = compile(&p).unwrap();
    assert_eq!(
        f.evaluate(audit_arch::RISCV64 ^ 1, 0, NO_ARGS),
        bpf::RET_KILL_PROCESS
    );
    #[cfg(target_arch = "x86_64")]
    {
        // No compat section unless the profile lists SCMP_ARCH_X86.
        assert_eq!(
            f.evaluate(audit_arch::I386, 20, NO_ARGS),
            bpf::RET_KILL_PROCESS
        );
        // x32 getpid: 39 | __X32_SYSCALL_BIT.
        assert_eq!(
            f.evaluate(audit_arch::X86_64, 0x4000_0027, NO_ARGS),
            bpf::RET_KILL_PROCESS
        );
        assert_eq!(f.evaluate(audit_arch::X86_64, 39, NO_ARGS), bpf::RET_ALLOW);
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn compat_x86_section_uses_the_i386_table() {
    let mut p = profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![rule(
            &["getpid", "_llseek"],
            LinuxSeccompAction::ScmpActAllow,
        )],
    );
    p.set_architectures(Some(vec![
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX86,
        Arch::ScmpArchX32,
    ]));
    let f = compile(&p).unwrap();
    assert_well_formed(&f);
    // i386: getpid = 20, _llseek = 140, mkdir = 39.
    assert_eq!(f.evaluate(audit_arch::I386, 20, NO_ARGS), bpf::RET_ALLOW);
    assert_eq!(f.evaluate(audit_arch::I386, 140, NO_ARGS), bpf::RET_ALLOW);
    assert_eq!(
        f.evaluate(audit_arch::I386, 39, NO_ARGS),
        errno(libc::EPERM)
    );
    // x86_64: getpid = 39, read = 0; mkdir = 83 is newer than any named: ENOSYS.
    assert_eq!(f.evaluate(audit_arch::X86_64, 39, NO_ARGS), bpf::RET_ALLOW);
    assert_eq!(
        f.evaluate(audit_arch::X86_64, 0, NO_ARGS),
        errno(libc::EPERM)
    );
    assert_eq!(
        f.evaluate(audit_arch::X86_64, 83, NO_ARGS),
        errno(libc::ENOSYS)
    );
    assert_eq!(
        f.evaluate(audit_arch::X86_64, 0x4000_0027, NO_ARGS),
        bpf::RET_KILL_PROCESS
    );
}

#[test]
fn long_bodies_use_far_jumps() {
    // 100 conditional rules on mkdir: a body far longer than an 8-bit jump.
    let rules: Vec<_> = (0..100)
        .map(|i| {
            with_args(
                rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno),
                &[(0, LinuxSeccompOperator::ScmpCmpEq, 1000 + i, None)],
            )
        })
        .chain([rule(&["unlinkat"], LinuxSeccompAction::ScmpActKillProcess)])
        .collect();
    let f = compile(&profile(LinuxSeccompAction::ScmpActAllow, rules)).unwrap();
    assert_well_formed(&f);
    assert!(f.instructions().len() > 500);
    assert_eq!(
        eval(&f, "mkdirat", [1050, 0, 0, 0, 0, 0]),
        errno(libc::EPERM)
    );
    assert_eq!(eval(&f, "mkdirat", [1100, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
    assert_eq!(eval(&f, "unlinkat", NO_ARGS), bpf::RET_KILL_PROCESS);
    assert_eq!(eval(&f, "getpid", NO_ARGS), bpf::RET_ALLOW);
}

#[test]
fn too_large_and_too_complex_are_errors_not_broken_programs() {
    let rules: Vec<_> = (0..1000)
        .map(|i| {
            with_args(
                rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno),
                &[(0, LinuxSeccompOperator::ScmpCmpEq, i, None)],
            )
        })
        .collect();
    let err = compile(&profile(LinuxSeccompAction::ScmpActAllow, rules)).unwrap_err();
    assert!(matches!(err, SeccompError::ProgramTooLarge { .. }), "{err}");
}

#[test]
fn conditions_on_the_same_argument_are_ored() {
    // runc's seccomp test: process_vm_readv allowed when arg0 is 100 or 9001.
    let conds = [
        (0usize, LinuxSeccompOperator::ScmpCmpEq, 100, None),
        (0usize, LinuxSeccompOperator::ScmpCmpEq, 9001, None),
    ];
    let r = with_args(rule(&["getpid"], LinuxSeccompAction::ScmpActAllow), &conds);
    let f = compile(&profile(LinuxSeccompAction::ScmpActErrno, vec![r])).unwrap();
    let with0 = |v: u64| [v, 0, 0, 0, 0, 0];
    assert_eq!(eval(&f, "getpid", with0(100)), bpf::RET_ALLOW);
    assert_eq!(eval(&f, "getpid", with0(9001)), bpf::RET_ALLOW);
    assert_eq!(eval(&f, "getpid", with0(5)), errno(libc::EPERM));
    // Many conditions on one argument stay small rules, not one huge AND.
    let conds: Vec<_> = (0..80)
        .map(|i| (0usize, LinuxSeccompOperator::ScmpCmpNe, i, None))
        .collect();
    let r = with_args(rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno), &conds);
    let f = compile(&profile(LinuxSeccompAction::ScmpActAllow, vec![r])).unwrap();
    assert_eq!(eval(&f, "mkdirat", with0(3)), errno(libc::EPERM));
}

#[test]
fn flags_are_passed_through() {
    let mut p = profile(LinuxSeccompAction::ScmpActAllow, vec![]);
    p.set_flags(Some(vec![
        LinuxSeccompFilterFlag::SeccompFilterFlagLog,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
    ]));
    let f = compile(&p).unwrap();
    assert_eq!(
        f.flags(),
        libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
    // An empty list is no flags; no list at all is SPEC_ALLOW, as in runc.
    p.set_flags(Some(vec![]));
    assert_eq!(compile(&p).unwrap().flags(), 0);
    p.set_flags(None);
    assert_eq!(
        compile(&p).unwrap().flags(),
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
    p.set_flags(Some(vec![LinuxSeccompFilterFlag::SeccompFilterFlagTsync]));
    let f = compile(&p).unwrap();
    assert_eq!(f.flags(), libc::SECCOMP_FILTER_FLAG_TSYNC);
    assert_eq!(f.for_single_thread().flags(), 0);
}

#[test]
fn oci_json_profile_compiles() {
    let json = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": ["getpid", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 17}
        ]
    }"#;
    let p: LinuxSeccomp = serde_json::from_str(json).unwrap();
    let f = compile(&p).unwrap();
    assert_eq!(eval(&f, "getpid", NO_ARGS), bpf::RET_ALLOW);
    assert_eq!(eval(&f, "personality", [8, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
    assert_eq!(eval(&f, "personality", NO_ARGS), errno(libc::EPERM));
    assert_eq!(eval(&f, "mkdirat", NO_ARGS), errno(libc::EEXIST));
}

#[test]
fn default_profile_semantics() {
    let f = compile(&default_profile()).unwrap();
    assert_well_formed(&f);
    let deny = errno(libc::EPERM);
    for name in [
        "read", "write", "openat", "execve", "mkdirat", "wait4", "chroot", "ptrace",
    ] {
        assert_eq!(eval(&f, name, NO_ARGS), bpf::RET_ALLOW, "{name}");
    }
    for name in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "reboot",
        "init_module",
        "bpf",
        "kexec_load",
    ] {
        assert_eq!(eval(&f, name, NO_ARGS), deny, "{name}");
    }
    assert_eq!(eval(&f, "clone3", NO_ARGS), errno(libc::ENOSYS));
    let sigchld = libc::SIGCHLD as u64;
    assert_eq!(eval(&f, "clone", [sigchld, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
    let thread = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD) as u64;
    assert_eq!(eval(&f, "clone", [thread, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
    for ns in [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
    ] {
        assert_eq!(
            eval(&f, "clone", [ns as u64 | sigchld, 0, 0, 0, 0, 0]),
            deny
        );
    }
    for p in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(
            eval(&f, "personality", [p, 0, 0, 0, 0, 0]),
            bpf::RET_ALLOW,
            "{p:#x}"
        );
    }
    assert_eq!(eval(&f, "personality", [0x0040_0000, 0, 0, 0, 0, 0]), deny);
    assert_eq!(
        eval(&f, "socket", [libc::AF_INET as u64, 1, 0, 0, 0, 0]),
        bpf::RET_ALLOW
    );
    assert_eq!(
        eval(&f, "socket", [libc::AF_VSOCK as u64, 1, 0, 0, 0, 0]),
        deny
    );
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(eval(&f, "arch_prctl", NO_ARGS), bpf::RET_ALLOW);
        // The i386 section is there too: getpid (20) allowed, mount (21) denied.
        assert_eq!(f.evaluate(audit_arch::I386, 20, NO_ARGS), bpf::RET_ALLOW);
        assert_eq!(f.evaluate(audit_arch::I386, 21, NO_ARGS), deny);
    }
}

#[test]
fn default_profile_capabilities() {
    let caps = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let admin = compile(&default_profile_for(&caps(&["sys_admin"]))).unwrap();
    for name in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "clone3",
        "sethostname",
    ] {
        assert_eq!(eval(&admin, name, NO_ARGS), bpf::RET_ALLOW, "{name}");
    }
    let ns = (libc::CLONE_NEWNS | libc::SIGCHLD) as u64;
    assert_eq!(eval(&admin, "clone", [ns, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
    // Without CAP_SYS_CHROOT (not asked for here), chroot is denied.
    assert_eq!(eval(&admin, "chroot", NO_ARGS), errno(libc::EPERM));

    let none = compile(&default_profile_for(&[])).unwrap();
    assert_eq!(eval(&none, "chroot", NO_ARGS), errno(libc::EPERM));
    assert_eq!(eval(&none, "getpid", NO_ARGS), bpf::RET_ALLOW);

    let gated = [
        ("CAP_SYS_PTRACE", "kcmp"),
        ("CAP_SYS_MODULE", "finit_module"),
        ("CAP_SYS_BOOT", "reboot"),
        ("CAP_SYS_TIME", "clock_settime"),
        ("CAP_SYS_CHROOT", "chroot"),
        ("CAP_SYS_PACCT", "acct"),
        ("CAP_SYS_NICE", "mbind"),
        ("CAP_SYSLOG", "syslog"),
        ("CAP_BPF", "bpf"),
        ("CAP_PERFMON", "perf_event_open"),
        ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
        ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ];
    for (cap, name) in gated {
        let f = compile(&default_profile_for(&caps(&[cap]))).unwrap();
        assert_eq!(eval(&f, name, NO_ARGS), bpf::RET_ALLOW, "{cap} {name}");
        assert_eq!(
            eval(&none, name, NO_ARGS),
            errno(libc::EPERM),
            "{name} without {cap}"
        );
    }
}

/// Small deterministic PRNG (xorshift64*), so the differential test needs no
/// extra dependency and a failure is reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// The documented semantics, written directly: conditional rules in profile
/// order, then the first syscall-wide rule, then the default.
fn reference(p: &LinuxSeccomp, name: &str, args: [u64; 6]) -> u32 {
    use LinuxSeccompOperator as Op;
    let ret = |action, errno_ret| action_ret(action, errno_ret, String::new).unwrap();
    let all_rules = p.syscalls().as_deref().unwrap_or_default();
    let default = ret(p.default_action(), p.default_errno_ret());
    // Newer than every syscall the profile names: ENOSYS (unless allowed).
    let max = all_rules
        .iter()
        .flat_map(|r| r.names().iter())
        .filter_map(|n| syscalls::Sysno::from_str(n).ok())
        .map(|s| s.id())
        .max();
    if default != bpf::RET_ALLOW && max.is_some_and(|m| nr(name) > m) {
        return errno(libc::ENOSYS);
    }
    let rules: Vec<&LinuxSyscall> = all_rules
        .iter()
        .filter(|r| r.names().iter().any(|n| n == name))
        .collect();
    let conds = |r: &LinuxSyscall| r.args().clone().unwrap_or_default();
    let holds = |c: &oci_spec::runtime::LinuxSeccompArg| {
        let (a, v) = (args[c.index()], c.value());
        match c.op() {
            Op::ScmpCmpEq => a == v,
            Op::ScmpCmpNe => a != v,
            Op::ScmpCmpLt => a < v,
            Op::ScmpCmpLe => a <= v,
            Op::ScmpCmpGt => a > v,
            Op::ScmpCmpGe => a >= v,
            Op::ScmpCmpMaskedEq => a & v == c.value_two().unwrap_or(0),
        }
    };
    for r in rules.iter().filter(|r| !conds(r).is_empty()) {
        let cs = conds(r);
        // Conditions sharing an argument are ORed (one rule each), else ANDed.
        let repeated = cs
            .iter()
            .enumerate()
            .any(|(i, c)| cs[..i].iter().any(|d| d.index() == c.index()));
        let matched = if repeated {
            cs.iter().any(holds)
        } else {
            cs.iter().all(holds)
        };
        if matched {
            return ret(r.action(), r.errno_ret());
        }
    }
    match rules.iter().find(|r| conds(r).is_empty()) {
        Some(r) => ret(r.action(), r.errno_ret()),
        None => default,
    }
}

#[test]
fn random_profiles_agree_with_the_reference_semantics() {
    use LinuxSeccompOperator as Op;
    let names = ["read", "write", "mkdirat", "getpid", "personality", "clone"];
    let actions = [
        LinuxSeccompAction::ScmpActAllow,
        LinuxSeccompAction::ScmpActErrno,
        LinuxSeccompAction::ScmpActKillProcess,
        LinuxSeccompAction::ScmpActKillThread,
        LinuxSeccompAction::ScmpActTrap,
        LinuxSeccompAction::ScmpActTrace,
        LinuxSeccompAction::ScmpActLog,
    ];
    let ops = [
        Op::ScmpCmpEq,
        Op::ScmpCmpNe,
        Op::ScmpCmpLt,
        Op::ScmpCmpLe,
        Op::ScmpCmpGt,
        Op::ScmpCmpGe,
        Op::ScmpCmpMaskedEq,
    ];
    let values = [
        0,
        1,
        2,
        0x7fff_ffff,
        0xffff_ffff,
        1 << 32,
        (1 << 32) + 1,
        0xffff_ffff_0000_0000,
        u64::MAX - 1,
        u64::MAX,
    ];
    let seed = 0x5eed_0f5e_cc0a_1b00_u64;
    let mut rng = Rng(seed);
    for case in 0..1500 {
        let mut rules = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let mut r = rule(&[rng.pick(&names)], rng.pick(&actions));
            if rng.below(3) == 0 {
                r.set_errno_ret(Some(rng.below(200) as u32));
            }
            let n_conds = rng.below(4);
            if n_conds > 0 || rng.below(4) == 0 {
                let conds: Vec<_> = (0..n_conds)
                    .map(|_| {
                        let value_two = rng.below(2) == 0;
                        (
                            rng.below(6),
                            rng.pick(&ops),
                            rng.pick(&values),
                            value_two.then(|| rng.pick(&values)),
                        )
                    })
                    .collect();
                r = with_args(r, &conds);
            }
            rules.push(r);
        }
        let mut p = profile(rng.pick(&actions), rules);
        if rng.below(2) == 0 {
            p.set_default_errno_ret(Some(rng.below(200) as u32));
        }
        let f = compile(&p).unwrap();
        assert_well_formed(&f);
        for _ in 0..40 {
            let name = rng.pick(&names);
            let args = [0; 6].map(|_: u64| {
                if rng.below(4) == 0 {
                    rng.next()
                } else {
                    rng.pick(&values)
                }
            });
            assert_eq!(
                eval(&f, name, args),
                reference(&p, name, args),
                "seed {seed:#x} case {case}: {name}{args:x?}\n{p:#?}"
            );
        }
    }
}

#[test]
fn default_profile_size() {
    let f = compile(&default_profile()).unwrap();
    // Two sections (x86_64 and i386) on x86_64, one elsewhere. The kernel
    // converts and JIT-compiles the program at every container start: a
    // search over runs of numbers is 440 instructions on x86_64, where a
    // comparison per named syscall was 1390.
    assert!(f.instructions().len() < 600, "{}", f.instructions().len());
    eprintln!("default profile: {} instructions", f.instructions().len());
}

/// What `p` answers for syscall number `n`, which no syscall may have.
fn reference_nr(p: &LinuxSeccomp, n: i32, args: [u64; 6]) -> u32 {
    match syscalls::Sysno::new(n as usize) {
        Some(s) => reference(p, s.name(), args),
        None => {
            let default =
                action_ret(p.default_action(), p.default_errno_ret(), String::new).unwrap();
            let max = p
                .syscalls()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .flat_map(|r| r.names().iter())
                .filter_map(|n| syscalls::Sysno::from_str(n).ok())
                .map(|s| s.id())
                .max();
            if default != bpf::RET_ALLOW && max.is_some_and(|m| n > m) {
                errno(libc::ENOSYS)
            } else {
                default
            }
        }
    }
}

#[test]
fn every_number_agrees_with_the_reference_in_the_default_profile() {
    // Every number up to past the table's end (named, unnamed and missing
    // ones, each boundary of the search), with arguments that the
    // conditional rules (clone, personality, socket...) tell apart.
    for p in [
        default_profile(),
        default_profile_for(&["CAP_SYS_ADMIN".to_string()]),
    ] {
        let f = compile(&p).unwrap();
        assert_well_formed(&f);
        let last = syscalls::Sysno::last().id();
        for n in (0..=last + 64).chain([0x3fff_ffff, i32::MAX, -1]) {
            for args in [
                NO_ARGS,
                [0x7e02_0000, 0, 0, 0, 0, 0],
                [0xffff_ffff, 1, 2, 3, 4, 5],
                [40, 0, 0, 0, 0, 0],
                [8, 0, 0, 0, 0, 0],
            ] {
                let want = if !(0..0x4000_0000).contains(&n) {
                    // x32 numbers (and beyond) are killed before the search.
                    bpf::RET_KILL_PROCESS
                } else {
                    reference_nr(&p, n, args)
                };
                assert_eq!(f.evaluate(arch(), n, args), want, "syscall {n} {args:x?}");
            }
        }
    }
}

#[test]
fn runs_of_numbers_share_code_and_differences_split_them() {
    // getuid (102), getgid (104) and geteuid (107) allowed, the numbers
    // between them not: six runs under a default of ERRNO.
    let p = profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![rule(
            &["getuid", "getgid", "geteuid"],
            LinuxSeccompAction::ScmpActAllow,
        )],
    );
    let f = compile(&p).unwrap();
    assert_well_formed(&f);
    for n in 95..115 {
        assert_eq!(
            f.evaluate(arch(), n, NO_ARGS),
            reference_nr(&p, n, NO_ARGS),
            "{n}"
        );
    }
    // Every number from read (0) to 99 allowed: one run, whatever its size.
    let many: Vec<&str> = (0..100)
        .filter_map(|n| syscalls::Sysno::new(n).map(|s| s.name()))
        .collect();
    let one = compile(&profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![rule(&many, LinuxSeccompAction::ScmpActAllow)],
    ))
    .unwrap();
    let two = compile(&profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![rule(&many[..1], LinuxSeccompAction::ScmpActAllow)],
    ))
    .unwrap();
    assert_eq!(one.instructions().len(), two.instructions().len());
    assert_eq!(eval(&one, "getpid", NO_ARGS), bpf::RET_ALLOW);
    // Above the only named syscall: ENOSYS.
    assert_eq!(eval(&two, "getpid", NO_ARGS), errno(libc::ENOSYS));
}

#[test]
fn random_profiles_over_the_whole_table_agree_with_the_reference() {
    // Many names, near one another: runs merge, split and nest deeper than
    // an 8-bit jump reaches.
    let all: Vec<syscalls::Sysno> = syscalls::Sysno::iter().collect();
    let actions = [
        LinuxSeccompAction::ScmpActAllow,
        LinuxSeccompAction::ScmpActErrno,
        LinuxSeccompAction::ScmpActKillProcess,
        LinuxSeccompAction::ScmpActTrace,
    ];
    let seed = 0x7a11_5ea7_c4a5_0001_u64;
    let mut rng = Rng(seed);
    for case in 0..60 {
        let mut rules = Vec::new();
        for _ in 0..1 + rng.below(40) {
            let first = rng.below(all.len());
            let names: Vec<&str> = all[first..(first + 1 + rng.below(30)).min(all.len())]
                .iter()
                .filter(|_| rng.below(4) != 0)
                .map(|s| s.name())
                .collect();
            if names.is_empty() {
                continue;
            }
            let mut r = rule(&names, rng.pick(&actions));
            if rng.below(5) == 0 {
                r = with_args(
                    r,
                    &[(
                        0,
                        LinuxSeccompOperator::ScmpCmpEq,
                        rng.below(3) as u64,
                        None,
                    )],
                );
            }
            rules.push(r);
        }
        let p = profile(rng.pick(&actions), rules);
        let f = compile(&p).unwrap();
        assert_well_formed(&f);
        for n in 0..=syscalls::Sysno::last().id() + 8 {
            let args = [rng.below(3) as u64, 0, 0, 0, 0, 0];
            assert_eq!(
                f.evaluate(arch(), n, args),
                reference_nr(&p, n, args),
                "seed {seed:#x} case {case}: syscall {n}\n{p:#?}"
            );
        }
    }
}

#[test]
fn a_primed_profile_is_answered_with_its_own_program_and_others_are_compiled() {
    let default = default_profile();
    prime(default.clone()).unwrap();
    // As the starter reads it: from JSON, equal to the primed one.
    let read: LinuxSeccomp =
        serde_json::from_slice(&serde_json::to_vec(&default).unwrap()).unwrap();
    assert!(read == default);
    assert_eq!(compile_primed(&read).unwrap(), compile(&default).unwrap());
    // Another profile is not the primed program.
    let admin = default_profile_for(&["CAP_SYS_ADMIN".to_string()]);
    assert!(admin != default);
    let got = compile_primed(&admin).unwrap();
    assert_eq!(got, compile(&admin).unwrap());
    assert_ne!(got, compile(&default).unwrap());
}
