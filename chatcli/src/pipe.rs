//! The scripted sender: every input line becomes one message, in order, and chatcli exits only
//! once chatd has answered each of them.
//!
//! Up to [`MAX_WINDOW`] messages are in flight at once, matched to their replies by `id`; that
//! is what makes 100 000 lines fast. `rate_limited` and `recipient_busy` mean nothing was
//! delivered, so those lines are sent again rather than lost: sending stops, the replies still
//! in flight are collected, and after a pause (doubling while the server keeps refusing) the
//! refused lines go out again in line order, one at a time. From the first refusal on, the
//! window stays at one for the rest of the run: with a single message in flight a refusal
//! cannot be overtaken, and a server that refuses once will refuse again (its rate, not the
//! round trip, is then what limits throughput). Only lines already in flight when that first
//! refusal came can overtake it, and chatcli says so on stderr when that happens.
//!
//! Reports on stderr come in line order, whatever order the outcomes are known in: a line
//! refused by chatcli itself (too long, not UTF-8) is known at once, one refused by chatd a
//! round trip later. A report waits until every line before it is settled (answered, or
//! reported), and at most [`MAX_WINDOW`] wait: past that, no more input is read until the
//! server's answers free them.

use crate::conn::{Conn, Received};
use crate::fatal::Fatal;
use crate::input::{Content, Numbered, Source};
use anyhow::Context as _;
use proto::ErrorCode;
use proto::message::{ClientRequest, Id, ServerMessage};
use proto::text::{Mode, escape};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio::time::Instant;

/// Most messages in flight at once. Enough to hide the round trip on a LAN; small enough that
/// a refusal costs little.
pub const MAX_WINDOW: usize = 64;

/// First pause after a refusal: about one token of the server's default rate (100/s), doubled.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What the sender was asked to do.
pub struct Options {
    /// A user name, or `*`.
    pub to: String,
    pub require_delivered: bool,
    pub max_line_bytes: usize,
}

/// One line on its way.
struct Item {
    line: u64,
    body: String,
}

struct Sender<'a> {
    conn: &'a mut Conn,
    opts: &'a Options,
    in_flight: VecDeque<(i64, Item)>,
    /// Refused lines waiting to be sent again, in line order.
    retry: VecDeque<Item>,
    /// The server has refused a line: keep one message in flight from now on, so no later
    /// line can overtake a refused one.
    refused_once: bool,
    backoff: Duration,
    /// Set by a refusal: nothing is sent until the flight is answered and this time is past.
    paused_until: Option<Instant>,
    accepted: u64,
    failed: u64,
    /// Reports (failures, warnings) by line, waiting for the lines before them to settle.
    held: BTreeMap<u64, String>,
}

/// Sends everything `input` yields; returns the number of lines that failed.
pub async fn run<R: AsyncRead + Unpin>(
    conn: &mut Conn,
    opts: &Options,
    mut input: Source<R>,
) -> anyhow::Result<u64> {
    let mut s = Sender {
        conn,
        opts,
        in_flight: VecDeque::new(),
        retry: VecDeque::new(),
        refused_once: false,
        backoff: FIRST_BACKOFF,
        paused_until: None,
        accepted: 0,
        failed: 0,
        held: BTreeMap::new(),
    };
    let mut input_done = false;
    loop {
        while s.may_send() {
            if let Some(item) = s.retry.pop_front() {
                s.send(item);
            } else if s.may_report()
                && let Some(l) = input.try_next()
            {
                s.take(l);
            } else {
                break;
            }
            s.release();
        }
        if let Err(e) = s.conn.flush().await {
            let lost = s.conn.lost(Some(&e));
            return Err(s.stopped(lost).into());
        }
        if input_done && s.retry.is_empty() && s.in_flight.is_empty() {
            return Ok(s.failed);
        }
        let wait_pause = s.paused_until.filter(|_| s.in_flight.is_empty());
        tokio::select! {
            biased;
            got = s.conn.recv() => {
                let got = match got {
                    Ok(got) => got,
                    Err(e) => {
                        let lost = s.conn.lost(Some(&e));
                        return Err(s.stopped(lost).into());
                    }
                };
                match got {
                    Some(r) => s.on_server(r)?,
                    None => {
                        let lost = s.conn.lost(None);
                        return Err(s.stopped(lost).into());
                    }
                }
                s.release();
            }
            _ = tokio::time::sleep_until(wait_pause.unwrap_or_else(Instant::now)),
                if wait_pause.is_some() => {
                s.paused_until = None;
            }
            l = input.next(), if !input_done && s.may_send() && s.may_report() && s.retry.is_empty() => {
                match l.context("cannot read stdin")? {
                    Some(l) => s.take(l),
                    None => input_done = true,
                }
                s.release();
            }
        }
    }
}

