//! One module per subcommand family; `main.rs` only dispatches.

pub mod declare;
pub mod learn;
pub mod run;
pub mod store;
