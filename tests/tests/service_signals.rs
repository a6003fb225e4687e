//! SIGTERM/SIGINT drain and SIGHUP reload, on the real binary.

use e2e::{Chatd, Client};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("chatd.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Alice queues `n` messages for Bob, who reads nothing until the stop has begun.
async fn stop_with_queued_messages(sig: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("chatd.pid");
    let mut d = Chatd::start(&["--pid-file", pid_file.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", d.pid())
    );
    let mut alice = Client::login(d.addr(), "alice").await;
    let mut bob = Client::login(d.addr(), "bob").await;
    assert_eq!(alice.recv().await["type"], "join");
    let n = 50;
    for i in 0..n {
        alice
            .send(&format!(
                r#"{{"type":"msg","to":"bob","body":"m{i}","id":{i}}}"#
            ))
            .await;
        assert_eq!(alice.recv().await["delivered"], 1);
    }
    let began = Instant::now();
    d.signal(sig);
    d.wait_log(&format!("SIG{sig} received: stopping"));
    for i in 0..n {
        let m = bob.recv_no_ts().await;
        assert_eq!(
            m,
            json!({"type":"msg","from":"alice","to":"bob","body":format!("m{i}")})
        );
    }
    assert_eq!(
        bob.expect_closed().await,
        vec![json!({"type":"bye","reason":"shutdown"})]
    );
    let rest = alice.expect_closed().await;
    assert_eq!(
        rest.last(),
        Some(&json!({"type":"bye","reason":"shutdown"}))
    );
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", d.log().join("\n"));
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "drain took {:?}",
        began.elapsed()
    );
    assert!(!pid_file.exists(), "the pid file outlived the daemon");
}

#[tokio::test]
async fn sigterm_flushes_queued_messages_then_says_bye_shutdown_and_exits_0() {
    stop_with_queued_messages("TERM").await;
}

#[tokio::test]
async fn sigint_stops_the_same_way() {
    stop_with_queued_messages("INT").await;
}

/// Alice and Bob, with more queued for Bob than his socket buffers hold; he never reads, so
/// a stop cannot finish draining him. Both clients are returned to keep them connected.
async fn bob_never_reads(d: &Chatd) -> (Client, Client) {
    let mut alice = Client::login(d.addr(), "alice").await;
    let bob = Client::login(d.addr(), "bob").await;
    assert_eq!(alice.recv().await["type"], "join");
    let body = "x".repeat(8000);
    for i in 0..400 {
        alice
            .send(&format!(
                r#"{{"type":"msg","to":"bob","body":"{body}","id":{i}}}"#
            ))
            .await;
        assert_eq!(alice.recv().await["type"], "ok");
    }
    (alice, bob)
}

#[tokio::test]
async fn a_client_that_never_reads_cannot_hold_the_stop_past_the_drain_timeout() {
    let mut d = Chatd::start(&[
        "--drain-timeout",
        "300ms",
        "--queue-len",
        "100000",
        "--rate",
        "0",
    ]);
    let _clients = bob_never_reads(&d).await;
    let began = Instant::now();
    d.signal("TERM");
    assert_eq!(d.wait_exit().code(), Some(0));
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "took {:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn a_second_sigterm_stops_at_once_without_waiting_for_the_drain() {
    // A drain that would take a minute; the harness's deadline for the exit is 10 s.
    let mut d = Chatd::start(&[
        "--drain-timeout",
        "60s",
        "--queue-len",
        "100000",
        "--rate",
        "0",
    ]);
    let _clients = bob_never_reads(&d).await;
    d.signal("TERM");
    d.wait_log("SIGTERM received: stopping");
    d.signal("INT");
    assert_eq!(d.wait_exit().code(), Some(0));
    d.wait_logged("SIGINT received again: not waiting for the drain");
    let line = d.wait_logged("stopping without waiting for the drain");
    // Bob at least (Alice may have finished her own close by then).
    let left: u32 = line.split("left=").nth(1).unwrap()[..1].parse().unwrap();
    assert!(left >= 1, "{line}");
    assert!(
        !d.admin_socket().exists(),
        "the admin socket is removed even so"
    );
}

#[tokio::test]
async fn sighup_applies_new_limits_and_keeps_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "max_clients = 2\n");
    let d = Chatd::start(&["--config", &cfg]);
    let mut alice = Client::login(d.addr(), "alice").await;
    let mut bob = Client::login(d.addr(), "bob").await;
    assert_eq!(alice.recv().await["type"], "join");
    let mut third = Client::connect(d.addr()).await;
    assert_eq!(third.expect_closed().await[0]["code"], "server_full");

    write(dir.path(), "max_clients = 3\nlog_level = \"debug\"\n");
    d.signal("HUP");
    let changed = d.wait_log("setting changed");
    assert!(changed.contains("key=log_level"), "{changed}");
    let changed = d.wait_log("setting changed");
    assert!(changed.contains("key=max_clients from=2 to=3"), "{changed}");
    d.wait_log("configuration reloaded changed=2");

    // Nobody was dropped, and the new limit and level are in force.
    alice.expect_nothing_pending().await;
    bob.expect_nothing_pending().await;
    alice
        .send(r#"{"type":"msg","to":"bob","body":"still here"}"#)
        .await;
    assert_eq!(alice.recv().await["delivered"], 1);
    assert_eq!(bob.recv_no_ts().await["body"], "still here");
    // chatd resizes the connection limit in a task of its own, after it has logged the
    // summary; this debug line, before or after the summary, says it is done.
    d.wait_logged("connection limit applied max_clients=3");
    let _carol = Client::login(d.addr(), "carol").await;
    d.wait_logged(" DEBUG ");
}

