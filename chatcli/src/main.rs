//! chatcli: the chatd client.
//!
//! On a terminal it is an interactive chat ([`repl`]); in a pipe it sends each stdin line as
//! one message ([`pipe`]); with `--listen` it prints what arrives ([`listen`]). `main` only
//! turns outcomes into exit codes (see [`cli`] for the table): a [`fatal::Fatal`] anywhere in
//! the error chain carries its own code, any other error is [`cli::EXIT_FAILED`].

mod cli;
mod conn;
mod fatal;
mod input;
mod listen;
mod pipe;
mod repl;

use clap::Parser as _;
use cli::{Cli, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use conn::{Conn, Login};
use fatal::Fatal;
use std::io::IsTerminal as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("chatcli: {err:#}");
            let code = err
                .chain()
                .find_map(|e| e.downcast_ref::<Fatal>())
                .map_or(EXIT_FAILED, |f| f.code);
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    // rustyline needs a terminal on both sides (its printer fails with ENOTTY otherwise), so
    // the choice is made before any of it is created.
    let interactive = !cli.scripted_by_flags()
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal();
    if interactive {
        return repl::run(cli);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(scripted(cli));
    // tokio's stdin reads on a blocking thread that may sit in read(2) forever (a sender whose
    // pipe is still open when the server goes away); waiting for it would hang the exit.
    rt.shutdown_background();
    result
}

/// The sender and the listener: log in once, do the job, log out.
async fn scripted(cli: Cli) -> anyhow::Result<u8> {
    let Some(user) = cli.user.clone() else {
        return Err(Fatal::new(
            EXIT_USAGE,
            "no user name: pass --user NAME or set CHAT_USER (only a terminal session asks for one)",
        )
        .into());
    };
    // Watch for signals before logging in: a script may signal the listener as soon as it
    // sees it join, and the default action would kill it without a clean logout.
    let signals = if cli.listen {
        Some(listen::Signals::new()?)
    } else {
        None
    };
    let password = cli.password().map_err(|m| Fatal::new(EXIT_USAGE, m))?;
    let mut conn = Conn::connect(&cli.server, std::time::Duration::from_secs(cli.timeout)).await?;
    conn.set_password(password);
    match conn.login(&user).await? {
        Login::Accepted(_) => {}
        Login::Refused { code, message } => {
            return Err(Fatal::login_refused(&user, code, &message).into());
        }
    }
    let code = if cli.listen {
        let opts = listen::Options {
            json: cli.json,
            count: cli.count,
        };
        let signals = signals.expect("installed above for --listen");
        listen::run(&mut conn, &opts, signals).await?;
        EXIT_OK
    } else {
        let opts = pipe::Options {
            to: cli.to.clone(),
            require_delivered: cli.require_delivered,
            max_line_bytes: cli.max_line_bytes,
        };
        let source = match cli.message {
            Some(m) => input::Source::One(Some(m)),
            None => {
                input::Source::Stream(input::Lines::new(tokio::io::stdin(), cli.max_line_bytes))
            }
        };
        let failed = pipe::run(&mut conn, &opts, source).await?;
        if failed > 0 { EXIT_FAILED } else { EXIT_OK }
    };
    conn.logout().await;
    Ok(code)
}
