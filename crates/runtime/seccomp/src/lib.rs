//! OCI seccomp profiles compiled to classic BPF, and loaded into the kernel.
//!
//! Entry points: [`compile`] turns an OCI [`LinuxSeccomp`] (runtime-spec
//! `config-linux.md#seccomp`) into a ready [`Filter`]; [`install`] loads it into the
//! calling thread (meant for the container's init process, after fork, right before
//! `execve`); [`default_profile`] and [`default_profile_for`] build a Docker-like
//! default profile.
//!
//! # Why our own BPF generator and not seccompiler
//!
//! seccompiler's `SeccompFilter` has one match action per filter. An OCI profile
//! with several actions (the Docker default alone uses ALLOW, `ERRNO(EPERM)` and
//! `ERRNO(ENOSYS)`) would need several stacked filters, and stacking has real
//! costs:
//! - every filter after the first is loaded by a `seccomp(2)` call that the
//!   filters already loaded also judge: a profile that does not allow `seccomp`
//!   itself (perfectly legal, and common in hardened profiles) would make the
//!   second load fail with EPERM, whatever the order;
//! - the kernel runs every stacked filter on every syscall;
//! - among equally restrictive results (two different errno values) the kernel
//!   keeps the newest filter's, which is an accident of load order.
//!
//! seccompiler's own loader also always sets `no_new_privs`, which the runtime
//! must decide from the config. The generator here is a few hundred lines, emits one
//! program, is checked instruction by instruction by the unit tests through
//! [`Filter::evaluate`] (a classic-BPF interpreter), and by `tests/kernel.rs`
//! against the real kernel.
//!
//! # What the program does
//!
//! 1. Load `seccomp_data.arch`. Each architecture compiled in has a section: the
//!    native one always, plus the 32-bit compat one (x86 on x86_64, arm on
//!    aarch64) when the profile lists it. Any other architecture token gets
//!    `KILL_PROCESS` (libseccomp's "bad arch" action, process-wide so a thread
//!    cannot be left half-dead). On x86_64 the x32 ABI (syscall numbers with bit
//!    30 set) is not compiled and is killed too, even if the profile lists
//!    `SCMP_ARCH_X32`: otherwise x32 numbers would slip past a deny-list.
//! 2. In the section, find the syscall number by a binary search over runs of
//!    numbers with the same code (a syscall the profile names, or the numbers
//!    between them; names unknown on that architecture are skipped with a debug
//!    line, like libseccomp). Syscalls not named get `defaultAction`; numbers
//!    above every named one get ENOSYS, as in runc.
//! 3. For a named syscall, its rules are tried in this order and the first match
//!    decides: every rule with argument conditions, in profile order (the
//!    conditions of one rule are ANDed, so rules are ORed); then the first rule
//!    without conditions. If nothing matches: `defaultAction`. This is how
//!    libseccomp orders them too (argument-specific chains before the
//!    syscall-wide action), and it makes "allow `personality` only for these
//!    values" or "deny `clone` with namespace flags" work in any rule order.
//!
//! Argument comparisons are on the full 64-bit value, split into two 32-bit
//! halves. `SCMP_CMP_MASKED_EQ` is `(arg & value) == valueTwo`, as in
//! libseccomp; a missing `valueTwo` is 0.

pub mod bpf;
mod profile;

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::str::FromStr;

use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use bpf::{stmt, Instruction};

pub use profile::{default_profile, default_profile_for, DOCKER_DEFAULT_CAPABILITIES};

