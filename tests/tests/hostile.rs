//! A hostile client must not stall, bloat or fool chatd: each attack replayed with bounded
//! counts against an in-process chatd, checking that it keeps serving everyone else.

use e2e::{Bystander, Client, Server};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Bytes the kernel holds for us to read on `fd` (FIONREAD).
fn unread(fd: &impl AsRawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `n`, which we own.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}

/// An admin client watching events and never reading them used to hold up every shutdown for
/// the whole drain timeout plus 2 s: its write waited outside the stop signal's `select!`.
#[tokio::test]
async fn an_admin_watcher_that_never_reads_does_not_delay_a_shutdown() {
    let mut d = Server::start(&["--drain-timeout", "20s", "--rate", "0"]);
    let mut watcher = tokio::net::UnixStream::connect(d.admin_socket())
        .await
        .unwrap();
    watcher.write_all(b"{\"type\":\"watch\"}\n").await.unwrap();
    // Every bad request is an error event for the watcher. Rounds of them until the socket
    // between chatd and the watcher is full and stays full: chatd is then stuck writing.
    let mut noisy = Client::connect(d.addr()).await;
    let round = "x\n".repeat(2000);
    let (mut last, mut same) = (0, 0);
    for _ in 0..100 {
        noisy.send_raw(round.as_bytes()).await;
        for _ in 0..2000 {
            assert_eq!(noisy.recv().await["code"], "bad_request");
        }
        let now = unread(&watcher);
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same == 3 && now > 16_000 {
            break;
        }
    }
    assert!(
        same == 3,
        "the watcher's socket never filled ({last} bytes)"
    );
    let began = Instant::now();
    d.stop();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the stop took {:?} with a watcher that does not read",
        began.elapsed()
    );
}

/// A client that pipelines requests and never reads the replies used to hold them (about
/// 109 kB a connection) for ever: only a full queue counted as a slow consumer. Its own
/// output staying at the high-water mark for the grace period now does too.
#[tokio::test]
async fn a_client_that_never_reads_its_replies_is_a_slow_consumer() {
    let d = Server::start(&["--slow-consumer-grace", "1s", "--rate", "0"]);
    let mut bob = Client::login(d.addr(), "bob").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // Keep what the kernel buffers for the hog small, so chatd's own buffer fills soon.
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(d.addr()).await.unwrap();
    let (_hog_rx, mut hog_tx) = stream.into_split();
    hog_tx
        .write_all(b"{\"type\":\"login\",\"from\":\"hog\"}\n")
        .await
        .unwrap();
    assert_eq!(bob.recv().await["type"], "join");
    let bystander = Bystander::start(d.addr(), "bystander");
    assert_eq!(bob.recv().await["user"], "bystander");
    // Replies of about 40 bytes each: enough of them to fill every buffer on the way. The
    // writer blocks once chatd stops reading, and is dropped with the test.
    let flood = tokio::spawn(async move {
        let burst = "{\"type\":\"users\"}\n".repeat(10_000);
        for _ in 0..30 {
            if hog_tx.write_all(burst.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let leave = bob.recv().await;
    assert_eq!(
        leave,
        serde_json::json!({"type":"leave","user":"hog","reason":"slow_consumer"})
    );
    d.wait_logged("slow consumer: replies not read for too long, cutting off");
    bob.expect_nothing_pending().await;
    let pings = bystander.stop();
    assert!(
        pings.slowest < Duration::from_millis(100),
        "the bystander waited {:?} for a ping while the hog held its replies",
        pings.slowest
    );
    flood.abort();
}

/// One connection sending `x` in a loop got 1.74 M `bad_request` answers and wrote 158 MB of
/// log in 5 s, stalling every worker on stderr. A refusal now costs a token like a message,
/// past the budget each is a strike, and past the strikes the client is cut off; its error
/// replies are logged a few at a time. A bystander is answered meanwhile.
#[tokio::test]
async fn a_flood_of_garbage_is_cut_off_and_barely_logged() {
    let d = Server::start(&[]);
    let bystander = Bystander::start(d.addr(), "bystander");
    let mut flood = Client::connect(d.addr()).await;
    flood.send_raw("x\n".repeat(20_000).as_bytes()).await;
    let mut refused = 0;
    let bye = loop {
        let v = flood.recv().await;
        if v["type"] != "error" {
            break v;
        }
        assert_eq!(v["code"], "bad_request");
        refused += 1;
    };
    assert_eq!(
        bye,
        serde_json::json!({"type":"bye","reason":"kicked","message":"too many requests refused (rate_limited, bad_request, ...); slow down and reconnect"})
    );
    // The default burst of 200, then 1000 strikes, and what the rate refilled meanwhile.
    assert!(
        (1200..3000).contains(&refused),
        "{refused} refusals before the cut"
    );
    assert!(flood.expect_closed().await.is_empty());
    let pings = bystander.stop();
    assert!(
        pings.slowest < Duration::from_millis(100),
        "the bystander waited {:?} for a ping during the flood",
        pings.slowest
    );
    d.wait_log("still sending after being refused; cutting off");
    let summary = d.wait_logged("not logged one by one");
    assert!(summary.contains("unlogged="), "{summary}");
    let logged = d.log().iter().filter(|l| l.contains("error reply")).count();
    assert_eq!(logged, 5, "error replies logged one by one");
}
