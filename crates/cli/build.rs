//! Links the `strato` binary as a position-dependent executable.
//!
//! Every `strato` command is a fresh process, and `docker`-style use starts
//! one per request (`strato run`, `strato ps`, scripts in loops). Linked as
//! PIE, the dynamic loader had to apply about 40,000 relative relocations at
//! each start, copying 170 pages of `.data.rel.ro`: 0.6 ms of the client's
//! 3.2 ms of CPU and half of its page faults (`perf stat` of `strato run -d`).
//! A fixed load address needs none. The loss is the randomised address of the
//! binary's own image; the libraries, stack, heap and mmaps stay randomised.
//!
//! Only the binary is linked so: test harnesses and proc-macros keep PIE.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
