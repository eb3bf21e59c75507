//! placeholder
use std::process::ExitCode;
#[derive(clap::Args)]
pub struct McpProxyArgs {}
pub fn mcp_proxy_command(_a: McpProxyArgs) -> ExitCode {
    ExitCode::from(2)
}
