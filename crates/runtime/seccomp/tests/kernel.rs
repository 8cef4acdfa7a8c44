//! Real kernel tests: each scenario forks a child that installs a filter and
//! tries syscalls; the parent checks how the child ended.
//!
//! `harness = false` so that `main` is single-threaded and `fork` is sound (the
//! child may allocate, print and spawn freely). Needs root (or CAP_SYS_ADMIN),
//! because `install` deliberately does not set no_new_privs; CI runs as root.
//!
//! Run one scenario: `cargo test -p strato-seccomp --test kernel -- NAME_PART`.

use std::ffi::CString;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall,
};
use strato_seccomp::{compile, default_profile, default_profile_for, install};

type Check = Result<(), String>;

/// How a scenario's child must end.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// Every check passed and the child exited 0.
    Exit0,
    /// Killed by this signal (after its checks passed).
    Signal(Signal),
}

struct Scenario {
    name: &'static str,
    end: End,
    run: fn(&Path) -> Check,
}

fn rule(names: &[&str], action: LinuxSeccompAction, errno_ret: Option<u32>) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names.iter().map(|s| s.to_string()).collect());
    r.set_action(action);
    r.set_errno_ret(errno_ret);
    r
}

fn profile(default: LinuxSeccompAction, rules: Vec<LinuxSyscall>) -> LinuxSeccomp {
    let mut p = LinuxSeccomp::default();
    p.set_default_action(default);
    p.set_syscalls(Some(rules));
    p
}

fn load(p: &LinuxSeccomp) -> Check {
    let filter = compile(p).map_err(|e| format!("compile: {e}"))?;
    install(&filter)
        .map(|_| ())
        .map_err(|e| format!("install: {e}"))
}

/// Runs a raw syscall; `Ok(return value)` or `Err(errno)`.
fn sys(nr: libc::c_long, args: [libc::c_long; 3]) -> Result<libc::c_long, Errno> {
    // SAFETY: the callers pass syscalls whose pointer arguments are either null or
    // point to live NUL-terminated strings; the rest are plain integers.
    let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2]) };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

fn expect_errno(what: &str, got: Result<libc::c_long, Errno>, want: Errno) -> Check {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(format!("{what}: expected {want}, got {other:?}")),
    }
}

fn expect_ok(what: &str, got: Result<libc::c_long, Errno>) -> Check {
    got.map(drop)
        .map_err(|e| format!("{what}: expected success, got {e}"))
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn mkdir(p: &Path) -> Result<libc::c_long, Errno> {
    let c = cstr(p);
    sys(
        libc::SYS_mkdirat,
        [
            libc::AT_FDCWD as libc::c_long,
            c.as_ptr() as libc::c_long,
            0o755,
        ],
    )
}

fn no_new_privs() -> libc::c_int {
    // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointer and only reads a flag.
    unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) }
}

fn errno_denies_mkdir_and_allows_the_rest(dir: &Path) -> Check {
    let p = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![rule(
            &["mkdir", "mkdirat"],
            LinuxSeccompAction::ScmpActErrno,
            None,
        )],
    );
    load(&p)?;
    if no_new_privs() != 0 {
        return Err("install set no_new_privs".into());
    }
    let target = dir.join("denied");
    expect_errno("mkdirat", mkdir(&target), Errno::EPERM)?;
    #[cfg(target_arch = "x86_64")]
    {
        let c = cstr(&target);
        expect_errno(
            "mkdir",
            sys(libc::SYS_mkdir, [c.as_ptr() as _, 0o755, 0]),
            Errno::EPERM,
        )?;
    }
    if target.exists() {
        return Err("the directory was created anyway".into());
    }
    let pid = sys(libc::SYS_getpid, [0; 3]).map_err(|e| format!("getpid: {e}"))?;
    if pid != libc::c_long::from(std::process::id() as i32) {
        return Err(format!("getpid returned {pid}"));
    }
    std::fs::write(dir.join("file"), b"still works").map_err(|e| format!("write: {e}"))
}

