//! The terminal side of the REPL: rustyline on a thread of its own, a printer thread, and the
//! completion of commands and user names.
//!
//! `readline` blocks, so it cannot live on the async side. The two sides work in lockstep: the
//! session sends a [`ToEditor::Prompt`], the editor reads one line and sends it back, then
//! waits for the next prompt. That lets the session change the prompt (`/to`), swap the login
//! prompt for the chat prompt only once the server said yes, and decide what is history.
//! Ctrl-C is handled here alone: it clears the line and asks again with the same prompt.
//!
//! Output that arrives while a line is being typed goes through rustyline's external printer,
//! which redraws the half-typed line below it. `ExternalPrinter::print` blocks, so it has its
//! own thread too, fed by a channel the session never waits on.

use anyhow::Context as _;
use proto::NameKey;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Context, Editor, ExternalPrinter as _, Helper};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// Logged-in users other than us, sorted, shared with the completer.
pub type Names = Arc<Mutex<Vec<String>>>;

pub enum ToEditor {
    /// Read one line with this prompt; `history` says whether it is worth remembering.
    Prompt { prompt: String, history: bool },
    /// Leave the thread (saving nothing more).
    Stop,
}

#[derive(Debug)]
pub enum FromEditor {
    Line(String),
    /// Ctrl-D on an empty line, or the terminal went away.
    Eof,
}

/// The running editor thread and a way to talk to it.
pub struct EditorThread {
    pub ctl: mpsc::Sender<ToEditor>,
    pub lines: UnboundedReceiver<FromEditor>,
    thread: Option<JoinHandle<()>>,
}

impl EditorThread {
    pub fn prompt(&self, prompt: &str, history: bool) {
        // A send fails only once the editor thread is gone; `lines` then reports the end.
        let _ = self.ctl.send(ToEditor::Prompt {
            prompt: prompt.to_owned(),
            history,
        });
    }

