//! The daemon's configuration: TOML over embedded defaults.
//!
//! A config file sets only what differs from [`DEFAULT`]; the two are
//! merged key by key (tables merge, everything else is replaced) before the
//! result is checked, so every error names the key at fault. The daemon
//! loads it at start and again on SIGHUP; a file that fails here changes
//! nothing.

mod rules;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

pub use rules::{
    AgentRule, Candidate, IdentityRule, KernelKeys, MAX_RULES, RULE_EXE_LEN, Rules, RulesError,
};

use crate::capture;

/// The embedded defaults, comments included: `agent-monitor config default`.
pub const DEFAULT: &str = include_str!("default.toml");

/// Where `daemon` and `install` look for the config unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/agent-monitor/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub evidence: EvidenceConfig,
    pub policy: PolicyConfig,
    pub api: ApiConfig,
    pub alerts: AlertsConfig,
    pub capture: CaptureConfig,
    pub kernel: KernelConfig,
    pub metrics: MetricsConfig,
    pub otel: OtelConfig,
    pub rules: Rules,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    pub dir: PathBuf,
    pub rotate_seconds: u64,
    pub rotate_rows: usize,
    pub signing_key: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiConfig {
    pub socket: PathBuf,
    /// Permission bits of the socket.
    pub mode: u32,
    pub group: Option<Group>,
}

/// A group, by name or by id, as the config gives it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Group {
    Id(u32),
    Name(String),
}

