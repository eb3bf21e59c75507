//! What the daemon builds from its config, at start and again on reload:
//! the policy with the monitor's own files protected, and the alert sinks.

use std::path::{Path, PathBuf};

use crate::{
    alerts::{AlertConfig, Alerter, WebhookConfig},
    config::Config,
    policy::Policy,
};

/// The policy file (or the embedded one) with the monitor's own files
/// made sensitive, its socket baseline, and its own CLI baseline.
pub fn policy(config: &Config, config_path: Option<&Path>) -> Result<Policy, String> {
    let mut policy = match &config.policy.file {
        Some(path) => {
            Policy::load(path).map_err(|e| format!("loading the policy {}: {e}", path.display()))?
        }
        None => Policy::default_policy(),
    };
    for path in protected(config, config_path) {
        policy
            .protect(&path.to_string_lossy())
            .map_err(|e| format!("protecting {}: {e}", path.display()))?;
    }
    policy
        .baseline_monitor(&config.api.socket)
        .map_err(|e| e.to_string())?;
    Ok(policy)
}

/// Files an agent must not write: the evidence, the keys, the config and
/// policy, the alert file and the run directory.
pub fn protected(config: &Config, config_path: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = vec![config.evidence.dir.clone(), config.capture.key.clone()];
    paths.extend(config.evidence.signing_key.iter().cloned());
    paths.extend(config.policy.file.iter().cloned());
    paths.extend(config.alerts.jsonl.iter().cloned());
    paths.extend(config_path.map(|p| std::path::absolute(p).unwrap_or(p.to_path_buf())));
    paths.push(config.run_dir().to_path_buf());
    paths
}

/// The alert sinks the config names.
pub fn alerter(config: &Config) -> Result<Alerter, String> {
    let webhook = config.alerts.webhook.as_ref().map(|url| {
        let mut webhook = WebhookConfig::new(url.clone());
        for header in &config.alerts.webhook_headers {
            if let Some((name, value)) = header.split_once(':') {
                webhook
                    .headers
                    .push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        webhook
    });
    Alerter::from_config(AlertConfig {
        stderr: config.alerts.stderr,
        jsonl: config.alerts.jsonl.clone(),
        webhook,
        ..AlertConfig::default()
    })
    .map_err(|e| format!("setting up the alert sinks: {e}"))
}

/// The keys a reload cannot change without a restart, where `new`
/// differs from `old`.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.evidence != new.evidence {
        keys.push("evidence");
    }
    if old.api != new.api {
        keys.push("api");
    }
    if old.capture != new.capture {
        keys.push("capture");
    }
    if old.kernel != new.kernel {
        keys.push("kernel");
    }
    if old.metrics != new.metrics {
        keys.push("metrics");
    }
    if old.otel != new.otel {
        keys.push("otel");
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monitor_s_own_files_are_protected() {
        let config = Config::parse(
            "[policy]\nfile = \"/etc/am/policy.toml\"\n[alerts]\njsonl = \"/var/log/am.jsonl\"",
            "t",
        )
        .unwrap();
        let paths = protected(&config, Some(Path::new("/etc/am/config.toml")));
        for want in [
            "/var/lib/agent-monitor/evidence",
            "/var/lib/agent-monitor/capture.key",
            "/etc/am/policy.toml",
            "/var/log/am.jsonl",
            "/etc/am/config.toml",
            "/run/agent-monitor",
        ] {
            assert!(paths.contains(&PathBuf::from(want)), "{want} in {paths:?}");
        }
    }

    #[test]
    fn a_missing_policy_file_is_an_error_that_names_it() {
        let config = Config::parse("[policy]\nfile = \"/nonexistent/policy.toml\"", "t").unwrap();
        let err = policy(&config, None).unwrap_err();
        assert!(err.contains("/nonexistent/policy.toml"), "{err}");
    }

    #[test]
    fn only_live_keys_change_without_a_restart() {
        let old = Config::defaults();
        let mut new = Config::parse(
            "[alerts]\nstderr = false\n[[agents]]\nname = \"a\"\nuid = 5",
            "t",
        )
        .unwrap();
        assert!(needs_restart(&old, &new).is_empty());
        new.kernel.ring_mib = 32;
        new.api.mode = 0o600;
        assert_eq!(needs_restart(&old, &new), vec!["api", "kernel"]);
    }
}