fn errno_ret_is_returned(dir: &Path) -> Check {
    let p = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![rule(
            &["mkdirat"],
            LinuxSeccompAction::ScmpActErrno,
            Some(libc::EACCES as u32),
        )],
    );
    load(&p)?;
    expect_errno("mkdirat", mkdir(&dir.join("x")), Errno::EACCES)
}

fn kill_process_sends_sigsys(_: &Path) -> Check {
    let p = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![rule(
            &["getppid"],
            LinuxSeccompAction::ScmpActKillProcess,
            None,
        )],
    );
    load(&p)?;
    let _ = sys(libc::SYS_getppid, [0; 3]);
    Err("survived getppid under KILL_PROCESS".into())
}

fn kill_thread_of_the_only_thread_ends_the_process(_: &Path) -> Check {
    let p = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![rule(&["getppid"], LinuxSeccompAction::ScmpActKill, None)],
    );
    load(&p)?;
    let _ = sys(libc::SYS_getppid, [0; 3]);
    Err("survived getppid under KILL".into())
}

fn trap_raises_sigsys(_: &Path) -> Check {
    let p = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![rule(&["getppid"], LinuxSeccompAction::ScmpActTrap, None)],
    );
    load(&p)?;
    let _ = sys(libc::SYS_getppid, [0; 3]);
    Err("survived getppid under TRAP".into())
}

fn personality_only_with_allowed_arg(_: &Path) -> Check {
    let mut allowed = rule(&["personality"], LinuxSeccompAction::ScmpActAllow, None);
    allowed.set_args(Some(vec![LinuxSeccompArgBuilder::default()
        .index(0usize)
        .op(LinuxSeccompOperator::ScmpCmpEq)
        .value(0u64)
        .build()
        .unwrap()]));
    // The syscall-wide rule comes first in the profile; the conditional one still wins.
    let p = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![
            rule(&["personality"], LinuxSeccompAction::ScmpActErrno, None),
            allowed,
        ],
    );
    load(&p)?;
    expect_ok("personality(0)", sys(libc::SYS_personality, [0, 0, 0]))?;
    expect_errno(
        "personality(8)",
        sys(libc::SYS_personality, [8, 0, 0]),
        Errno::EPERM,
    )?;
    expect_errno(
        "personality(0xffffffff)",
        sys(libc::SYS_personality, [0xffff_ffff, 0, 0]),
        Errno::EPERM,
    )?;
    // Only arg0 is compared, all 64 bits of it.
    expect_errno(
        "personality(1 << 32)",
        sys(libc::SYS_personality, [1 << 32, 0, 0]),
        Errno::EPERM,
    )
}

/// One program, five actions: ALLOW, two ERRNOs, LOG, and KILL_PROCESS last.
/// The profile does not allow `seccomp` itself, which stacked per-action filters
/// could not load; one program is one `seccomp(2)` call.
fn multi_action_profile(dir: &Path) -> Check {
    let p = profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![
            rule(
                &[
                    "write",
                    "exit_group",
                    "exit",
                    "getpid",
                    "rt_sigreturn",
                    "rt_sigprocmask",
                    "sigaltstack",
                    "mmap",
                    "munmap",
                    "mremap",
                    "brk",
                    "futex",
                    "madvise",
                ],
                LinuxSeccompAction::ScmpActAllow,
                None,
            ),
            rule(
                &["mkdirat", "mkdir"],
                LinuxSeccompAction::ScmpActErrno,
                Some(libc::EACCES as u32),
            ),
            rule(
                &["clone3"],
                LinuxSeccompAction::ScmpActErrno,
                Some(libc::ENOSYS as u32),
            ),
            rule(&["getppid"], LinuxSeccompAction::ScmpActLog, None),
            rule(&["gettid"], LinuxSeccompAction::ScmpActKillProcess, None),
        ],
    );
    load(&p)?;
    expect_ok("getpid", sys(libc::SYS_getpid, [0; 3]))?;
    expect_errno("mkdirat", mkdir(&dir.join("x")), Errno::EACCES)?;
    expect_errno("clone3", sys(libc::SYS_clone3, [0; 3]), Errno::ENOSYS)?;
    expect_errno(
        "getuid (default)",
        sys(libc::SYS_getuid, [0; 3]),
        Errno::EPERM,
    )?;
    expect_ok("getppid (LOG)", sys(libc::SYS_getppid, [0; 3]))?;
    let _ = sys(libc::SYS_gettid, [0; 3]);
    Err("survived gettid under KILL_PROCESS".into())
}

