//! Links the `strato` binary with packed relative relocations (DT_RELR).
//!
//! Every `strato` command is a fresh process, and `docker`-style use starts
//! one per request (`strato run`, `strato ps`, scripts in loops). The binary
//! is position-independent (its image is randomised: the same binary is the
//! network-facing daemon, registry and load balancer), so the dynamic loader
//! applies about 40,000 relative relocations at each start. As RELA entries
//! they fill 955 KB that the loader reads page by page; packed as RELR
//! (glibc 2.36, binutils 2.38) the table is a few kilobytes.
//!
//! Only the binary is linked so: test harnesses and proc-macros are as
//! cargo links them.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
