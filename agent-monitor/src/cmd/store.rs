//! The evidence store's own commands: `verify`, `recover`, `keygen`.

use std::process::ExitCode;

use agent_monitor::evidence::{
    signing::{self, LinkSigner, LinkVerifier},
    store::recover,
    verify::verify,
};

/// Exit status 0: intact; 1: problems, each named on stdout; 2: the store
/// could not be read.
pub fn verify_command(dir: &std::path::Path, pubkey: Option<&std::path::Path>) -> ExitCode {
    let key = match pubkey.map(LinkVerifier::load).transpose() {
        Ok(key) => key,
        Err(err) => {
            eprintln!("agent-monitor: verify: {err}");
            return ExitCode::from(2);
        }
    };
    let report = verify(dir, key.as_ref());
    if let Ok(report) = &report {
        if report.pending_segments > 0 {
            println!(
                "note: {} journal segment(s) not yet published; `agent-monitor recover {}` publishes them",
                report.pending_segments,
                dir.display()
            );
        }
        match &key {
            Some(key) => println!(
                "signatures checked with key {}: {} of {} entries signed",
                key.key_id(),
                report.signed,
                report.files
            ),
            None if report.signed > 0 => println!(
                "note: {} entries are signed; pass --pubkey to check the signatures",
                report.signed
            ),
            None => {}
        }
    }
    match report {
        Ok(report) if report.intact() => {
            println!("intact: {} files, chain head {}", report.files, report.head);
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for problem in &report.problems {
                println!("{problem}");
            }
            println!(
                "NOT intact: {} problems in {} chained files",
                report.problems.len(),
                report.files
            );
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("agent-monitor: verify: {err}");
            ExitCode::from(2)
        }
    }
}

pub fn recover_command(dir: &std::path::Path, signing_key: Option<&std::path::Path>) -> ExitCode {
    if !dir.is_dir() {
        eprintln!(
            "agent-monitor: recover: {} is not a directory",
            dir.display()
        );
        return ExitCode::from(2);
    }
    let signer = match signing_key.map(LinkSigner::load).transpose() {
        Ok(signer) => signer,
        Err(err) => {
            eprintln!("agent-monitor: recover: {err}");
            return ExitCode::from(2);
        }
    };
    match recover(dir, signer) {
        Ok(recovered) => {
            println!(
                "recovered {} rows from {} journal segment(s) into {} file(s)",
                recovered.published.rows,
                recovered.segments,
                recovered.published.files.len()
            );
            for file in &recovered.published.files {
                println!("  {file}");
            }
            if recovered.published.torn_tails > 0 {
                println!(
                    "{} stream(s) ended inside a batch that was never synced; that batch is not included",
                    recovered.published.torn_tails
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("agent-monitor: recover: {err}");
            ExitCode::from(1)
        }
    }
}

pub fn keygen_command(file: &std::path::Path) -> ExitCode {
    match signing::generate(file) {
        Ok(signer) => {
            println!(
                "private key: {}\npublic key:  {}\nkey id:      {}",
                file.display(),
                signing::public_path(file).display(),
                signer.key_id()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("agent-monitor: keygen: {err}");
            ExitCode::from(1)
        }
    }
}