#[tokio::test]
async fn after_a_reload_older_sessions_report_the_queue_and_rate_they_still_have() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "queue_len = 100\nrate = 1.0\nrate_burst = 1\n");
    let d = Chatd::start(&["--config", &cfg]);
    let mut alice = Client::login(d.addr(), "alice").await;
    // At debug level, so that chatd says when the new queue length is in force: it applies
    // it in a task of its own, after it has logged "configuration reloaded".
    write(
        dir.path(),
        "queue_len = 50\nrate = 7.0\nrate_burst = 1\nlog_level = \"debug\"\n",
    );
    d.signal("HUP");
    d.wait_log("configuration reloaded");
    d.wait_logged("connection limit applied");
    let _bob = Client::login(d.addr(), "bob").await;
    let run = d.chatctl(&["users", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let users: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(users[0]["user"], "alice");
    assert_eq!(users[0]["queue_max"], 100);
    assert_eq!(users[1]["queue_max"], 50);
    for id in 1..=2 {
        alice
            .send(&format!(
                r#"{{"type":"msg","to":"bob","body":"x","id":{id}}}"#
            ))
            .await;
    }
    let mut second = alice.recv().await;
    while second["id"] != 2 {
        second = alice.recv().await;
    }
    assert_eq!(second["code"], "rate_limited");
    let message = second["message"].as_str().unwrap();
    assert!(
        message.starts_with("over the limit of 1 messages per second"),
        "{message}"
    );
}

/// A file that does not load, a value out of range or a log directory where no file can be
/// made is refused whole. The values out of range here each used to crash a part of chatd:
/// the connection semaphore's task (after which a later reload was logged but never
/// applied), the accept loop, a session's decoder or its login timer.
#[tokio::test]
async fn sighup_with_a_broken_file_or_a_value_out_of_range_keeps_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "max_clients = 1\n");
    let d = Chatd::start(&["--config", &cfg]);
    let mut alice = Client::login(d.addr(), "alice").await;
    for (text, error) in [
        (
            "max_clients = 5\nmax_client = 6\n",
            "unknown key \"max_client\" at line 2 — did you mean \"max_clients\"?",
        ),
        (
            "max_clients = 0\n",
            "max_clients: 0 is out of range; use 1 to 1000000",
        ),
        (
            "max_clients = 18446744073709551615\n",
            "max_clients: 18446744073709551615 is out of range; use 1 to 1000000",
        ),
        (
            "max_clients = 1\nkeepalive_interval = \"100000000years\"\nkeepalive_retries = 100\n",
            "keepalive_interval: 100000000years is out of range; use 1s to 10m",
        ),
        (
            "max_clients = 1\nmax_line_bytes = 18446744073709551615\n",
            "max_line_bytes: 18446744073709551615 is out of range; use 128 to 16777216",
        ),
        (
            "max_clients = 1\nlogin_timeout = \"500000000000years\"\n",
            "login_timeout: 500000000000years is out of range; use 1ms to 1h",
        ),
    ]
    .map(|(text, error)| (text, format!("{cfg}: {error}")))
    .into_iter()
    .chain([(
        // Passes the file's checks (/proc is a directory); fails when logging is rebuilt.
        "max_clients = 1\nlog_dir = \"/proc/chatd-e2e-logs\"\n",
        "log_dir: cannot write log files in /proc/chatd-e2e-logs: No such file or directory (os error 2); create it writable by chatd's user".to_owned(),
    )]) {
        write(dir.path(), text);
        d.signal("HUP");
        let line = d.wait_log("reload failed");
        assert!(
            line.ends_with(&format!(
                "reload failed, keeping the running configuration: {error}"
            )),
            "{line}"
        );
    }
    // Still the old limit of one, and Alice was never disturbed.
    let mut second = Client::connect(d.addr()).await;
    assert_eq!(second.expect_closed().await[0]["code"], "server_full");
    alice.expect_nothing_pending().await;
    write(dir.path(), "max_clients = 2\nlog_level = \"debug\"\n");
    d.signal("HUP");
    d.wait_log("configuration reloaded changed=2");
    d.wait_logged("connection limit applied max_clients=2");
    let _bob = Client::login(d.addr(), "bob").await;
    assert_eq!(alice.recv().await["type"], "join");
}

