//! One module per subcommand family; `main.rs` only dispatches.

pub mod daemon;
pub mod declare;
pub mod hook;
pub mod install;
pub mod learn;
pub mod mcp_proxy;
pub mod run;
pub mod store;

/// The runtime every long-running command runs on: one thread, which is
/// all the stages need (the kernel side and the agents use the others).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
