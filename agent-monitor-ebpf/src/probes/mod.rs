//! One module per hook family.
pub mod file;
pub mod net;
pub mod privilege;
pub mod process;
pub mod syscall;