/// Errors from compiling or installing a seccomp profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// `SCMP_ACT_NOTIFY` where the runtime cannot allow it: as the default
    /// action, or for `write`, which the runtime itself needs to hand the
    /// listener to its parent before any agent holds it.
    #[error("SCMP_ACT_NOTIFY cannot be used {what}: the runtime needs it to pass the listener to the seccomp agent; use another action there")]
    NotifyForbidden {
        /// `as default action` or `for the write syscall`.
        what: &'static str,
    },
    /// An `errnoRet` does not fit the 16 data bits of a seccomp return value.
    #[error("seccomp errnoRet {value} for {what} is too large: the kernel keeps 16 bits (at most 65535)")]
    ReturnDataTooLarge {
        /// `defaultErrnoRet` or the syscall names of the rule.
        what: String,
        /// The value given.
        value: u32,
    },
    /// An argument condition names an argument a syscall cannot have.
    #[error(
        "seccomp rule for {names} compares argument index {index}: syscalls have arguments 0 to 5"
    )]
    ArgIndexOutOfRange {
        /// The syscall names of the rule.
        names: String,
        /// The index given.
        index: usize,
    },
    /// A rule has so many argument conditions that its jumps do not fit in BPF.
    #[error(
        "seccomp rule for {names} has {count} argument conditions, too many to encode in one \
         BPF rule; split it into several rules"
    )]
    RuleTooComplex {
        /// The syscall names of the rule.
        names: String,
        /// How many conditions it has.
        count: usize,
    },
    /// The compiled program is longer than the kernel accepts.
    #[error(
        "seccomp profile compiles to {len} BPF instructions, more than the kernel limit of {max}; \
         use fewer argument conditions or fewer syscall names"
    )]
    ProgramTooLarge {
        /// Instructions generated.
        len: usize,
        /// The kernel's limit (`BPF_MAXINSNS`).
        max: usize,
    },
    /// strato does not know the syscall table of the machine it runs on.
    #[error("seccomp is not supported on this architecture ({arch}): no syscall table and audit token for it")]
    UnsupportedArch {
        /// `std::env::consts::ARCH`.
        arch: &'static str,
    },
    /// The kernel refused the filter.
    #[error(
        "loading the seccomp filter failed: {errno} (EACCES: the process has neither \
         no_new_privs nor CAP_SYS_ADMIN; EINVAL: the kernel lacks seccomp filters or a flag)"
    )]
    Install {
        /// What `seccomp(2)` (or `prctl(2)`) returned.
        errno: Errno,
    },
    /// With `SECCOMP_FILTER_FLAG_TSYNC`, another thread could not be synchronized.
    #[error("loading the seccomp filter with TSYNC failed: thread {tid} cannot be synchronized")]
    TsyncFailed {
        /// The thread that could not take the filter.
        tid: i64,
    },
}

/// A compiled seccomp program, ready for [`install`].
///
/// Holds everything `install` needs, so loading it after `fork` allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    program: Vec<Instruction>,
    flags: libc::c_ulong,
}

impl Filter {
    /// The BPF program.
    pub fn instructions(&self) -> &[Instruction] {
        &self.program
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits passed to `seccomp(2)`.
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }

    /// The filter for a process known to be single-threaded (a container
    /// process before exec): `SECCOMP_FILTER_FLAG_TSYNC` has nothing to do.
    pub fn for_single_thread(mut self) -> Filter {
        self.flags &= !(libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH);
        self
    }

    /// Whether some rule answers `SCMP_ACT_NOTIFY`: installing the filter
    /// then returns a listener for a seccomp agent.
    pub fn has_listener(&self) -> bool {
        self.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
    }

    /// Runs the program as the kernel would on one syscall, and returns the raw
    /// seccomp return value (`bpf::RET_*` plus data). `arch` is an `AUDIT_ARCH_*`
    /// token (see [`native_audit_arch`]). For tests and diagnostics.
    pub fn evaluate(&self, arch: u32, nr: i32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, arg) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        let load = |k: u32| -> Option<u32> {
            let k = usize::try_from(k).ok()?;
            let bytes = data.get(k..k + 4)?;
            Some(u32::from_ne_bytes(bytes.try_into().ok()?))
        };
        let mut a: u32 = 0;
        let mut pc = 0usize;
        // A malformed program (never produced by `compile`) evaluates to KILL_PROCESS,
        // which is also what the kernel's verifier makes of it: refusal.
        while let Some(insn) = self.program.get(pc) {
            pc += 1;
            let cond = |taken: bool| usize::from(if taken { insn.jt } else { insn.jf });
            match insn.code {
                bpf::LD_ABS => match load(insn.k) {
                    Some(v) => a = v,
                    None => return bpf::RET_KILL_PROCESS,
                },
                bpf::AND_K => a &= insn.k,
                bpf::JA => pc += insn.k as usize,
                bpf::JEQ_K => pc += cond(a == insn.k),
                bpf::JGT_K => pc += cond(a > insn.k),
                bpf::JGE_K => pc += cond(a >= insn.k),
                bpf::RET_K => return insn.k,
                _ => return bpf::RET_KILL_PROCESS,
            }
        }
        bpf::RET_KILL_PROCESS
    }
}

