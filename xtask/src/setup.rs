//! Installs the BPF toolchain and test tools when they are missing; does
//! nothing when everything is there. Pins are the known-good set for this
//! machine kind (docs/toolchain.md).

use std::{
    ffi::OsString,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::sh;

const LLVM_PACKAGE: &str = "llvm-22-dev";
const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";
const BPF_LINKER_VERSION: &str = "0.13.0";
const NIGHTLY: &str = "nightly";
/// Debian packages the tests use: strace and git for the completeness test
/// (a git workload traced both ways), util-linux for setpriv.
const TEST_PACKAGES: &[&str] = &["strace", "git", "util-linux"];

pub fn run() -> Result<()> {
    apt_install(
        &[LLVM_PACKAGE],
        Path::new(LLVM_BIN).join("llvm-config").exists(),
    )?;
    let missing_tools: Vec<&str> = TEST_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing_tools.is_empty() {
        apt_install(&missing_tools, false)?;
    }
    rust_src()?;
    bpf_linker()?;
    python_packages()?;
    Ok(())
}

/// Python packages the tests use, as (module to import, pinned package):
/// DuckDB, to read the evidence store the way users do; the official MCP
/// SDK, whose client drives a server under `mcp-proxy`; the OpenTelemetry
/// SDK and its OTLP/HTTP exporter, which send spans to the receiver.
const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("duckdb", "duckdb==2.0.1"),
    ("mcp", "mcp==2.3.0"),
    ("opentelemetry.sdk", "opentelemetry-sdk==1.45.2"),
    (
        "opentelemetry.exporter.otlp.proto.http",
        "opentelemetry-exporter-otlp-proto-http==1.45.2",
    ),
];

fn python_packages() -> Result<()> {
    let missing: Vec<&str> = PYTHON_PACKAGES
        .iter()
        .filter(|(module, _)| {
            !Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing {} from PyPI", missing.join(" "));
    sh(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--root-user-action=ignore",
        ])
        .args(&missing))
}

/// PATH with cargo's bin directory and LLVM's, so bpf-linker and the
/// nightly toolchain are found.
pub fn path_with_tools() -> OsString {
    let mut paths = vec![cargo_bin(), LLVM_BIN.into()];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).expect("no separator in these paths")
}

fn cargo_bin() -> std::path::PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(Into::into)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| "/root/.cargo".into());
    Path::new(&home).join("bin")
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn apt_install(packages: &[&str], present: bool) -> Result<()> {
    if present {
        return Ok(());
    }
    eprintln!(
        "setup: installing {} from Debian's packages",
        packages.join(" ")
    );
    sh(Command::new("apt-get").args(["update", "-qq"]))?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn rust_src() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", NIGHTLY])
        .output()
        .context("rustup is needed to build the kernel programs (https://rustup.rs)")?;
    if !installed.status.success() {
        bail!(
            "the nightly toolchain is missing: install it with `rustup toolchain install nightly --component rust-src`"
        );
    }
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        return Ok(());
    }
    sh(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

fn bpf_linker() -> Result<()> {
    let version = Command::new(cargo_bin().join("bpf-linker"))
        .arg("--version")
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = version
        && String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION)
    {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (a few minutes)");
    sh(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--force",
            "--version",
            &format!("={BPF_LINKER_VERSION}"),
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("PATH", path_with_tools()))
}