fn default_profile_runs_ordinary_work(dir: &Path) -> Check {
    load(&default_profile())?;
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).map_err(|e| format!("mkdir in tmp: {e}"))?;
    std::fs::write(sub.join("f"), b"data").map_err(|e| format!("write: {e}"))?;
    let back = std::fs::read(sub.join("f")).map_err(|e| format!("read: {e}"))?;
    if back != b"data" {
        return Err("read back different data".into());
    }
    std::fs::read_to_string("/proc/self/status").map_err(|e| format!("read /proc: {e}"))?;
    // posix_spawn in glibc tries clone3 first and falls back to clone on ENOSYS.
    let status = std::process::Command::new("/bin/true")
        .status()
        .map_err(|e| format!("spawn /bin/true: {e}"))?;
    if !status.success() {
        return Err(format!("/bin/true: {status}"));
    }
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", "echo hi; exit 3"])
        .output()
        .map_err(|e| format!("spawn /bin/sh: {e}"))?;
    if out.status.code() != Some(3) || out.stdout != b"hi\n" {
        return Err(format!("/bin/sh: {:?} {:?}", out.status, out.stdout));
    }
    std::thread::spawn(|| ())
        .join()
        .map_err(|_| "thread panicked".to_string())?;

    expect_errno(
        "unshare(CLONE_NEWNS)",
        sys(libc::SYS_unshare, [libc::CLONE_NEWNS as _, 0, 0]),
        Errno::EPERM,
    )?;
    let (src, fstype) = (
        CString::new("none").unwrap(),
        CString::new("tmpfs").unwrap(),
    );
    let target = cstr(&sub);
    // SAFETY: all pointers are live NUL-terminated strings or null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 || Errno::last() != Errno::EPERM {
        return Err(format!(
            "mount: expected EPERM, got rc {rc} {}",
            Errno::last()
        ));
    }
    expect_errno("clone3", sys(libc::SYS_clone3, [0; 3]), Errno::ENOSYS)?;
    let flags = (libc::CLONE_NEWUTS | libc::SIGCHLD) as libc::c_long;
    match sys(libc::SYS_clone, [flags, 0, 0]) {
        Err(Errno::EPERM) => {}
        Ok(0) => {
            // SAFETY: in the unexpectedly created child: leave at once.
            unsafe { libc::_exit(0) }
        }
        other => {
            return Err(format!(
                "clone(CLONE_NEWUTS): expected EPERM, got {other:?}"
            ))
        }
    }
    expect_errno(
        "personality(ADDR_NO_RANDOMIZE)",
        sys(libc::SYS_personality, [0x0040_0000, 0, 0]),
        Errno::EPERM,
    )?;
    // SAFETY: socket(2) takes integers only.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) };
    if fd >= 0 || Errno::last() != Errno::EPERM {
        return Err(format!(
            "socket(AF_VSOCK): expected EPERM, got {fd} {}",
            Errno::last()
        ));
    }
    // SAFETY: socket(2) takes integers only.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return Err(format!("socket(AF_UNIX): {}", Errno::last()));
    }
    Ok(())
}

