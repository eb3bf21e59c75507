//! Builds the kernel programs with aya-build (nightly, `-Z build-std=core`,
//! bpfel target) and leaves the object in OUT_DIR for `include_bytes_aligned!`.
//!
//! With `AYA_BUILD_SKIP=1` an empty stub is written instead, so `cargo check`,
//! clippy and the unprivileged unit tests work without bpf-linker; loading the
//! probes then fails with a message that says so.

use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{Context as _, anyhow};

const EBPF_PACKAGE: &str = "agent-monitor-ebpf";
const OBJECT: &str = "agent-monitor";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
        fs::write(out_dir.join(OBJECT), []).context("writing the stub object")?;
        return Ok(());
    }
    if Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(anyhow!(
            "bpf-linker is not installed: run `cargo xtask setup` (or set AYA_BUILD_SKIP=1 to build without the kernel programs)"
        ));
    }
    let root =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?)
            .join("..")
            .join(EBPF_PACKAGE);
    let root = root.to_str().context("non-UTF-8 path")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: EBPF_PACKAGE,
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