/// The `AUDIT_ARCH_*` token the kernel reports for native syscalls, if strato
/// supports this architecture.
pub fn native_audit_arch() -> Option<u32> {
    native_section().map(|s| s.audit_arch)
}

/// Audit tokens from <linux/audit.h>.
pub mod audit_arch {
    /// `AUDIT_ARCH_X86_64`.
    pub const X86_64: u32 = 0xc000_003e;
    /// `AUDIT_ARCH_I386`.
    pub const I386: u32 = 0x4000_0003;
    /// `AUDIT_ARCH_AARCH64`.
    pub const AARCH64: u32 = 0xc000_00b7;
    /// `AUDIT_ARCH_ARM`.
    pub const ARM: u32 = 0x4000_0028;
    /// `AUDIT_ARCH_RISCV64`.
    pub const RISCV64: u32 = 0xc000_00f3;
}

/// The x32 ABI marks its syscall numbers with this bit (on the x86_64 audit token).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// One architecture's part of the program.
struct ArchSection {
    name: &'static str,
    audit_arch: u32,
    /// Syscall numbers at or above this are another ABI on the same token (x32).
    nr_limit: Option<u32>,
    lookup: fn(&str) -> Option<u32>,
}

fn lookup_native(name: &str) -> Option<u32> {
    let sysno = syscalls::Sysno::from_str(name).ok()?;
    u32::try_from(sysno.id()).ok()
}

#[cfg(target_arch = "x86_64")]
fn native_section() -> Option<ArchSection> {
    Some(ArchSection {
        name: "x86_64",
        audit_arch: audit_arch::X86_64,
        nr_limit: Some(X32_SYSCALL_BIT),
        lookup: lookup_native,
    })
}

#[cfg(target_arch = "aarch64")]
fn native_section() -> Option<ArchSection> {
    Some(ArchSection {
        name: "aarch64",
        audit_arch: audit_arch::AARCH64,
        nr_limit: None,
        lookup: lookup_native,
    })
}

