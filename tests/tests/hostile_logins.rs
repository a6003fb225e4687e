//! Logins counted per source address: a password guesser is slowed, then refused, and only
//! it waits; a client reconnecting in a loop is held to the login rate.

use e2e::{Client, Server};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A server whose logins need the password `sesame`, and the file holding it.
fn with_password(flags: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("password");
    std::fs::write(&path, "sesame\n").unwrap();
    let all = [&["--password-file", path.to_str().unwrap()], flags].concat();
    (Server::start(&all), dir)
}

fn login(name: &str, password: &str, id: usize) -> String {
    format!(r#"{{"type":"login","from":"{name}","password":"{password}","id":{id}}}"#)
}

async fn logged_in(d: &Server, name: &str) -> Client {
    let mut c = Client::connect(d.addr()).await;
    c.send(&login(name, "sesame", 0)).await;
    assert_eq!(c.recv().await["type"], "ok");
    c
}

/// The password used to be guessable at 340 000 guesses a second, pipelined on one
/// connection. Now the first 5 failures from an address are answered at once, the next 5
/// after 125 ms, 250 ms, 500 ms, 1 s and 2 s, and then every login from that address is
/// refused, the right password included, while everyone else is served without delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_guesser_is_slowed_then_refused_and_only_it_waits() {
    let (d, _pw) = with_password(&[]);
    let mut bystander = logged_in(&d, "bystander").await;
    let mut guesser = Client::connect(d.addr()).await;
    let guesses: String = (1..=12)
        .map(|i| login("guesser", &format!("guess{i}"), i) + "\n")
        .collect();
    let began = Instant::now();
    guesser.send_raw(guesses.as_bytes()).await;
    let mut at = Vec::new();
    for i in 1..=10 {
        if i == 10 {
            // The last delayed answer takes 2 s: the bystander is served meanwhile.
            let asked = Instant::now();
            bystander.expect_nothing_pending().await;
            assert!(asked.elapsed() < Duration::from_millis(100));
        }
        let v = guesser.recv().await;
        assert_eq!(
            (v["id"].as_u64(), v["code"].as_str()),
            (Some(i), Some("auth_failed"))
        );
        at.push(began.elapsed());
    }
    assert!(
        at[4] < Duration::from_millis(125),
        "the first 5 wait for nothing: {at:?}"
    );
    // Each delay starts once the answer before it is out, so answer i comes no sooner than
    // the sum of the delays up to it. (Measured as gaps between arrivals, a late read of one
    // answer on a loaded machine made the next gap look short.)
    let mut due = Duration::ZERO;
    for (i, delay) in [(5, 125), (6, 250), (7, 500), (8, 1000), (9, 2000)] {
        due += Duration::from_millis(delay);
        assert!(
            at[i] >= due,
            "answer {} came {:?} after the guesses, before the {due:?} its delays add up to: {at:?}",
            i + 1,
            at[i]
        );
    }
    for i in 11..=12 {
        let v = guesser.recv().await;
        assert_eq!(
            (v["id"].as_u64(), v["code"].as_str()),
            (Some(i), Some("rate_limited"))
        );
        let message = v["message"].as_str().unwrap();
        assert!(
            message
                .starts_with("10 failed logins from your address; logins from it are refused for "),
            "{message}"
        );
    }
    let mut right = Client::connect(d.addr()).await;
    right.send(&login("late", "sesame", 1)).await;
    assert_eq!(
        right.recv().await["code"],
        "rate_limited",
        "the right password too"
    );
}

/// A successful login from an address forgives its failures.
#[tokio::test]
async fn a_successful_login_forgives_the_failures_of_its_address() {
    let (d, _pw) = with_password(&[]);
    let mut c = Client::connect(d.addr()).await;
    for i in 1..=4 {
        c.send(&login("x", "wrong", i)).await;
        assert_eq!(c.recv().await["code"], "auth_failed");
    }
    let _ok = logged_in(&d, "honest").await;
    // Had the 4 failures stayed, the 6th of these 5 + 4 would wait 125 ms and more.
    let began = Instant::now();
    let five: String = (1..=5).map(|i| login("x", "wrong", i) + "\n").collect();
    c.send_raw(five.as_bytes()).await;
    for _ in 1..=5 {
        assert_eq!(c.recv().await["code"], "auth_failed");
    }
    assert!(began.elapsed() < Duration::from_millis(125));
}

/// With 2 000 users online, a client logging in and out in a loop made chatd send 991 MB in
/// 10 s of joins and leaves. Logins per address follow `--login-rate` and `--login-burst`.
#[tokio::test]
async fn logins_from_one_address_are_held_to_the_login_rate() {
    let d = Server::start(&["--login-rate", "1", "--login-burst", "3"]);
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(Client::login(d.addr(), &format!("u{i}")).await);
    }
    let mut over = Client::connect(d.addr()).await;
    over.send(r#"{"type":"login","from":"u3","id":4}"#).await;
    let v: Value = over.recv().await;
    assert_eq!(
        (v["id"].as_u64(), v["code"].as_str()),
        (Some(4), Some("rate_limited"))
    );
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with("too many logins from your address (over 1 a second); retry in "),
        "{message}"
    );
    // The refusal is not a failure: the connection may log in once the rate allows.
    over.expect_nothing_pending().await;
    let off = Server::start(&["--login-rate", "0", "--max-per-ip", "0"]);
    for i in 0..150 {
        held.push(Client::login(off.addr(), &format!("v{i}")).await);
    }
    assert_eq!(held.len(), 153, "0 turns the login rate off");
}
