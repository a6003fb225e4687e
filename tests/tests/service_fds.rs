//! Running short of file descriptors, on the real binary under a low `RLIMIT_NOFILE` set in
//! the child before it runs. Accepts used to fail with EMFILE: clients past the limit got
//! silence instead of `server_full`, and the admin socket stopped answering.

use e2e::{Chatd, Client};
use rustix::process::{Resource, Rlimit, setrlimit};
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The descriptor limit (soft and hard) the tests give chatd.
const LIMIT: u64 = 128;

/// Makes `cmd` run with at most `n` file descriptors, soft and hard.
fn limit_fds(cmd: &mut Command, n: u64) {
    let lim = Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    // SAFETY: the closure runs in the forked child before exec and makes one system call
    // (setrlimit) on a value it owns.
    unsafe {
        cmd.pre_exec(move || setrlimit(Resource::Nofile, lim).map_err(std::io::Error::from));
    }
}

/// chatd under [`LIMIT`] descriptors, with the default `max_clients` far above it.
fn chatd_short_of_fds() -> Chatd {
    // All from one address, past the default connections per address.
    Chatd::start_with(
        &["--login-timeout", "1m", "--rate", "0", "--max-per-ip", "0"],
        |c| limit_fds(c, LIMIT),
    )
}

/// Connects and pings: the client if chatd serves it, or the refusal it got before the
/// connection closed.
async fn try_client(d: &Chatd) -> Result<Client, Vec<serde_json::Value>> {
    let mut c = Client::connect(d.addr()).await;
    c.send(r#"{"type":"ping","id":1}"#).await;
    let first = c.recv().await;
    if first == json!({"type":"ok","id":1}) {
        return Ok(c);
    }
    let mut refusal = vec![first];
    refusal.extend(c.expect_closed().await);
    Err(refusal)
}

fn refusal() -> Vec<serde_json::Value> {
    vec![
        json!({"type":"error","code":"server_full","message":"server is full (out of file descriptors); try again later"}),
        json!({"type":"bye","reason":"server_full"}),
    ]
}

#[test]
fn a_limit_below_what_max_clients_needs_is_one_warning_with_both_numbers_and_the_fix() {
    let d = chatd_short_of_fds();
    let line = d.wait_logged("file descriptor limit");
    assert!(
        line.ends_with(
            " WARN file descriptor limit (RLIMIT_NOFILE) is 128 (hard limit 128), below the 10128 that max_clients = 10000 needs (one a client and 128 more); raise LimitNOFILE= in the unit (ulimit -n outside systemd) or lower max_clients; until then clients past the limit get server_full"
        ),
        "{line}"
    );
    // Enough for max_clients (one a client and 128): nothing to say.
    let d = Chatd::start_with(&["--max-clients", "128"], |c| limit_fds(c, 256));
    assert!(
        !d.log().iter().any(|l| l.contains("file descriptor limit")),
        "{:?}",
        d.log()
    );
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_one() {
    let d = Chatd::start_with(&[], |c| {
        let lim = Rlimit {
            current: Some(64),
            maximum: Some(20_000),
        };
        // SAFETY: as in limit_fds.
        unsafe {
            c.pre_exec(move || setrlimit(Resource::Nofile, lim).map_err(std::io::Error::from));
        }
    });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["20000", "20000"],
        "{open_files}"
    );
    d.wait_logged(
        "raised the file descriptor limit (RLIMIT_NOFILE) to its hard limit from=64 to=20000",
    );
    assert!(
        !d.log().iter().any(|l| l.contains(" WARN ")),
        "{:?}",
        d.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_clients_than_descriptors_get_server_full_and_the_admin_channel_still_answers() {
    let d = chatd_short_of_fds();
    // One at a time: chatd serves clients until only its reserve is left, then refuses the
    // rest with a word.
    let mut served = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        match try_client(&d).await {
            Ok(c) => {
                assert_eq!(refused, 0, "a client served after one was refused");
                served.push(c);
            }
            Err(r) => {
                assert_eq!(r, refusal());
                refused += 1;
            }
        }
    }
    // The limit less chatd's own descriptors (about 16) and the reserve (a quarter of 128).
    assert!((64..=96).contains(&served.len()), "{} served", served.len());
    let run = d.chatctl(&["status", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["connections"], served.len(), "{status}");

    // All at once, holding their sockets open: the refusals in flight then use up what the
    // reserve allows them, and the rest are answered and closed at once (or, past the last
    // descriptor, taken on chatd's spare one). Each still gets server_full, and the admin
    // channel answers in the middle of it.
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..150 {
        let addr = d.addr();
        burst.spawn(async move {
            let mut c = Client::connect(addr).await;
            let first = c.recv().await;
            (c, first)
        });
    }
    let socket = d.admin_socket().to_owned();
    let admin = tokio::task::spawn_blocking(move || e2e::chatctl_at(&socket, &["status"]));
    let mut held = Vec::new();
    while let Some(r) = burst.join_next().await {
        let (c, first) = r.unwrap();
        assert_eq!(first, refusal()[0]);
        held.push(c);
    }
    let run = admin.await.unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    drop(held);
    // The clients served all along are still served.
    for c in &mut served {
        c.send(r#"{"type":"ping","id":2}"#).await;
        assert_eq!(c.recv().await, json!({"type":"ok","id":2}));
    }
}