#[cfg(target_arch = "riscv64")]
fn native_section() -> Option<ArchSection> {
    Some(ArchSection {
        name: "riscv64",
        audit_arch: audit_arch::RISCV64,
        nr_limit: None,
        lookup: lookup_native,
    })
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
fn native_section() -> Option<ArchSection> {
    None
}

/// The 32-bit compat section for `arch`, when this machine can run it.
#[cfg(target_arch = "x86_64")]
fn compat_section(arch: Arch) -> Option<ArchSection> {
    fn lookup_x86(name: &str) -> Option<u32> {
        let sysno = syscalls::x86::Sysno::from_str(name).ok()?;
        u32::try_from(sysno.id()).ok()
    }
    (arch == Arch::ScmpArchX86).then_some(ArchSection {
        name: "x86",
        audit_arch: audit_arch::I386,
        nr_limit: None,
        lookup: lookup_x86,
    })
}

#[cfg(target_arch = "aarch64")]
fn compat_section(arch: Arch) -> Option<ArchSection> {
    fn lookup_arm(name: &str) -> Option<u32> {
        let sysno = syscalls::arm::Sysno::from_str(name).ok()?;
        u32::try_from(sysno.id()).ok()
    }
    (arch == Arch::ScmpArchArm).then_some(ArchSection {
        name: "arm",
        audit_arch: audit_arch::ARM,
        nr_limit: None,
        lookup: lookup_arm,
    })
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn compat_section(_arch: Arch) -> Option<ArchSection> {
    None
}

/// One OCI rule, validated, for one syscall name.
struct Rule {
    ret: u32,
    conds: Vec<Cond>,
}

#[derive(Clone, Copy)]
struct Cond {
    index: u8,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
}

/// The kernel return value for an OCI action.
fn action_ret(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    what: impl Fn() -> String,
) -> Result<u32, SeccompError> {
    let data = |default: u32| -> Result<u32, SeccompError> {
        let value = errno_ret.unwrap_or(default);
        if value > 0xffff {
            return Err(SeccompError::ReturnDataTooLarge {
                what: what(),
                value,
            });
        }
        Ok(value)
    };
    let eperm = libc::EPERM as u32;
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => bpf::RET_ALLOW,
        LinuxSeccompAction::ScmpActErrno => bpf::RET_ERRNO | data(eperm)?,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            bpf::RET_KILL_THREAD
        }
        LinuxSeccompAction::ScmpActKillProcess => bpf::RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => bpf::RET_TRAP,
        // runc passes errnoRet (default EPERM) as the tracer's message; so do we.
        LinuxSeccompAction::ScmpActTrace => bpf::RET_TRACE | data(eperm)?,
        LinuxSeccompAction::ScmpActLog => bpf::RET_LOG,
        LinuxSeccompAction::ScmpActNotify => bpf::RET_USER_NOTIF,
    })
}

fn filter_flags(flags: &[LinuxSeccompFilterFlag], notify: bool) -> libc::c_ulong {
    let mut bits = if notify {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    // With a listener the kernel answers the listener, so TSYNC must report
    // a failure as ESRCH instead of a thread id.
    if notify && flags.contains(&LinuxSeccompFilterFlag::SeccompFilterFlagTsync) {
        bits |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
    }
    for flag in flags {
        bits |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // Only meaningful (and only accepted by the kernel) together with
            // a notification listener.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if notify => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                tracing::debug!("seccomp: ignoring SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV without SCMP_ACT_NOTIFY");
                0
            }
        };
    }
    bits
}

/// The one filter compiled ahead by [`prime`], with its profile.
static PRIMED: std::sync::OnceLock<(LinuxSeccomp, Filter)> = std::sync::OnceLock::new();

/// Compiles `profile` now and keeps it for [`compile_primed`], in this
/// process and in the children it forks later: a long-lived process that
/// forks container starts (the engine's supervisor) compiles Docker's
/// default profile once instead of at every start. The first call wins.
pub fn prime(profile: LinuxSeccomp) -> Result<(), SeccompError> {
    let filter = compile(&profile)?;
    let _ = PRIMED.set((profile, filter));
    Ok(())
}

/// [`compile`], answered from the filter [`prime`] made when `profile` is
/// equal to its profile (the whole profile compared, so a hit is the same
/// program).
pub fn compile_primed(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    match PRIMED.get() {
        Some((primed, filter)) if primed == profile => Ok(filter.clone()),
        _ => compile(profile),
    }
}

