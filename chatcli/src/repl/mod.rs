//! The interactive chat: log in (asking for a name until the server takes one), then relay
//! between the prompt and the server until `/quit`, Ctrl-D, or the server ends the session.
//!
//! The session runs on a current-thread tokio runtime on the main thread: one `select!`
//! between lines typed (from the [`editor`] thread) and lines from chatd. A plain thread with
//! a blocking socket would need a second thread to read the socket and a third channel to
//! merge the two; `select!` is that merge, and `Conn` is shared with the scripted modes.

mod command;
mod editor;
mod paste;
mod render;
mod terminal;

use crate::cli::{Cli, EXIT_OK};
use crate::conn::{Conn, Login, Received};
use crate::fatal::Fatal;
use command::{COMMANDS, Command};
use editor::{EditorThread, FromEditor, Names, Printer};
use proto::message::{ClientRequest, Id, OkReply, ServerMessage};
use proto::text::{Mode, escape};
use proto::{ErrorCode, NameKey};
use render::Render;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use terminal::TerminalGuard;

/// Runs the interactive mode to its end; the terminal is left as it was found.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    // Before rustyline is set up: it must read from the pty this puts in front of it.
    let terminal = TerminalGuard::take_over();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(session(cli));
    if result.is_err() {
        // The editor thread may be inside readline, with bracketed paste on.
        terminal.restore();
        eprintln!();
    }
    result
}

/// What a request we sent was about, to word its reply.
enum Pending {
    Msg { to: String },
    Users,
}

struct Session {
    conn: Conn,
    printer: Printer,
    render: Render,
    me: String,
    /// `None` is everyone.
    target: Option<String>,
    names: Names,
    pending: HashMap<i64, Pending>,
    /// The server's line limit (`--max-line-bytes`), checked on each request as encoded.
    max_line_bytes: usize,
}

async fn session(cli: Cli) -> anyhow::Result<u8> {
    let password = cli
        .password()
        .map_err(|m| Fatal::new(crate::EXIT_USAGE, m))?;
    let mut conn = Conn::connect(&cli.server, std::time::Duration::from_secs(cli.timeout)).await?;
    conn.set_password(password);
    let names: Names = Arc::new(Mutex::new(Vec::new()));
    let history = cli.history.clone().or_else(editor::default_history);
    let (mut ed, printer) = editor::spawn(history, names.clone())?;
    let render = Render::for_stdout();

    let Some(ok) = log_in(&mut conn, &mut ed, &printer, &render, cli.user.clone()).await? else {
        ed.stop();
        return Ok(EXIT_OK);
    };
    let me = ok.user.clone().unwrap_or_default();
    let mut s = Session {
        conn,
        printer,
        render,
        me,
        target: (cli.to != "*").then(|| cli.to.clone()),
        names,
        pending: HashMap::new(),
        max_line_bytes: cli.max_line_bytes,
    };
    s.set_users(ok.users.as_deref().unwrap_or_default());
    s.welcome(&ok);

    ed.prompt(&s.prompt(), true);
    loop {
        tokio::select! {
            typed = ed.lines.recv() => {
                let line = match typed {
                    Some(FromEditor::Line(l)) => l,
                    Some(FromEditor::Eof) | None => break,
                };
                if !s.on_line(&line).await? {
                    break;
                }
                ed.prompt(&s.prompt(), true);
            }
            got = s.conn.recv() => match got {
                Ok(Some(r)) => s.on_server(r)?,
                Ok(None) => return Err(s.conn.lost(None).into()),
                Err(e) => return Err(s.conn.lost(Some(&e)).into()),
            }
        }
    }
    s.conn.logout().await;
    ed.stop();
    Ok(EXIT_OK)
}

/// Logs in as `user`, or as names typed at the `username:` prompt, until the server accepts
/// one. `None` when the user gave up (Ctrl-D).
async fn log_in(
    conn: &mut Conn,
    ed: &mut EditorThread,
    printer: &Printer,
    render: &Render,
    mut user: Option<String>,
) -> anyhow::Result<Option<OkReply>> {
    loop {
        let name = match user.take() {
            Some(n) => n,
            None => {
                ed.prompt("username: ", false);
                match ed.lines.recv().await {
                    Some(FromEditor::Line(l)) => l.trim().to_owned(),
                    Some(FromEditor::Eof) | None => return Ok(None),
                }
            }
        };
        if name.is_empty() {
            continue;
        }
        match conn.login(&name).await? {
            Login::Accepted(ok) => return Ok(Some(ok)),
            Login::Refused {
                code: ErrorCode::NameTaken | ErrorCode::InvalidName,
                message,
            } => printer.print(render.error(&format!("{message} — try another name"))),
            Login::Refused { code, message } => {
                return Err(Fatal::login_refused(&name, code, &message).into());
            }
        }
    }
}

impl Session {
    fn prompt(&self) -> String {
        // Both names came from the server.
        let me = escape(&self.me, Mode::Line);
        match &self.target {
            Some(t) => format!("{me}→{}> ", escape(t, Mode::Line)),
            None => format!("{me}> "),
        }
    }

    fn say(&self, line: String) {
        self.printer.print(line);
    }

    fn welcome(&self, ok: &OkReply) {
        let server = ok.server.as_deref().unwrap_or("chatd");
        let others = self.names.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let who = if others.is_empty() {
            "nobody else is here yet".to_owned()
        } else {
            format!("also here: {}", others.join(", "))
        };
        self.say(self.render.info(&format!(
            "logged in to {server} at {} as {}; {who}. /help lists the commands",
            self.conn.addr(),
            self.me
        )));
    }

