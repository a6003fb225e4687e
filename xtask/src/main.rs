//! `cargo xtask assets [DIR]`: man pages and shell completions for the Debian package,
//! generated from the binaries' own clap definitions so they never drift from `--help`.
//!
//! A build.rs cannot do this: it writes into a hashed `OUT_DIR` that cargo-deb cannot name.
//! The CLI definitions are reached without running the binaries: chatd's `Args` is in its
//! library, and chatctl's and chatcli's `cli.rs` depend only on clap and proto, so they are
//! compiled in here as well.

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[allow(dead_code)] // only the clap definition is used here
#[path = "../../chatcli/src/cli.rs"]
mod chatcli_cli;

#[allow(dead_code)]
#[path = "../../chatctl/src/cli.rs"]
mod chatctl_cli;

/// Where the package's metadata (chatd/Cargo.toml) expects the generated files.
const DEFAULT_OUT: &str = "packaging/generated";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("assets") => {
            let out = args
                .get(1)
                .map_or_else(|| PathBuf::from(DEFAULT_OUT), PathBuf::from);
            match assets(&out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xtask: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: cargo xtask assets [DIR]   (default DIR: {DEFAULT_OUT})");
            ExitCode::from(2)
        }
    }
}

/// Each binary with its man section: chatd is a daemon (8), the clients are commands (1).
fn commands() -> Vec<(Command, &'static str)> {
    vec![
        (chatd::config::Args::command(), "8"),
        (chatctl_cli::Cli::command(), "1"),
        (chatcli_cli::Cli::command(), "1"),
    ]
}

fn assets(out: &Path) -> Result<(), String> {
    let man = out.join("man");
    let comp = out.join("completions");
    for d in [&man, &comp] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    for (mut cmd, section) in commands() {
        cmd.build();
        let name = cmd.get_name().to_owned();
        let page = man.join(format!("{name}.{section}"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .section(section)
            .render(&mut buf)
            .map_err(|e| format!("man page of {name}: {e}"))?;
        std::fs::write(&page, buf).map_err(|e| format!("cannot write {}: {e}", page.display()))?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd, &name, &comp)
                .map_err(|e| format!("{shell} completion of {name}: {e}"))?;
        }
    }
    println!("man pages and completions written to {}", out.display());
    Ok(())
}