impl Sender<'_> {
    fn may_send(&self) -> bool {
        self.paused_until.is_none() && self.in_flight.len() < self.window()
    }

    /// Room for one more waiting report: the next input line may be taken.
    fn may_report(&self) -> bool {
        self.held.len() < MAX_WINDOW
    }

    /// Requests allowed in flight: one once the server has refused a line.
    fn window(&self) -> usize {
        if self.refused_once { 1 } else { MAX_WINDOW }
    }

    /// Turns an input line into a message, or reports why it cannot be one.
    fn take(&mut self, l: Numbered) {
        match l.content {
            Content::Text(body) if body.trim().is_empty() => {}
            Content::Text(body) => self.send(Item { line: l.line, body }),
            Content::TooLong => self.fail(
                l.line,
                ErrorCode::TooLarge.as_str(),
                &format!(
                    "longer than {} bytes, not sent (see --max-line-bytes)",
                    self.opts.max_line_bytes
                ),
            ),
            Content::NotUtf8 => self.fail(
                l.line,
                ErrorCode::BadRequest.as_str(),
                "not valid UTF-8, not sent",
            ),
        }
    }

    /// Queues the message, or reports it as `too_large` when its request line would be over
    /// the server's limit: checked on the line as encoded, where a control character takes
    /// six bytes (`\u0001`), not on the input line.
    fn send(&mut self, item: Item) {
        let id = self.conn.next_id();
        let req = ClientRequest::Msg {
            to: self.opts.to.clone(),
            body: item.body.clone(),
            from: None,
            id: Some(Id::Int(id)),
        };
        match self.conn.queue_within(&req, self.opts.max_line_bytes) {
            Ok(()) => self.in_flight.push_back((id, item)),
            Err(len) => self.fail(
                item.line,
                ErrorCode::TooLarge.as_str(),
                &format!(
                    "{len} bytes once encoded as a request, over the limit of {} (see \
                     --max-line-bytes); not sent",
                    self.opts.max_line_bytes
                ),
            ),
        }
    }

    fn fail(&mut self, line: u64, code: &str, why: &str) {
        self.failed += 1;
        // `why` may be the server's words.
        self.report(
            line,
            format!("line {line}: {code}: {}", escape(why, Mode::Line)),
        );
    }

    /// Holds a report on `line` until [`Sender::release`] finds every line before it settled.
    fn report(&mut self, line: u64, text: String) {
        self.held.insert(line, text);
    }

    /// Prints, in line order, the reports no unsettled line comes before.
    fn release(&mut self) {
        let open = self.first_open();
        while let Some(entry) = self.held.first_entry() {
            if open.is_some_and(|o| *entry.key() > o) {
                break;
            }
            eprintln!("chatcli: {}", entry.remove());
        }
    }

    /// The first line still waiting for an answer (in flight or to be sent again).
    fn first_open(&self) -> Option<u64> {
        self.in_flight
            .iter()
            .map(|(_, i)| i.line)
            .chain(self.retry.iter().map(|i| i.line))
            .min()
    }

    /// The request a reply answers: by `id`, or the oldest one when the server could not read
    /// the id (a `too_large` line is skipped unparsed). Replies come in request order.
    fn answered(&mut self, id: Option<&Id>) -> Option<Item> {
        let pos = match id {
            Some(Id::Int(n)) => self.in_flight.iter().position(|(i, _)| i == n)?,
            Some(Id::Str(_)) => return None,
            None if self.in_flight.is_empty() => return None,
            None => 0,
        };
        self.in_flight.remove(pos).map(|(_, item)| item)
    }

    fn on_server(&mut self, r: Received) -> Result<(), Fatal> {
        match r.msg {
            Some(ServerMessage::Ok(ok)) => {
                let Some(item) = self.answered(ok.id.as_ref()) else {
                    return Ok(());
                };
                if ok.delivered == Some(0) && self.opts.require_delivered {
                    self.fail(
                        item.line,
                        "undelivered",
                        "nobody received it (--require-delivered)",
                    );
                } else {
                    self.accepted += 1;
                }
                if let Some(first) = self.retry.front().filter(|r| r.line < item.line) {
                    let text = format!(
                        "warning: line {} was delivered before line {}, which the server \
                         refused and chatcli sends again",
                        item.line, first.line
                    );
                    self.report(item.line, text);
                }
                self.backoff = FIRST_BACKOFF;
            }
            Some(ServerMessage::Error(e)) => {
                let Some(item) = self.answered(e.id.as_ref()) else {
                    return Ok(());
                };
                if matches!(e.code, ErrorCode::RateLimited | ErrorCode::RecipientBusy) {
                    self.refused(item);
                } else {
                    self.fail(item.line, e.code.as_str(), &e.message);
                }
            }
            Some(ServerMessage::Bye { reason, message }) => {
                return Err(self.stopped(Fatal::bye(reason, message.as_deref())));
            }
            // Messages for us, joins and leaves are not the sender's business.
            _ => {}
        }
        Ok(())
    }

    /// Nothing was delivered: queue the line again, in line order, and pause.
    fn refused(&mut self, item: Item) {
        let at = self.retry.partition_point(|r| r.line < item.line);
        self.retry.insert(at, item);
        self.refused_once = true;
        if self.paused_until.is_none() {
            self.paused_until = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Adds to a fatal error which lines did not make it, after the reports still held
    /// (all on lines after the first one not confirmed, which the note names).
    fn stopped(&mut self, f: Fatal) -> Fatal {
        for (_, text) in std::mem::take(&mut self.held) {
            eprintln!("chatcli: {text}");
        }
        match self.first_open() {
            Some(line) => f.with_note(format!(
                "{} accepted; line {line} and the lines after it were not",
                messages(self.accepted)
            )),
            None => f.with_note(format!("{} accepted", messages(self.accepted))),
        }
    }
}

fn messages(n: u64) -> String {
    if n == 1 {
        "1 message".to_owned()
    } else {
        format!("{n} messages")
    }
}