    fn set_users(&self, users: &[String]) {
        let me = NameKey::new(&self.me);
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        *names = users
            .iter()
            .filter(|u| me.is_none_or(|me| !me.is(u)))
            .cloned()
            .collect();
        names.sort();
    }

    fn knows(&self, name: &str) -> Option<String> {
        let key = NameKey::new(name)?;
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.iter().find(|n| key.is(n)).cloned()
    }

    /// Acts on one typed line; `false` ends the session.
    async fn on_line(&mut self, line: &str) -> anyhow::Result<bool> {
        match command::parse(line) {
            Command::Empty => {}
            Command::Say(body) => {
                let to = self.target.clone().unwrap_or_else(|| "*".to_owned());
                self.send(to, body)
            }
            Command::Private { to, body } => self.send(to.to_owned(), body),
            Command::To(name) => match self.knows(name) {
                Some(n) => self.target = Some(n),
                None => self.say(
                    self.render
                        .error(&format!("{name} is not logged in; /users lists who is")),
                ),
            },
            Command::All => self.target = None,
            Command::Users => {
                let id = self.conn.next_id();
                self.conn.queue(&ClientRequest::Users {
                    id: Some(Id::Int(id)),
                });
                self.pending.insert(id, Pending::Users);
            }
            Command::Help => {
                let lines: Vec<&str> = COMMANDS.iter().map(|(_, h)| *h).collect();
                self.say(self.render.info(&format!(
                    "commands:\n  {}\n  @NAME text    one private message to NAME\n  \
                     anything else goes to the current target (shown in the prompt)",
                    lines.join("\n  ")
                )));
            }
            Command::Quit => return Ok(false),
            Command::Wrong(why) => self.say(self.render.error(&why)),
        }
        if let Err(e) = self.conn.flush().await {
            return Err(self.conn.lost(Some(&e)).into());
        }
        Ok(true)
    }

    fn send(&mut self, to: String, body: &str) {
        let id = self.conn.next_id();
        let req = ClientRequest::Msg {
            to: to.clone(),
            body: body.to_owned(),
            from: None,
            id: Some(Id::Int(id)),
        };
        match self.conn.queue_within(&req, self.max_line_bytes) {
            Ok(()) => {
                self.pending.insert(id, Pending::Msg { to });
            }
            Err(len) => self.say(self.render.error(&format!(
                "not sent: the message is {len} bytes once encoded, more than the server takes \
                 ({}; see --max-line-bytes)",
                self.max_line_bytes
            ))),
        }
    }

    fn on_server(&mut self, r: Received) -> Result<(), Fatal> {
        let Some(msg) = r.msg else { return Ok(()) };
        match msg {
            ServerMessage::Msg(m) => self.say(self.render.msg(&m)),
            ServerMessage::Join { user } => {
                {
                    let key = NameKey::new(&user);
                    let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
                    if !names.iter().any(|n| key.is_some_and(|k| k.is(n))) {
                        names.push(user.clone());
                        names.sort();
                    }
                }
                self.say(self.render.join(&user));
            }
            ServerMessage::Leave { user, reason } => {
                let key = NameKey::new(&user);
                self.names
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|n| key.is_none_or(|k| !k.is(n)));
                self.say(self.render.leave(&user, reason));
            }
            ServerMessage::Notice { body, ts } => self.say(self.render.notice(&body, ts)),
            ServerMessage::Bye { reason, message } => {
                return Err(Fatal::bye(reason, message.as_deref()));
            }
            ServerMessage::Ok(ok) => self.on_ok(ok),
            ServerMessage::Error(e) => {
                let pending = match &e.id {
                    Some(Id::Int(n)) => self.pending.remove(n),
                    _ => None,
                };
                let to = match &pending {
                    Some(Pending::Msg { to }) => to.as_str(),
                    _ => "",
                };
                self.say(self.render.error(&refusal(e.code, to, &e.message)));
            }
        }
        Ok(())
    }

    fn on_ok(&mut self, ok: OkReply) {
        let pending = match &ok.id {
            Some(Id::Int(n)) => self.pending.remove(n),
            _ => None,
        };
        match pending {
            Some(Pending::Users) => {
                let users = ok.users.unwrap_or_default();
                self.set_users(&users);
                self.say(self.render.info(&format!(
                    "logged in ({}): {}",
                    users.len(),
                    users.join(", ")
                )));
            }
            Some(Pending::Msg { to }) if to == "*" && ok.delivered == Some(0) => {
                self.say(
                    self.render
                        .info("nobody else is logged in: no one got that"),
                );
            }
            _ => {}
        }
    }
}

/// An error reply in plain words.
fn refusal(code: ErrorCode, to: &str, message: &str) -> String {
    match code {
        ErrorCode::UnknownUser => format!("not sent: {to} is not logged in"),
        ErrorCode::RateLimited => {
            "not sent: you are sending too fast; wait a moment and send it again".to_owned()
        }
        ErrorCode::RecipientBusy => {
            format!("not sent: {to} is not keeping up with messages; try again later")
        }
        ErrorCode::TooLarge => "not sent: the message is too long for the server".to_owned(),
        _ => format!("the server said no: {message} ({code})"),
    }
}