/// Compiles an OCI seccomp profile into one BPF program for this machine.
///
/// See the crate documentation for the program's shape and rule precedence.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let native = native_section().ok_or(SeccompError::UnsupportedArch {
        arch: std::env::consts::ARCH,
    })?;
    if profile.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::NotifyForbidden {
            what: "as default action",
        });
    }
    let mut notify = false;
    for syscall in profile.syscalls().as_deref().unwrap_or_default() {
        if syscall.action() == LinuxSeccompAction::ScmpActNotify {
            notify = true;
            if syscall.names().iter().any(|n| n == "write") {
                return Err(SeccompError::NotifyForbidden {
                    what: "for the write syscall",
                });
            }
        }
    }
    let default_ret = action_ret(
        profile.default_action(),
        profile.default_errno_ret(),
        || "defaultAction".to_string(),
    )?;

    // Validate every rule once, whatever the architecture.
    let mut rules: Vec<(&[String], Rule)> = Vec::new();
    for syscall in profile.syscalls().as_deref().unwrap_or_default() {
        let names = syscall.names().as_slice();
        let what = || names.join(",");
        let ret = action_ret(syscall.action(), syscall.errno_ret(), what)?;
        let mut conds = Vec::new();
        for arg in syscall.args().as_deref().unwrap_or_default() {
            let index = u8::try_from(arg.index())
                .ok()
                .filter(|i| *i < 6)
                .ok_or_else(|| SeccompError::ArgIndexOutOfRange {
                    names: what(),
                    index: arg.index(),
                })?;
            conds.push(Cond {
                index,
                op: arg.op(),
                value: arg.value(),
                value_two: arg.value_two().unwrap_or(0),
            });
        }
        // Several conditions on one argument can't all hold at once: like
        // runc (and libseccomp before it), make each condition its own rule,
        // so they are ORed.
        let mut seen = [0u8; 6];
        for c in &conds {
            seen[c.index as usize] += 1;
        }
        if seen.iter().any(|n| *n > 1) {
            for c in conds {
                rules.push((
                    names,
                    Rule {
                        ret,
                        conds: vec![c],
                    },
                ));
            }
        } else {
            rules.push((names, Rule { ret, conds }));
        }
    }

    let mut sections = vec![native];
    let mut seen_x32 = false;
    for arch in profile.architectures().as_deref().unwrap_or_default() {
        if let Some(compat) = compat_section(*arch) {
            if sections.iter().all(|s| s.audit_arch != compat.audit_arch) {
                sections.push(compat);
            }
        } else if *arch == Arch::ScmpArchX32 {
            seen_x32 = true;
        }
    }
    if seen_x32 {
        tracing::debug!("seccomp: SCMP_ARCH_X32 is not compiled; x32 syscalls get KILL_PROCESS");
    }

    let mut bodies = Vec::with_capacity(sections.len());
    for section in &sections {
        bodies.push(compile_section(section, &rules, default_ret)?);
    }

    // Header: load arch; per section "jeq token → ja section"; else kill.
    let header_len = 1 + 2 * sections.len() + 1;
    let total = header_len + bodies.iter().map(Vec::len).sum::<usize>();
    if total > bpf::MAX_INSNS {
        return Err(SeccompError::ProgramTooLarge {
            len: total,
            max: bpf::MAX_INSNS,
        });
    }
    let mut program = Vec::with_capacity(total);
    program.push(stmt(bpf::LD_ABS, bpf::OFF_ARCH));
    let mut section_start = header_len;
    for (section, body) in sections.iter().zip(&bodies) {
        program.push(bpf::jump(bpf::JEQ_K, section.audit_arch, 0, 1));
        let after_ja = program.len() + 1;
        // Cannot truncate: total <= MAX_INSNS was checked above.
        program.push(stmt(bpf::JA, (section_start - after_ja) as u32));
        section_start += body.len();
    }
    program.push(stmt(bpf::RET_K, bpf::RET_KILL_PROCESS));
    for body in bodies {
        program.extend(body);
    }
    tracing::debug!(
        instructions = program.len(),
        architectures = sections.len(),
        "seccomp: profile compiled"
    );
    Ok(Filter {
        program,
        // No `flags` at all (not an empty list) means SPEC_ALLOW, as runc
        // does: containers skip the speculative store bypass mitigation.
        flags: match profile.flags() {
            Some(flags) => filter_flags(flags, notify),
            None => filter_flags(
                &[LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow],
                notify,
            ),
        },
    })
}

