//! The kernel's per-CPU loss counters, turned into [`LossReport`]s.

use agent_monitor_common::maps::{COUNTERS, Counter};
use aya::maps::{MapData, PerCpuArray};

use crate::{
    error::{Error, Result},
    event::LossReport,
    time::WallClock,
};

pub struct Counters {
    map: PerCpuArray<MapData, u64>,
    /// Last value read, per counter and CPU.
    last: Vec<Vec<u64>>,
    last_read_ns: u64,
}

impl Counters {
    pub fn new(map: PerCpuArray<MapData, u64>) -> Counters {
        Counters {
            map,
            last: vec![Vec::new(); Counter::ALL.len()],
            last_read_ns: WallClock::boot_now_ns(),
        }
    }

    /// Reads every counter and reports what grew since the last call.
    pub fn poll(&mut self) -> Result<Vec<LossReport>> {
        let now = WallClock::boot_now_ns();
        let mut reports = Vec::new();
        for counter in Counter::ALL {
            let values = self.map.get(&(counter as u32), 0).map_err(|e| Error::Map {
                map: COUNTERS,
                detail: e.to_string(),
            })?;
            let last = &mut self.last[counter as usize];
            last.resize(values.len(), 0);
            for (cpu, (value, seen)) in values.iter().zip(last.iter_mut()).enumerate() {
                if *value > *seen {
                    reports.push(LossReport {
                        counter,
                        cpu: cpu as u32,
                        count: *value - *seen,
                        since_ns: self.last_read_ns,
                        until_ns: now,
                    });
                    *seen = *value;
                }
            }
        }
        self.last_read_ns = now;
        Ok(reports)
    }
}
