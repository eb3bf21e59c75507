//! One module per subcommand family; `main.rs` only dispatches.

pub mod daemon;
pub mod declare;
pub mod install;
pub mod learn;
pub mod run;
pub mod store;