/// One architecture's code: starts with "load nr", every path ends in `ret`.
///
/// The syscall numbers are cut into segments, maximal runs of consecutive
/// numbers that get the same code (a syscall the profile names, or the
/// default action for the numbers between them), and the program is a
/// balanced binary search over the segments' lower bounds (`jge`), with each
/// segment's code at a leaf. The Docker default profile names ~350 syscalls
/// in ~70 segments: one comparison per syscall, one after another, made a
/// program three times as long, which the kernel converts and JIT-compiles
/// at every container start, and which every syscall of the container then
/// walked linearly (seven comparisons now).
fn compile_section(
    section: &ArchSection,
    rules: &[(&[String], Rule)],
    default_ret: u32,
) -> Result<Vec<Instruction>, SeccompError> {
    let mut by_nr: BTreeMap<u32, Vec<&Rule>> = BTreeMap::new();
    for (names, rule) in rules {
        for name in names.iter() {
            match (section.lookup)(name) {
                Some(nr) => by_nr.entry(nr).or_default().push(rule),
                None => tracing::debug!(
                    syscall = name.as_str(),
                    arch = section.name,
                    "seccomp: syscall unknown on this architecture, skipping"
                ),
            }
        }
    }

    let mut code = vec![stmt(bpf::LD_ABS, bpf::OFF_NR)];
    if let Some(limit) = section.nr_limit {
        code.push(bpf::jump(bpf::JGE_K, limit, 0, 1));
        code.push(stmt(bpf::RET_K, bpf::RET_KILL_PROCESS));
    }
    let mut segments = Segments::default();
    for (nr, group) in &by_nr {
        let names = || {
            rules
                .iter()
                .filter(|(_, r)| group.iter().any(|g| std::ptr::eq(*g, r)))
                .flat_map(|(n, _)| n.iter().cloned())
                .collect::<Vec<_>>()
                .join(",")
        };
        let body = compile_group(group, default_ret, names)?;
        if body.len() > bpf::MAX_INSNS {
            return Err(SeccompError::ProgramTooLarge {
                len: body.len(),
                max: bpf::MAX_INSNS,
            });
        }
        segments.push(*nr, vec![stmt(bpf::RET_K, default_ret)]);
        segments.push_one(*nr, body);
    }
    // Syscalls newer than any the profile names get ENOSYS rather than the
    // default action, as runc does: programs then fall back to older calls
    // instead of failing on EPERM.
    let newer = match by_nr.keys().next_back() {
        Some(_) if default_ret != bpf::RET_ALLOW => bpf::RET_ERRNO | (libc::ENOSYS as u32 & 0xffff),
        _ => default_ret,
    };
    segments.push(u32::MAX, vec![stmt(bpf::RET_K, newer)]);
    segments.push_one(u32::MAX, vec![stmt(bpf::RET_K, newer)]);
    code.extend(search_tree(&segments.0));
    if code.len() > bpf::MAX_INSNS {
        return Err(SeccompError::ProgramTooLarge {
            len: code.len(),
            max: bpf::MAX_INSNS,
        });
    }
    Ok(code)
}

/// A run of syscall numbers `lo..=hi` answered by the same code, which
/// ends in `ret` on every path.
struct Segment {
    lo: u32,
    hi: u32,
    body: Vec<Instruction>,
}

/// Segments covering `0..=u32::MAX` once complete, built in ascending order.
#[derive(Default)]
struct Segments(Vec<Segment>);

impl Segments {
    /// Covers the numbers from the end of the last segment up to, not
    /// including, `until` with `body`.
    fn push(&mut self, until: u32, body: Vec<Instruction>) {
        let from = match self.0.last() {
            None => 0,
            Some(s) => match s.hi.checked_add(1) {
                Some(from) => from,
                None => return,
            },
        };
        if until > from {
            self.add(from, until - 1, body);
        }
    }

    /// Covers `nr` alone with `body`.
    fn push_one(&mut self, nr: u32, body: Vec<Instruction>) {
        self.add(nr, nr, body);
    }

    /// Appends `lo..=hi`, merged into the last segment when it has the same code.
    fn add(&mut self, lo: u32, hi: u32, body: Vec<Instruction>) {
        match self.0.last_mut() {
            Some(last) if last.body == body => last.hi = hi,
            _ => self.0.push(Segment { lo, hi, body }),
        }
    }
}

