//! Rebuilds the programs when bpf-linker changes, as aya-template does: the
//! linker is part of the toolchain that produced the object.
fn main() {
    match which::which("bpf-linker") {
        Ok(linker) => println!("cargo:rerun-if-changed={}", linker.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found: {err}"),
    }
}
