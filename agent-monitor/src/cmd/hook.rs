//! placeholder
use std::process::ExitCode;
#[derive(clap::Subcommand)]
pub enum HookCommand {}
pub fn hook_command(c: HookCommand) -> ExitCode {
    match c {}
}
