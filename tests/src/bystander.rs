//! A logged-in user who pings, one request at a time, while an attack goes on: the longest
//! wait for an answer is how responsive chatd stayed for everyone else.
//!
//! It runs on a thread of its own with blocking I/O, so that the test's attacking tasks, on
//! the test's runtime, do not delay its turns and what it measures is chatd's.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Bystander {
    pinging: Arc<AtomicBool>,
    thread: JoinHandle<Pings>,
}

/// What a bystander saw.
#[derive(Debug, Clone, Copy)]
pub struct Pings {
    pub count: usize,
    pub slowest: Duration,
}

impl Bystander {
    /// Logs in as `name` (before returning) and starts pinging.
    pub fn start(addr: SocketAddr, name: &str) -> Bystander {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(crate::DEADLINE)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let login = format!("{{\"type\":\"login\",\"from\":\"{name}\"}}\n");
        ask(&mut stream, &mut reader, &login);
        let pinging = Arc::new(AtomicBool::new(true));
        let going = pinging.clone();
        let thread = std::thread::spawn(move || {
            let mut pings = Pings {
                count: 0,
                slowest: Duration::ZERO,
            };
            while going.load(Ordering::SeqCst) {
                let began = Instant::now();
                ask(&mut stream, &mut reader, "{\"type\":\"ping\"}\n");
                pings.count += 1;
                pings.slowest = pings.slowest.max(began.elapsed());
            }
            pings
        });
        Bystander { pinging, thread }
    }

    /// Stops pinging: what it saw (at least one ping).
    pub fn stop(self) -> Pings {
        self.pinging.store(false, Ordering::SeqCst);
        let pings = self.thread.join().expect("the bystander's thread");
        assert!(pings.count > 0, "the bystander never pinged");
        pings
    }
}

/// Sends `request` and reads lines until its `ok` (the bystander may get events meanwhile).
fn ask(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, request: &str) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "chatd closed the bystander's connection");
        let v: Value = serde_json::from_str(&line).unwrap();
        match v["type"].as_str() {
            Some("ok") => return,
            Some("join" | "leave" | "msg") => continue,
            _ => panic!("the bystander got {line}"),
        }
    }
}
