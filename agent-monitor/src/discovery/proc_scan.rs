//! What /proc says about running processes: for adopting the ones that
//! started before the daemon, and for registering a process with its
//! descendants. Every read is best effort: a process can exit at any time.

use std::{collections::HashMap, fs};

/// One running process, as much of it as could be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcFacts {
    pub pid: u32,
    pub ppid: u32,
    /// The real uid, as the kernel's events carry it.
    pub uid: u32,
    pub comm: String,
    /// The executable's resolved path.
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub cgroup: Option<String>,
}

/// Every process's (pid, parent pid), kernel threads left out.
pub fn parents() -> Vec<(u32, u32)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let ppid = stat(pid)?.ppid;
            // Kernel threads: kthreadd and its children have no user memory.
            (pid != 2 && ppid != 2).then_some((pid, ppid))
        })
        .collect()
}

/// `root` and every descendant of it in `parents`, parents before their
/// children.
pub fn tree(root: u32, parents: &[(u32, u32)]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(pid, ppid) in parents {
        if pid != ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = vec![root];
    let mut next = 0;
    while next < out.len() {
        if let Some(kids) = children.get(&out[next]) {
            for kid in kids {
                if !out.contains(kid) {
                    out.push(*kid);
                }
            }
        }
        next += 1;
    }
    out
}

/// Whether `pid` is `ancestor` or descends from it, by the live parent
/// chain.
pub fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    for _ in 0..4096 {
        if current == ancestor {
            return true;
        }
        match stat(current) {
            Some(Stat { ppid, .. }) if ppid != 0 && ppid != current => current = ppid,
            _ => return false,
        }
    }
    false
}

/// What /proc has of `pid`; none once it is gone.
pub fn read(pid: u32) -> Option<ProcFacts> {
    let Stat { comm, ppid, .. } = stat(pid)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())?;
    let link = |name: &str| {
        fs::read_link(format!("/proc/{pid}/{name}"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    };
    let argv = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| split_nul(&bytes))
        .unwrap_or_default();
    Some(ProcFacts {
        pid,
        ppid,
        uid,
        comm,
        exe: link("exe"),
        argv,
        cwd: link("cwd"),
        cgroup: crate::identity::read_cgroup(pid),
    })
}

/// The parent pid and the task name, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The fields of a `/proc/PID/stat` line that discovery and the hooks'
/// walk up the process tree read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The task name (`comm`), at most 15 bytes as the kernel keeps it.
    pub comm: String,
    pub ppid: u32,
    /// When it started, in clock ticks since boot (field 22).
    pub start_ticks: Option<u64>,
}

/// `pid (comm) state ppid …`: the name may hold spaces and parentheses,
/// so it runs from the first `(` to the *last* `)`, and the fields after
/// it are found from there.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace();
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    // Fields 5 to 21, then the start.
    let start_ticks = rest.nth(17).and_then(|f| f.parse().ok());
    Some(Stat {
        comm,
        ppid,
        start_ticks,
    })
}

/// Whether `pid` is still the process that started at `start_ns`
/// (`CLOCK_BOOTTIME` ns, as the kernel's events carry it; 0 when unknown,
/// taken as yes). /proc gives the start in clock ticks, the same boot-time
/// nanoseconds cut to the tick.
pub fn started_at(pid: u32, start_ns: u64) -> bool {
    if start_ns == 0 {
        return true;
    }
    let Some(ticks) = stat(pid).and_then(|s| s.start_ticks) else {
        return false;
    };
    // SAFETY: sysconf has no memory preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    hz > 0 && ticks == start_ns / (1_000_000_000 / hz as u64)
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_at_tells_this_process_from_another_with_its_pid() {
        let me = std::process::id();
        let ticks = stat(me).and_then(|s| s.start_ticks).unwrap();
        // SAFETY: sysconf has no memory preconditions.
        let tick_ns = 1_000_000_000 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert!(started_at(me, ticks * tick_ns + 1));
        assert!(
            !started_at(me, (ticks + 1) * tick_ns),
            "a later start is another process"
        );
        assert!(started_at(me, 0), "unknown is taken as the same");
        assert!(!started_at(5_000_000, 1), "no such pid");
    }

    #[test]
    fn stat_lines_with_awkward_names_parse() {
        assert_eq!(
            parse_stat("42 (a (b) c) S 7 42 42 0 -1"),
            Some(Stat {
                comm: "a (b) c".to_string(),
                ppid: 7,
                start_ticks: None
            })
        );
        assert_eq!(
            parse_stat("4242 (node) S 4100 4242 4100 0 -1 4194560 1 0 0 0\n"),
            Some(Stat {
                comm: "node".to_string(),
                ppid: 4100,
                start_ticks: None
            })
        );
        let full = "4242 (my agent) S 4100 4242 4100 0 -1 4194560 1 0 0 0 5 3 0 0 20 0 1 0 \
                    987654 123 45\n";
        assert_eq!(parse_stat(full).and_then(|s| s.start_ticks), Some(987654));
        assert_eq!(parse_stat("42 (x"), None);
        assert_eq!(parse_stat("77 node S 1"), None);
        assert_eq!(parse_stat("77 (node) S"), None);
        assert_eq!(parse_stat("77 (node) S x"), None);
    }

    #[test]
    fn a_tree_lists_parents_before_children_and_nothing_else() {
        let parents = [(10, 1), (11, 10), (12, 11), (13, 10), (20, 1), (21, 20)];
        assert_eq!(tree(10, &parents), vec![10, 11, 13, 12]);
        assert_eq!(tree(21, &parents), vec![21]);
    }

    #[test]
    fn this_process_reads_as_itself() {
        let me = read(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert_eq!(me.uid, unsafe { libc::getuid() });
        assert!(!me.argv.is_empty());
        assert!(descends_from(std::process::id(), me.ppid));
        assert!(!descends_from(me.ppid, std::process::id()));
        assert!(parents().iter().any(|(pid, _)| *pid == std::process::id()));
    }
}