impl Group {
    /// The group's id; a name is looked up in the group database.
    pub fn resolve(&self) -> Result<u32, String> {
        match self {
            Group::Id(gid) => Ok(*gid),
            Group::Name(name) => gid_of(name).ok_or_else(|| format!("no group named {name:?}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    pub stderr: bool,
    pub jsonl: Option<PathBuf>,
    pub webhook: Option<String>,
    #[serde(default)]
    pub webhook_headers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CaptureConfig {
    pub policy: capture::Policy,
    pub key: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    pub ring_mib: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricsConfig {
    /// A loopback address; none: no metrics endpoint.
    pub listen: Option<SocketAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OtelConfig {
    /// The OTLP/HTTP receiver's loopback address; none: no receiver.
    pub listen: Option<SocketAddr>,
    /// How long an agent's undeclared events wait for spans that declare
    /// them after the fact.
    pub grace: std::time::Duration,
}

/// The file's shape, before the checks that need more than serde.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    evidence: EvidenceConfig,
    policy: PolicyConfig,
    api: RawApi,
    alerts: AlertsConfig,
    capture: RawCapture,
    kernel: KernelConfig,
    metrics: RawMetrics,
    otel: RawOtel,
    #[serde(default)]
    agents: Vec<AgentRule>,
    #[serde(default)]
    identity: Vec<IdentityRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    socket: PathBuf,
    mode: String,
    group: Option<Group>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapture {
    policy: String,
    key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOtel {
    listen: String,
    grace: String,
}

impl Config {
    /// The embedded defaults alone.
    pub fn defaults() -> Config {
        Config::parse(DEFAULT, "the embedded defaults").expect("the embedded defaults are valid")
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Checks `text` merged over the defaults; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        // One line: the position and the parser's message, without the
        // multi-line excerpt, so that it reads well in a log and an alert.
        let parse_error = |origin: &str, source: &str, e: toml::de::Error| {
            let line = e
                .span()
                .map(|span| source[..span.start.min(source.len())].matches('\n').count() + 1);
            ConfigError::Parse {
                origin: origin.to_string(),
                message: match line {
                    Some(line) => format!("line {line}: {}", e.message()),
                    None => e.message().to_string(),
                },
            }
        };
        let mut merged: toml::Table = toml::from_str(DEFAULT)
            .map_err(|e| parse_error("the embedded defaults", DEFAULT, e))?;
        let given: toml::Table = toml::from_str(text).map_err(|e| parse_error(origin, text, e))?;
        merge(&mut merged, given);
        // Spans point into the merged table, not the file: no line here.
        let raw = Raw::deserialize(toml::Value::Table(merged)).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.message().to_string(),
        })?;
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        let mode = u32::from_str_radix(raw.api.mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                invalid(
                    "api.mode",
                    format!("{:?} is not an octal mode such as \"0660\"", raw.api.mode),
                )
            })?;
        if mode & 0o002 != 0 {
            return Err(invalid(
                "api.mode",
                "a socket anyone may write to lets any user declare for agents; drop the world bits".into(),
            ));
        }
        let policy = raw
            .capture
            .policy
            .parse::<capture::Policy>()
            .map_err(|e| invalid("capture.policy", e.to_string()))?;
        if !(raw.kernel.ring_mib.is_power_of_two() && raw.kernel.ring_mib <= 1024) {
            return Err(invalid(
                "kernel.ring_mib",
                format!(
                    "must be a power of two up to 1024, not {}",
                    raw.kernel.ring_mib
                ),
            ));
        }
        if raw.evidence.rotate_seconds == 0 || raw.evidence.rotate_rows == 0 {
            return Err(invalid(
                "evidence",
                "rotate_seconds and rotate_rows must be more than 0".into(),
            ));
        }
        for (key, path) in [
            ("evidence.dir", Some(&raw.evidence.dir)),
            ("api.socket", Some(&raw.api.socket)),
            ("capture.key", Some(&raw.capture.key)),
            ("evidence.signing_key", raw.evidence.signing_key.as_ref()),
            ("policy.file", raw.policy.file.as_ref()),
            ("alerts.jsonl", raw.alerts.jsonl.as_ref()),
        ] {
            if let Some(path) = path
                && !path.is_absolute()
            {
                return Err(invalid(
                    key,
                    format!("{} must be an absolute path", path.display()),
                ));
            }
        }
        for header in &raw.alerts.webhook_headers {
            if !header.contains(':') {
                return Err(invalid(
                    "alerts.webhook_headers",
                    format!("{header:?} is not `Name: value`"),
                ));
            }
        }
        if !raw.alerts.webhook_headers.is_empty() && raw.alerts.webhook.is_none() {
            return Err(invalid(
                "alerts.webhook_headers",
                "headers are given but no webhook".into(),
            ));
        }
        let listen = raw
            .metrics
            .listen
            .as_deref()
            .map(|text| {
                let addr: SocketAddr = text.parse().map_err(|_| {
                    invalid(
                        "metrics.listen",
                        format!("{text:?} is not an address such as \"127.0.0.1:9464\""),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(invalid(
                        "metrics.listen",
                        format!(
                            "{addr} is not a loopback address; metrics are served on loopback only"
                        ),
                    ));
                }
                Ok(addr)
            })
            .transpose()?;
        let otel = OtelConfig {
            listen: crate::otlp::parse_listen(&raw.otel.listen)
                .map_err(|m| invalid("otel.listen", m))?,
            grace: crate::otlp::parse_grace(&raw.otel.grace)
                .map_err(|m| invalid("otel.grace", m))?,
        };
        let rules =
            Rules::new(raw.agents, raw.identity).map_err(|e| invalid(e.key(), e.to_string()))?;
        Ok(Config {
            evidence: raw.evidence,
            policy: raw.policy,
            api: ApiConfig {
                socket: raw.api.socket,
                mode,
                group: raw.api.group,
            },
            alerts: raw.alerts,
            capture: CaptureConfig {
                policy,
                key: raw.capture.key,
            },
            kernel: raw.kernel,
            metrics: MetricsConfig { listen },
            otel,
            rules,
        })
    }

    /// The directory of the socket: created by the daemon, and the only
    /// other place it writes besides the evidence.
    pub fn run_dir(&self) -> &Path {
        self.api.socket.parent().unwrap_or(Path::new("/"))
    }
}

/// Lays `given` over `base`: tables merge key by key, any other value
/// replaces the base's.
fn merge(base: &mut toml::Table, given: toml::Table) {
    for (key, value) in given {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(given)) => merge(base, given),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The id of the group named `name`, from the group database.
fn gid_of(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is live and sized as passed; the result points
    // into `group` and `buf`, used only before they go.
    let ret = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut group,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (ret == 0 && !found.is_null()).then_some(group.gr_gid)
}

#[cfg(test)]
mod tests;
