//! A session under a steady stream of lines from others still serves its own requests at
//! once. The stream is scripted so that the mailbox is never empty when the session polls:
//! every write the session makes brings one more line into its queue, as a busy room would.
//! A session that polls its mailbox before its stream never reads the request while the
//! stream of lines lasts; one that polls the stream first answers within a line or two.

mod common;

use bytes::Bytes;
use chatd::directory::{Audience, Lines};
use chatd::server::Server;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How many lines the others send at most: the test ends even if the request starves.
const FLOOD: usize = 2_000;

/// After this many lines have reached the client, it sends its `ping`.
const PING_AFTER: usize = 3;

const MSG: &[u8] = b"{\"type\":\"msg\",\"from\":\"bob\",\"to\":\"alice\",\"body\":\"x\"}\n";

#[derive(Default)]
struct Script {
    /// What the session wrote, in order.
    written: Vec<u8>,
    /// Lines pushed into alice's queue so far.
    pushed: usize,
    /// What the client sends next, once it is due.
    to_send: Vec<Vec<u8>>,
    ping_sent: bool,
    reader: Option<Waker>,
}

impl Script {
    fn msg_events(&self) -> usize {
        self.written
            .split(|b| *b == b'\n')
            .filter(|l| l.starts_with(b"{\"type\":\"msg\""))
            .count()
    }

    fn pong_written(&self) -> bool {
        self.written
            .split(|b| *b == b'\n')
            .any(|l| l.starts_with(b"{\"type\":\"ok\",\"id\":\"ping\""))
    }
}

/// The client's side, as the session's stream.
struct Scripted {
    script: Arc<Mutex<Script>>,
    server: Arc<Server>,
}

impl AsyncRead for Scripted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = self.script.lock().unwrap();
        if !s.to_send.is_empty() {
            let line = s.to_send.remove(0);
            buf.put_slice(&line);
            return Poll::Ready(Ok(()));
        }
        if s.ping_sent && (s.pong_written() || s.pushed >= FLOOD) {
            // End of the script: the client closes.
            return Poll::Ready(Ok(()));
        }
        s.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.script.lock().unwrap();
        s.written.extend_from_slice(data);
        let logged_in = s.written.starts_with(b"{\"type\":\"ok\"");
        if logged_in && s.pushed < FLOOD && !s.pong_written() {
            // Someone else's line arrives with every write.
            s.pushed += 1;
            let lines = Lines::one(Bytes::from_static(MSG));
            let took = self
                .server
                .directory
                .fan_out(None, Audience::Everyone, &lines);
            assert_eq!(took, [1], "alice's queue took the line");
        }
        if !s.ping_sent && s.msg_events() >= PING_AFTER {
            s.ping_sent = true;
            s.to_send
                .push(b"{\"type\":\"ping\",\"id\":\"ping\"}\n".to_vec());
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn a_request_is_served_while_lines_from_others_keep_arriving() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let script = Arc::new(Mutex::new(Script {
        to_send: vec![b"{\"type\":\"login\",\"from\":\"alice\"}\n".to_vec()],
        ..Script::default()
    }));
    rt.block_on(async {
        let (server, slot) = common::server_and_slot();
        let stream = Scripted {
            script: script.clone(),
            server: server.clone(),
        };
        let peer = "127.0.0.1:9".parse().unwrap();
        chatd::session::run(stream, peer, server, slot).await;
    });
    let s = script.lock().unwrap();
    assert!(s.ping_sent, "the flood of lines reached the client");
    let text = String::from_utf8_lossy(&s.written);
    let pong = text
        .lines()
        .position(|l| l.starts_with("{\"type\":\"ok\",\"id\":\"ping\""))
        .expect("the ping was answered");
    // The login reply, then the lines before the ping; a line or two may be in flight.
    let before = text
        .lines()
        .take(pong)
        .filter(|l| l.contains("\"msg\""))
        .count();
    assert!(
        before <= PING_AFTER + 2,
        "{before} lines from others went out before the answer to a request sent after \
         {PING_AFTER}: the session served its mailbox ahead of its client"
    );
}
