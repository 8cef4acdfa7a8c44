//! Classic BPF instructions for seccomp, and the layout of `struct seccomp_data`.
//!
//! Only the handful of opcodes a seccomp filter needs: absolute 32-bit loads,
//! `and` with a constant, forward jumps and `ret`.

/// One classic BPF instruction; the same layout as the kernel's `struct sock_filter`
/// (and `libc::sock_filter`), so a slice of these can be handed to `seccomp(2)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Instruction {
    /// Opcode (`BPF_LD | BPF_W | BPF_ABS`, ...).
    pub code: u16,
    /// Jump offset when the condition holds (relative to the next instruction).
    pub jt: u8,
    /// Jump offset when the condition does not hold.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

// `install` passes `&[Instruction]` as `*const libc::sock_filter`: the layouts must agree.
const _: () =
    assert!(std::mem::size_of::<Instruction>() == std::mem::size_of::<libc::sock_filter>());
const _: () =
    assert!(std::mem::align_of::<Instruction>() == std::mem::align_of::<libc::sock_filter>());

// Opcode parts from <linux/bpf_common.h>.
const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_K: u16 = 0x00;
const BPF_AND: u16 = 0x50;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;

/// `A = *(u32 *)(seccomp_data + k)`.
pub const LD_ABS: u16 = BPF_LD | BPF_W | BPF_ABS;
/// `A &= k`.
pub const AND_K: u16 = BPF_ALU | BPF_AND | BPF_K;
/// `pc += k`.
pub const JA: u16 = BPF_JMP | BPF_JA;
/// `pc += (A == k) ? jt : jf`.
pub const JEQ_K: u16 = BPF_JMP | BPF_JEQ | BPF_K;
/// `pc += (A > k) ? jt : jf` (unsigned).
pub const JGT_K: u16 = BPF_JMP | BPF_JGT | BPF_K;
/// `pc += (A >= k) ? jt : jf` (unsigned).
pub const JGE_K: u16 = BPF_JMP | BPF_JGE | BPF_K;
/// `return k`.
pub const RET_K: u16 = BPF_RET | BPF_K;

/// Largest program the kernel accepts (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// Offset of `seccomp_data.nr` (the syscall number, `int`).
pub const OFF_NR: u32 = 0;
/// Offset of `seccomp_data.arch` (an `AUDIT_ARCH_*` token).
pub const OFF_ARCH: u32 = 4;

/// Offsets of the low and high 32-bit halves of `seccomp_data.args[index]`.
pub const fn arg_offsets(index: u8) -> (u32, u32) {
    let base = 16 + 8 * index as u32;
    if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    }
}

/// A statement (no jump).
pub const fn stmt(code: u16, k: u32) -> Instruction {
    Instruction {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A conditional jump.
pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Instruction {
    Instruction { code, jt, jf, k }
}

// Return values from <linux/seccomp.h>.
/// Kill the whole process (`SECCOMP_RET_KILL_PROCESS`).
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
/// Kill the calling thread (`SECCOMP_RET_KILL_THREAD`).
pub const RET_KILL_THREAD: u32 = 0x0000_0000;
/// Send `SIGSYS` (`SECCOMP_RET_TRAP`).
pub const RET_TRAP: u32 = 0x0003_0000;
/// Fail with the errno in the low 16 bits (`SECCOMP_RET_ERRNO`).
pub const RET_ERRNO: u32 = 0x0005_0000;
/// Hand to a ptrace tracer, with the low 16 bits as message (`SECCOMP_RET_TRACE`).
pub const RET_TRACE: u32 = 0x7ff0_0000;
/// Ask the process holding the filter's listener (`SECCOMP_RET_USER_NOTIF`).
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// Allow after logging (`SECCOMP_RET_LOG`).
pub const RET_LOG: u32 = 0x7ffc_0000;
/// Allow (`SECCOMP_RET_ALLOW`).
pub const RET_ALLOW: u32 = 0x7fff_0000;
