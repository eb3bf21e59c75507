//! Where processed events go. Each sink is one output format.

pub mod jsonl;

use std::io;

use crate::{
    event::{Event, LossReport},
    evidence::declared::Declared,
    process_table::ProcessInfo,
};

/// Who an event is attributed to: its agent, and once correlation has run,
/// its session, tool call and verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attribution<'a> {
    pub agent: &'a str,
    pub session_id: Option<&'a str>,
    pub tool_call_id: Option<&'a str>,
    /// `declared`, `baseline`, `undeclared`, … (see docs/evidence.md).
    pub verdict: Option<&'a str>,
    /// The policy rule behind the verdict.
    pub rule: Option<&'a str>,
}

impl<'a> Attribution<'a> {
    /// Only the agent known: no session or correlation yet.
    pub fn agent(agent: &'a str) -> Attribution<'a> {
        Attribution {
            agent,
            ..Attribution::default()
        }
    }
}

/// An output for the processing stage.
pub trait Sink {
    /// An event, with its acting process as it stands after the event.
    fn event(&mut self, event: &Event, process: &ProcessInfo, who: &Attribution) -> io::Result<()>;
    /// Lost events, so the output itself says where it is incomplete.
    fn loss(&mut self, loss: &LossReport) -> io::Result<()>;
    /// A process's final record: at its exit, or at the end of the run for
    /// one still running. Outputs without a process table ignore it.
    fn process(&mut self, _process: &ProcessInfo, _agent: &str) -> io::Result<()> {
        Ok(())
    }
    /// A session, message, tool call, decision or alert. Outputs without
    /// those tables ignore it.
    fn declared(&mut self, _record: &Declared) -> io::Result<()> {
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
    fn event(&mut self, event: &Event, process: &ProcessInfo, who: &Attribution) -> io::Result<()> {
        self.each(|s| s.event(event, process, who))
    }

    fn loss(&mut self, loss: &LossReport) -> io::Result<()> {
        self.each(|s| s.loss(loss))
    }

    fn process(&mut self, process: &ProcessInfo, agent: &str) -> io::Result<()> {
        self.each(|s| s.process(process, agent))
    }

    fn declared(&mut self, record: &Declared) -> io::Result<()> {
        self.each(|s| s.declared(record))
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
    fn event(&mut self, _: &Event, _: &ProcessInfo, _: &Attribution) -> io::Result<()> {
        Ok(())
    }

    fn loss(&mut self, _: &LossReport) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