/// A binary search over `segments` (ascending, contiguous) with A holding
/// the syscall number: `jge` on the first number of the upper half, the
/// lower half's code next, then the upper half's. Bodies never fall
/// through, so A still holds the number at every comparison.
fn search_tree(segments: &[Segment]) -> Vec<Instruction> {
    if let [only] = segments {
        return only.body.clone();
    }
    let mid = segments.len() / 2;
    let lower = search_tree(&segments[..mid]);
    let upper = search_tree(&segments[mid..]);
    let split = segments[mid].lo;
    let mut code = Vec::with_capacity(lower.len() + upper.len() + 2);
    match u8::try_from(lower.len()) {
        Ok(len) => code.push(bpf::jump(bpf::JGE_K, split, len, 0)),
        Err(_) => {
            // Too far for an 8-bit jump: "at or above → the ja", else skip
            // it into the lower half; the ja passes the lower half.
            code.push(bpf::jump(bpf::JGE_K, split, 0, 1));
            code.push(stmt(
                bpf::JA,
                u32::try_from(lower.len()).unwrap_or(u32::MAX),
            ));
        }
    }
    code.extend(lower);
    code.extend(upper);
    code
}

/// The rules of one syscall: conditional rules in order, then the first
/// unconditional one (or the default action).
fn compile_group(
    group: &[&Rule],
    default_ret: u32,
    names: impl Fn() -> String,
) -> Result<Vec<Instruction>, SeccompError> {
    let mut code = Vec::new();
    for rule in group.iter().filter(|r| !r.conds.is_empty()) {
        code.extend(
            compile_rule(rule).ok_or_else(|| SeccompError::RuleTooComplex {
                names: names(),
                count: rule.conds.len(),
            })?,
        );
    }
    let fallback = group
        .iter()
        .find(|r| r.conds.is_empty())
        .map_or(default_ret, |r| r.ret);
    code.push(stmt(bpf::RET_K, fallback));
    Ok(code)
}

/// Where a jump in a condition block goes.
#[derive(Clone, Copy)]
enum To {
    /// The next instruction.
    Next,
    /// The condition holds: the first instruction after the block.
    Pass,
    /// The condition fails: the first instruction after the whole rule.
    Fail,
}

/// One rule: its conditions (ANDed), then `ret action`. Any failing condition
/// jumps past the `ret`. `None` when a jump does not fit in 8 bits.
fn compile_rule(rule: &Rule) -> Option<Vec<Instruction>> {
    let mut tail = vec![stmt(bpf::RET_K, rule.ret)];
    for cond in rule.conds.iter().rev() {
        let mut block = compile_cond(cond, tail.len())?;
        block.extend(tail);
        tail = block;
    }
    Some(tail)
}