fn default_profile_with_sys_admin_allows_namespaces(_: &Path) -> Check {
    load(&default_profile_for(&["CAP_SYS_ADMIN".to_string()]))?;
    expect_ok(
        "unshare(CLONE_NEWNS)",
        sys(libc::SYS_unshare, [libc::CLONE_NEWNS as _, 0, 0]),
    )?;
    // Not granted without CAP_SYS_CHROOT.
    let root = CString::new("/").unwrap();
    expect_errno(
        "chroot",
        sys(libc::SYS_chroot, [root.as_ptr() as _, 0, 0]),
        Errno::EPERM,
    )
}

/// i386 syscalls from a 64-bit process (`int 0x80`) go through the compat
/// section: the i386 numbers, not the x86_64 ones, are matched.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32) -> i32 {
    let ret: i32;
    // SAFETY: `int 0x80` enters the kernel's i386 syscall path; the syscalls used
    // here take no arguments. The kernel clobbers r8-r11 on this path.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("eax") nr as i32 => ret,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
        );
    }
    ret
}

#[cfg(target_arch = "x86_64")]
fn compat_x86_syscalls_are_filtered_with_the_i386_table(_: &Path) -> Check {
    use oci_spec::runtime::Arch;
    let mut p = profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![rule(&["getuid"], LinuxSeccompAction::ScmpActErrno, None)],
    );
    p.set_architectures(Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86]));
    load(&p)?;
    // i386: getpid = 20, getuid = 24 (x86_64 getuid is 102).
    let pid = int80(20);
    if pid != std::process::id() as i32 {
        return Err(format!("i386 getpid returned {pid}"));
    }
    let rc = int80(24);
    if rc != -libc::EPERM {
        return Err(format!("i386 getuid: expected -EPERM, got {rc}"));
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
fn unlisted_compat_arch_is_killed(_: &Path) -> Check {
    load(&profile(LinuxSeccompAction::ScmpActAllow, vec![]))?;
    int80(20);
    Err("survived an i386 syscall without SCMP_ARCH_X86".into())
}

/// `struct __user_cap_header_struct` / `__user_cap_data_struct` for capget/capset.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const CAP_SYS_ADMIN: u32 = 21;

fn drop_effective_cap_sys_admin() -> Check {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    let hdr = &mut header as *mut CapHeader as libc::c_long;
    expect_ok(
        "capget",
        sys(libc::SYS_capget, [hdr, data.as_mut_ptr() as _, 0]),
    )?;
    data[0].effective &= !(1 << CAP_SYS_ADMIN);
    expect_ok(
        "capset",
        sys(libc::SYS_capset, [hdr, data.as_ptr() as _, 0]),
    )
}

/// `install` leaves no_new_privs to the caller: without it and without
/// CAP_SYS_ADMIN the kernel refuses (proving install did not set it), with it
/// the same filter loads.
fn install_leaves_no_new_privs_to_the_caller(dir: &Path) -> Check {
    let filter = compile(&profile(
        LinuxSeccompAction::ScmpActAllow,
        vec![rule(&["mkdirat"], LinuxSeccompAction::ScmpActErrno, None)],
    ))
    .map_err(|e| e.to_string())?;
    drop_effective_cap_sys_admin()?;
    match install(&filter) {
        Err(
            e @ strato_seccomp::SeccompError::Install {
                errno: Errno::EACCES,
            },
        ) => {
            if !e.to_string().contains("no_new_privs") {
                return Err(format!("unhelpful error: {e}"));
            }
        }
        other => return Err(format!("install without NNP/CAP_SYS_ADMIN: {other:?}")),
    }
    if no_new_privs() != 0 {
        return Err("install set no_new_privs".into());
    }
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integers only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("PR_SET_NO_NEW_PRIVS: {}", Errno::last()));
    }
    install(&filter).map_err(|e| format!("install with NNP: {e}"))?;
    expect_errno("mkdirat", mkdir(&dir.join("x")), Errno::EPERM)
}

