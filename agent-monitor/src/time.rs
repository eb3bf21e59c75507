//! Kernel timestamps (`CLOCK_BOOTTIME`) to wall-clock RFC 3339.

/// Converts boot-clock nanoseconds to wall-clock nanoseconds since the Unix
/// epoch, with the offset between the two clocks sampled once at start.
/// Sampling once keeps timestamps monotonic within a run even if the wall
/// clock is stepped; the cost is that a step during the run is not followed.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    offset_ns: i128,
}

impl WallClock {
    pub fn sample() -> WallClock {
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        let real = clock_ns(libc::CLOCK_REALTIME);
        WallClock {
            offset_ns: real - boot,
        }
    }

    /// A clock with a fixed offset, for tests.
    pub fn with_offset(offset_ns: i128) -> WallClock {
        WallClock { offset_ns }
    }

    pub fn wall_ns(self, boot_ns: u64) -> i128 {
        i128::from(boot_ns) + self.offset_ns
    }

    /// Boot-clock nanoseconds now.
    pub fn boot_now_ns() -> u64 {
        clock_ns(libc::CLOCK_BOOTTIME) as u64
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; both clocks exist on every kernel
    // this program loads on.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 in UTC with nine
/// fractional digits, e.g. `2026-11-26T22:05:26.123456789Z`.
pub fn rfc3339(epoch_ns: i128) -> String {
    let secs = epoch_ns.div_euclid(1_000_000_000);
    let nanos = epoch_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01, using the
/// era decomposition (400-year cycles of 146,097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(
            rfc3339(1_795_730_726_123_456_789),
            "2026-11-26T22:05:26.123456789Z"
        );
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn boot_to_wall_applies_the_offset() {
        let clock = WallClock::with_offset(1_000);
        assert_eq!(clock.wall_ns(5), 1_005);
    }
}
