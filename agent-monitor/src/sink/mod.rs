//! Where processed events go. Each sink is one output format.

pub mod jsonl;

use std::io;

use crate::{
    event::{Event, LossReport},
    process_table::ProcessInfo,
};

/// An output for the processing stage.
pub trait Sink {
    /// An event, with its acting process as it stands after the event.
    fn event(&mut self, event: &Event, process: &ProcessInfo, agent: &str) -> io::Result<()>;
    /// Lost events, so the output itself says where it is incomplete.
    fn loss(&mut self, loss: &LossReport) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// A sink that keeps nothing, for runs without `--events`.
pub struct Discard;

impl Sink for Discard {
    fn event(&mut self, _: &Event, _: &ProcessInfo, _: &str) -> io::Result<()> {
        Ok(())
    }

    fn loss(&mut self, _: &LossReport) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