fn scenarios() -> Vec<Scenario> {
    let sigsys = End::Signal(Signal::SIGSYS);
    let mut all = vec![
        Scenario {
            name: "errno_denies_mkdir_and_allows_the_rest",
            end: End::Exit0,
            run: errno_denies_mkdir_and_allows_the_rest,
        },
        Scenario {
            name: "install_leaves_no_new_privs_to_the_caller",
            end: End::Exit0,
            run: install_leaves_no_new_privs_to_the_caller,
        },
        Scenario {
            name: "errno_ret_is_returned",
            end: End::Exit0,
            run: errno_ret_is_returned,
        },
        Scenario {
            name: "kill_process_sends_sigsys",
            end: sigsys,
            run: kill_process_sends_sigsys,
        },
        Scenario {
            name: "kill_thread_of_the_only_thread_ends_the_process",
            end: sigsys,
            run: kill_thread_of_the_only_thread_ends_the_process,
        },
        Scenario {
            name: "trap_raises_sigsys",
            end: sigsys,
            run: trap_raises_sigsys,
        },
        Scenario {
            name: "personality_only_with_allowed_arg",
            end: End::Exit0,
            run: personality_only_with_allowed_arg,
        },
        Scenario {
            name: "multi_action_profile",
            end: sigsys,
            run: multi_action_profile,
        },
        Scenario {
            name: "default_profile_runs_ordinary_work",
            end: End::Exit0,
            run: default_profile_runs_ordinary_work,
        },
        Scenario {
            name: "default_profile_with_sys_admin_allows_namespaces",
            end: End::Exit0,
            run: default_profile_with_sys_admin_allows_namespaces,
        },
    ];
    #[cfg(target_arch = "x86_64")]
    all.extend([
        Scenario {
            name: "compat_x86_syscalls_are_filtered_with_the_i386_table",
            end: End::Exit0,
            run: compat_x86_syscalls_are_filtered_with_the_i386_table,
        },
        Scenario {
            name: "unlisted_compat_arch_is_killed",
            end: sigsys,
            run: unlisted_compat_arch_is_killed,
        },
    ]);
    all
}

fn run_in_child(s: &Scenario, dir: &Path) -> Result<(), String> {
    std::io::stdout().flush().ok();
    std::io::stderr().flush().ok();
    // SAFETY: this process is single-threaded (`harness = false`, no threads
    // spawned before this point), so the child may do anything the parent could.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: setrlimit reads the struct we pass; no core files from SIGSYS.
            unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
            let code = match (s.run)(dir) {
                Ok(()) => 0,
                Err(msg) => {
                    eprintln!("    child: {msg}");
                    1
                }
            };
            // SAFETY: _exit ends the child without running the parent's atexit
            // handlers or flushing buffers it inherited.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).map_err(|e| format!("waitpid: {e}"))?;
            let ended = match status {
                WaitStatus::Exited(_, 0) => End::Exit0,
                WaitStatus::Signaled(_, sig, _) => End::Signal(sig),
                other => return Err(format!("child ended with {other:?}, expected {:?}", s.end)),
            };
            if ended == s.end {
                Ok(())
            } else {
                Err(format!("child ended with {status:?}, expected {:?}", s.end))
            }
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        for s in scenarios() {
            println!("{}: test", s.name);
        }
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "warning: not root; install() without no_new_privs needs CAP_SYS_ADMIN, \
             scenarios will fail with EACCES"
        );
    }
    let mut failed = Vec::new();
    let mut ran = 0;
    for s in scenarios() {
        if !filters.is_empty() && !filters.iter().any(|f| s.name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir: PathBuf = tmp.path().to_path_buf();
        match run_in_child(&s, &dir) {
            Ok(()) => println!("test {} ... ok", s.name),
            Err(e) => {
                println!("test {} ... FAILED: {e}", s.name);
                failed.push(s.name);
            }
        }
    }
    println!(
        "\nkernel seccomp scenarios: {} passed, {} failed",
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