#[tokio::test]
async fn sighup_names_settings_that_need_a_restart_and_applies_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // No --listen flag this time, so the file's listen is the one in force.
    let cfg = write(dir.path(), "listen = [\"127.0.0.1:0\"]\nrate = 50\n");
    let mut d = Chatd::spawn_with(&["--config", &cfg], |_| {});
    d.wait_listening(1);
    let mut c = Client::login(d.addr(), "x").await;
    write(dir.path(), "listen = [\"127.0.0.1:1\"]\n");
    d.signal("HUP");
    d.wait_log("listen addresses changed; restart chatd to apply");
    let line = d.wait_log("setting changed");
    assert!(line.contains("key=rate from=50.0 to=100.0"), "{line}");
    d.wait_log("configuration reloaded changed=1");
    c.expect_nothing_pending().await;
}

/// After a reload raises `max_line_bytes` (and `queue_bytes` with it), a new connection may
/// send a message longer than the whole queue of a user who connected before: it can never
/// be queued, and the answer says so instead of "try again later".
#[tokio::test]
async fn a_message_longer_than_the_recipients_whole_queue_is_refused_as_never_fitting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "max_line_bytes = 4096\nqueue_bytes = 8192\n");
    let d = Chatd::start(&["--config", &cfg, "--rate", "0"]);
    let mut bob = Client::login(d.addr(), "bob").await;
    write(dir.path(), "max_line_bytes = 20000\nqueue_bytes = 20480\n");
    d.signal("HUP");
    d.wait_log("configuration reloaded");
    let mut alice = Client::login(d.addr(), "alice").await;
    assert_eq!(bob.recv().await["type"], "join");
    let msg =
        |body: &str, id: u32| format!(r#"{{"type":"msg","to":"bob","body":"{body}","id":{id}}}"#);
    // Over bob's 8 192 bytes once it is an event (the body alone is 8 200).
    alice.send(&msg(&"x".repeat(8200), 1)).await;
    assert_eq!(
        alice.recv().await,
        json!({"type":"error","id":1,"code":"recipient_busy","message":"bob's queue holds at most 8192 bytes and this message takes more; it was not queued and never can be: send a shorter one"})
    );
    // Under it, the same sender and recipient: delivered.
    alice.send(&msg(&"x".repeat(8000), 2)).await;
    assert_eq!(
        alice.recv().await,
        json!({"type":"ok","id":2,"delivered":1})
    );
    let got = bob.recv().await;
    assert_eq!(got["body"].as_str().unwrap().len(), 8000);
}