    /// Stops the thread; it is idle (between lines) whenever the session calls this.
    pub fn stop(mut self) {
        let _ = self.ctl.send(ToEditor::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Prints above the prompt without blocking the caller.
#[derive(Clone)]
pub struct Printer {
    tx: mpsc::Sender<String>,
}

impl Printer {
    pub fn print(&self, line: String) {
        // If the printer thread is gone the process is ending; the line has nowhere to go.
        let _ = self.tx.send(line);
    }
}

/// Starts the editor and printer threads.
pub fn spawn(history: Option<PathBuf>, names: Names) -> anyhow::Result<(EditorThread, Printer)> {
    let config = Config::builder().auto_add_history(false).build();
    let mut editor: Editor<Completion, FileHistory> =
        Editor::with_config(config).context("cannot set up the terminal")?;
    editor.set_helper(Some(Completion { names }));
    if let Some(path) = &history {
        // A first run has no history yet; any other problem only costs the old history.
        let _ = editor.load_history(path);
    }
    let mut external = editor
        .create_external_printer()
        .context("cannot set up the terminal printer")?;
    let (print_tx, print_rx) = mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("printer".into())
        .spawn(move || {
            for mut line in print_rx {
                // Between two prompts rustyline writes the text as is, so end it ourselves.
                if !line.ends_with('\n') {
                    line.push('\n');
                }
                if external.print(line.clone()).is_err() {
                    eprint!("{line}");
                }
            }
        })
        .context("cannot start the printer thread")?;

    let (ctl_tx, ctl_rx) = mpsc::channel();
    let (line_tx, line_rx) = unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("editor".into())
        .spawn(move || edit_loop(editor, history, ctl_rx, line_tx))
        .context("cannot start the editor thread")?;
    Ok((
        EditorThread {
            ctl: ctl_tx,
            lines: line_rx,
            thread: Some(thread),
        },
        Printer { tx: print_tx },
    ))
}

fn edit_loop(
    mut editor: Editor<Completion, FileHistory>,
    history: Option<PathBuf>,
    ctl: mpsc::Receiver<ToEditor>,
    lines: UnboundedSender<FromEditor>,
) {
    while let Ok(ToEditor::Prompt {
        prompt,
        history: keep,
    }) = ctl.recv()
    {
        let got = loop {
            match editor.readline(&prompt) {
                // Ctrl-C: the line is dropped, the prompt comes back.
                Err(ReadlineError::Interrupted) => continue,
                other => break other,
            }
        };
        let out = match got {
            Ok(line) => {
                // Leaving is not worth recalling: Up after a restart should bring back the
                // last thing said, not /quit.
                if keep && !line.trim().is_empty() && line.trim() != "/quit" {
                    remember(&mut editor, history.as_ref(), &line);
                }
                FromEditor::Line(line)
            }
            Err(_) => FromEditor::Eof,
        };
        if lines.send(out).is_err() {
            break;
        }
    }
}

/// Adds a line to the history and appends it to the file at once, so a kick or a crash keeps
/// what was typed so far.
fn remember(editor: &mut Editor<Completion, FileHistory>, path: Option<&PathBuf>, line: &str) {
    if !matches!(editor.add_history_entry(line), Ok(true)) {
        return;
    }
    if let Some(path) = path {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.append_history(path);
    }
}

/// The default history file: history is state, so `$XDG_STATE_HOME/chatcli/history`, with the
/// local data directory where a platform has no state directory.
pub fn default_history() -> Option<PathBuf> {
    let base = dirs::state_dir().or_else(dirs::data_local_dir)?;
    Some(base.join("chatcli").join("history"))
}

/// Tab completion: commands after `/`, user names after `/to ` and `@`.
pub struct Completion {
    names: Names,
}

impl Completion {
    fn names_starting(&self, prefix: &str, suffix: &str) -> Vec<String> {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names
            .iter()
            .filter(|n| NameKey::new(n).is_some_and(|k| k.starts_with(prefix)))
            .map(|n| format!("{n}{suffix}"))
            .collect()
    }

    /// `(start, candidates)` for the text before the cursor.
    pub fn candidates(&self, before: &str) -> (usize, Vec<String>) {
        if let Some(partial) = before.strip_prefix("/to ") {
            if !partial.contains(char::is_whitespace) {
                return (4, self.names_starting(partial, ""));
            }
        } else if let Some(partial) = before.strip_prefix('/') {
            if !partial.contains(char::is_whitespace) {
                let cmds = super::command::COMMANDS
                    .iter()
                    .filter(|(c, _)| c[1..].starts_with(partial))
                    .map(|(c, _)| {
                        let space = if *c == "/to" { " " } else { "" };
                        format!("{c}{space}")
                    })
                    .collect();
                return (0, cmds);
            }
        } else if let Some(partial) = before.strip_prefix('@')
            && !partial.contains(char::is_whitespace)
        {
            return (1, self.names_starting(partial, " "));
        }
        (before.len(), Vec::new())
    }
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.candidates(&line[..pos]))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Helper for Completion {}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(names: &[&str]) -> Completion {
        Completion {
            names: Arc::new(Mutex::new(names.iter().map(|s| s.to_string()).collect())),
        }
    }

    #[test]
    fn commands_complete_after_a_slash() {
        let c = completion(&[]);
        assert_eq!(c.candidates("/u"), (0, vec!["/users".to_owned()]));
        assert_eq!(c.candidates("/t"), (0, vec!["/to ".to_owned()]));
        assert_eq!(c.candidates("/").1.len(), 5);
        assert!(c.candidates("/x").1.is_empty());
    }

    #[test]
    fn names_complete_after_to_and_at_ignoring_case() {
        let c = completion(&["Bob", "bobby", "carol"]);
        assert_eq!(
            c.candidates("/to b"),
            (4, vec!["Bob".to_owned(), "bobby".to_owned()])
        );
        assert_eq!(c.candidates("@CA"), (1, vec!["carol ".to_owned()]));
        assert!(c.candidates("@carol hi").1.is_empty());
        assert!(c.candidates("hello b").1.is_empty());
    }
}
