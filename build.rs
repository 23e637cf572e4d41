//! Builds appliance's init (src/materialise/image/init) for the image format: a static,
//! std-only binary that the library embeds and writes into every initramfs as `/init`.
//! It is compiled with the same rustc as the crate, directly: it is a separate program
//! for another machine's PID 1, not a part of this crate.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const INIT_DIR: &str = "src/materialise/image/init";

fn main() {
    println!("cargo::rerun-if-changed={INIT_DIR}");
    println!("cargo::rustc-check-cfg=cfg(appliance_init)");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let output = Command::new(rustc)
        .args([
            "--edition=2024",
            "--crate-type=bin",
            "--crate-name=appliance_init",
        ])
        .args(["--target", &target, "--cfg", "appliance_init"])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "codegen-units=1", "-C", "target-feature=+crt-static"])
        .arg("-o")
        .arg(out_dir.join("appliance-init"))
        .arg(format!("{INIT_DIR}/main.rs"))
        .output()
        .expect("run rustc for the init");
    if !output.status.success() {
        panic!(
            "building the init failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Warnings would otherwise vanish with rustc's captured output.
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        println!("cargo::warning=init: {line}");
    }
}
