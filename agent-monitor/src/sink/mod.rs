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
    /// A process's final record: at its exit, or at the end of the run for
    /// one still running. Outputs without a process table ignore it.
    fn process(&mut self, _process: &ProcessInfo, _agent: &str) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()>;
    /// Writes out everything still buffered; called once, at the end.
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// Several sinks fed the same events, in order. A failing sink does not
/// starve the others: each is called, and the first error is returned.
pub struct Tee(pub Vec<Box<dyn Sink + Send>>);

impl Tee {
    fn each(&mut self, mut call: impl FnMut(&mut dyn Sink) -> io::Result<()>) -> io::Result<()> {
        let mut first = Ok(());
        for sink in &mut self.0 {
            if let Err(err) = call(sink.as_mut())
                && first.is_ok()
            {
                first = Err(err);
            }
        }
        first
    }
}

impl Sink for Tee {
    fn event(&mut self, event: &Event, process: &ProcessInfo, agent: &str) -> io::Result<()> {
        self.each(|s| s.event(event, process, agent))
    }

    fn loss(&mut self, loss: &LossReport) -> io::Result<()> {
        self.each(|s| s.loss(loss))
    }

    fn process(&mut self, process: &ProcessInfo, agent: &str) -> io::Result<()> {
        self.each(|s| s.process(process, agent))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.each(|s| s.flush())
    }

    fn close(&mut self) -> io::Result<()> {
        self.each(|s| s.close())
    }
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
