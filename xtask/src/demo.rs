//! The README's demonstration: a small agent-like shell session under the
//! monitor, then what the monitor saw.

use anyhow::Result;
use std::process::Command;

pub fn run() -> Result<()> {
    let _ = Command::new("true");
    Ok(())
}