/// One 64-bit comparison as a block of 32-bit operations. `rest` is the number
/// of instructions between the end of the block and the end of the rule.
fn compile_cond(cond: &Cond, rest: usize) -> Option<Vec<Instruction>> {
    use LinuxSeccompOperator as Op;
    use To::{Fail, Next, Pass};

    let (lo_off, hi_off) = bpf::arg_offsets(cond.index);
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    let (hi, lo) = split(cond.value);
    let ld_hi = (bpf::LD_ABS, hi_off, Next, Next);
    let ld_lo = (bpf::LD_ABS, lo_off, Next, Next);
    let block: Vec<(u16, u32, To, To)> = match cond.op {
        Op::ScmpCmpEq => vec![
            ld_hi,
            (bpf::JEQ_K, hi, Next, Fail),
            ld_lo,
            (bpf::JEQ_K, lo, Pass, Fail),
        ],
        Op::ScmpCmpNe => vec![
            ld_hi,
            (bpf::JEQ_K, hi, Next, Pass),
            ld_lo,
            (bpf::JEQ_K, lo, Fail, Pass),
        ],
        Op::ScmpCmpGt | Op::ScmpCmpGe => vec![
            ld_hi,
            (bpf::JGT_K, hi, Pass, Next),
            (bpf::JEQ_K, hi, Next, Fail),
            ld_lo,
            if cond.op == Op::ScmpCmpGt {
                (bpf::JGT_K, lo, Pass, Fail)
            } else {
                (bpf::JGE_K, lo, Pass, Fail)
            },
        ],
        // a < v is !(a >= v); a <= v is !(a > v).
        Op::ScmpCmpLt | Op::ScmpCmpLe => vec![
            ld_hi,
            (bpf::JGT_K, hi, Fail, Next),
            (bpf::JEQ_K, hi, Next, Pass),
            ld_lo,
            if cond.op == Op::ScmpCmpLt {
                (bpf::JGE_K, lo, Fail, Pass)
            } else {
                (bpf::JGT_K, lo, Fail, Pass)
            },
        ],
        Op::ScmpCmpMaskedEq => {
            let (mask_hi, mask_lo) = (hi, lo);
            let (want_hi, want_lo) = split(cond.value_two);
            vec![
                ld_hi,
                (bpf::AND_K, mask_hi, Next, Next),
                (bpf::JEQ_K, want_hi, Next, Fail),
                ld_lo,
                (bpf::AND_K, mask_lo, Next, Next),
                (bpf::JEQ_K, want_lo, Pass, Fail),
            ]
        }
    };
    let n = block.len();
    block
        .iter()
        .enumerate()
        .map(|(i, &(code, k, jt, jf))| {
            let off = |to: To| -> Option<u8> {
                let after_block = n - i - 1;
                u8::try_from(match to {
                    Next => 0,
                    Pass => after_block,
                    Fail => after_block + rest,
                })
                .ok()
            };
            Some(bpf::jump(code, k, off(jt)?, off(jf)?))
        })
        .collect()
}

/// Loads `filter` into the calling thread with `seccomp(SECCOMP_SET_MODE_FILTER)`
/// (falling back to `prctl(PR_SET_SECCOMP)` on kernels without `seccomp(2)` when
/// no flags are needed).
///
/// Does not set `no_new_privs`: the caller decides that from the config, and
/// without it must hold `CAP_SYS_ADMIN`. Safe to call in a forked child of a
/// multi-threaded process: it allocates nothing, takes no lock and logs nothing.
///
/// The filter applies to the calling thread (all threads with
/// `SECCOMP_FILTER_FLAG_TSYNC`) and everything it later forks or executes, from
/// the next syscall on: every syscall the runtime still makes before `execve`
/// (`capset`, `setuid`, `close`, `execve` itself...) must be allowed by the
/// profile, so call it as late as possible. Filters stack: installing twice
/// applies both, the most restrictive result winning.
///
/// Returns the notification listener (a new descriptor the caller owns) when
/// the filter [has one](Filter::has_listener).
pub fn install(filter: &Filter) -> Result<Option<RawFd>, SeccompError> {
    let prog = libc::sock_fprog {
        // `compile` never makes more than MAX_INSNS (4096) instructions.
        len: filter.program.len() as libc::c_ushort,
        filter: filter
            .program
            .as_ptr()
            .cast::<libc::sock_filter>()
            .cast_mut(),
    };
    // SAFETY: seccomp(2) reads `prog.len` instructions from `prog.filter`, which
    // points into `filter.program`, alive for the whole call; `Instruction` has the
    // layout of `sock_filter` (asserted at compile time in `bpf`). The kernel copies
    // the program and never writes through the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            filter.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc >= 0 && filter.has_listener() {
        // Cannot truncate: descriptors are ints.
        return Ok(Some(rc as RawFd));
    }
    if rc == 0 {
        return Ok(None);
    }
    if rc > 0 {
        return Err(SeccompError::TsyncFailed { tid: rc });
    }
    let errno = Errno::last();
    if errno != Errno::ENOSYS || filter.flags != 0 {
        return Err(SeccompError::Install { errno });
    }
    // SAFETY: same program pointer as above; PR_SET_SECCOMP with
    // SECCOMP_MODE_FILTER reads the sock_fprog and copies the program.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc == 0 {
        Ok(None)
    } else {
        Err(SeccompError::Install {
            errno: Errno::last(),
        })
    }
}

#[cfg(test)]
mod tests;
