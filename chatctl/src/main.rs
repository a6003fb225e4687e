//! chatctl: the admin CLI for a running chatd, over its Unix-socket admin channel.
//!
//! `main` only translates outcomes: `run` does the work and returns an error whose type picks
//! the documented exit code (see `cli::AFTER_HELP` and `docs/ADMIN-PROTOCOL.md`); the error is printed
//! as `chatctl: {err:#}`. A closed stdout (`chatctl watch | head`) is a quiet success.

mod cli;
mod client;
mod output;

use clap::Parser;
use cli::{Cli, Command, EXIT_OK, EXIT_REFUSED};
use client::{Conn, CtlError, RawLine};
use proto::admin::{Request, Response};
use proto::text::{Mode, escape};
use serde::Serialize;
use std::io::{self, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            // The message may quote the daemon: nothing in it may command the terminal.
            eprintln!("chatctl: {}", escape(&format!("{e:#}"), Mode::Line));
            let code = e
                .downcast_ref::<CtlError>()
                .map_or(EXIT_REFUSED, CtlError::exit_code);
            ExitCode::from(code)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let path = client::socket_path(cli.socket)?;
    let mut conn = Conn::connect(&path)?;
    match cli.command {
        Command::Users(o) => {
            let Response::Users { users } = conn.request(&Request::Users)? else {
                return Err(unexpected(&conn));
            };
            if o.json {
                print_json(&users)
            } else {
                print(&output::users(&users))
            }
        }
        Command::Kick { name, reason } => {
            let Response::Kicked { user } = conn.request(&Request::Kick { user: name, reason })?
            else {
                return Err(unexpected(&conn));
            };
            print(&format!("kicked {}\n", escape(&user, Mode::Line)))
        }
        Command::Notice { text } => {
            let body = text.join(" ");
            let Response::NoticeSent { delivered } = conn.request(&Request::Notice { body })?
            else {
                return Err(unexpected(&conn));
            };
            let s = if delivered == 1 { "" } else { "s" };
            print(&format!("notice sent to {delivered} session{s}\n"))
        }
        Command::Stats(o) => {
            let Response::Stats(stats) = conn.request(&Request::Stats)? else {
                return Err(unexpected(&conn));
            };
            if o.json {
                print_json(&stats)
            } else {
                print(&output::stats(&stats))
            }
        }
        Command::Status(o) => {
            let Response::Status(status) = conn.request(&Request::Status)? else {
                return Err(unexpected(&conn));
            };
            if o.json {
                print(&output::json_line(&serde_json::to_string(&status)?))
            } else {
                print(&output::status(&status, &path.display().to_string()))
            }
        }
        Command::Watch(o) => watch(&mut conn, o.json),
    }
}

/// Prints events until the daemon closes the connection (or stdout closes, or Ctrl-C).
fn watch(conn: &mut Conn, json: bool) -> anyhow::Result<()> {
    let Response::Watching = conn.request(&Request::Watch)? else {
        return Err(unexpected(conn));
    };
    conn.wait_forever();
    while let Some(line) = conn.next_raw()? {
        let RawLine::Line(line) = line else {
            // Skipped without being stored; the stream goes on.
            eprintln!(
                "chatctl: skipped a line from chatd longer than {} MiB",
                client::MAX_LINE_BYTES >> 20
            );
            continue;
        };
        let text = match client::parse(conn.path(), &line) {
            Ok(r) if json => output::json_line(&serde_json::to_string(&r)?),
            Ok(Response::Event(e)) => output::event(&e),
            Ok(Response::Lagged { missed }) => output::lagged(missed),
            Ok(_) => continue,
            // A newer chatd's event kind: shown as it came rather than ending the watch.
            Err(e) => output::unknown_event(&line, json).ok_or(e)?,
        };
        print(&text)?;
    }
    Err(CtlError::Unreachable {
        path: conn.path().to_owned(),
        why: "chatd closed the connection (stopped?)".into(),
    }
    .into())
}

/// An answer of the wrong type: a daemon speaking another version of the admin protocol.
fn unexpected(conn: &Conn) -> anyhow::Error {
    CtlError::Unreachable {
        path: conn.path().to_owned(),
        why: "unexpected answer type — is chatctl the same version as chatd?".into(),
    }
    .into()
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    print(&output::json_line(&serde_json::to_string_pretty(v)?))
}
