//! Unit tests of the single-node directory, without sockets: uniqueness, routing outcomes,
//! fan-out prefixes, leaving and kicking.

use super::*;
use crate::conns::Conns;
use crate::mailbox::Bounds;
use bytes::Bytes;
use std::net::SocketAddr;

fn raw(s: &str) -> Raw<'_> {
    Raw::parse(s).unwrap()
}

fn drain(c: &Conn) -> String {
    let mut out = Vec::new();
    c.mailbox.take(&mut out, usize::MAX);
    String::from_utf8(out).unwrap()
}

fn addr() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

/// A connection table whose connections' queues hold `.1` lines.
struct Table(Conns, usize);

impl Table {
    fn new(queue_len: usize) -> Table {
        Table(Conns::new(), queue_len)
    }

    fn open(&self, peer: SocketAddr) -> Arc<Conn> {
        let queue = Bounds {
            lines: self.1,
            bytes: usize::MAX,
        };
        self.0.open(peer, queue)
    }

    fn remove(&self, conn: &Conn) {
        self.0.remove(conn);
    }
}

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn send(d: &LocalDirectory, route: &mut Route, from: &Name, to: &str, body: &str) -> Delivery {
    d.send(route, from, to, raw(body), &Ts::new(1))
}

#[test]
fn claim_is_unique_ignoring_case_and_announced_to_others() {
    let (conns, d) = (Table::new(8), LocalDirectory::new());
    let a = conns.open(addr());
    let b = conns.open(addr());
    assert_eq!(d.claim(&a, name("alice")).unwrap().len(), 1);
    assert_eq!(d.claim(&b, name("ALICE")), Err(ClaimError::Taken));
    let users = d.claim(&b, name("Bob")).unwrap();
    assert_eq!(
        users.iter().map(Name::as_str).collect::<Vec<_>>(),
        ["Bob", "alice"]
    );
    assert_eq!(drain(&a), "{\"type\":\"join\",\"user\":\"Bob\"}\n");
    assert_eq!(drain(&b), "");
    assert_eq!(d.claim(&b, name("x")), Err(ClaimError::AlreadyLoggedIn));
}

#[test]
fn send_matches_case_and_reports_unknown_and_busy() {
    let (conns, d) = (Table::new(1), LocalDirectory::new());
    let a = conns.open(addr());
    let b = conns.open(addr());
    let alice = name("alice");
    d.claim(&a, alice.clone()).unwrap();
    d.claim(&b, name("Bob")).unwrap();
    drain(&a);
    let mut route = Route::default();
    assert_eq!(
        send(&d, &mut route, &alice, "carol", "\"x\""),
        Delivery::Unknown
    );
    assert_eq!(
        d.send(&mut route, &alice, "bob", raw("\"hi\""), &Ts::new(5)),
        Delivery::Queued
    );
    assert_eq!(
        send(&d, &mut route, &alice, "bob", "\"again\""),
        Delivery::Busy
    );
    assert_eq!(
        drain(&b),
        "{\"type\":\"msg\",\"from\":\"alice\",\"to\":\"Bob\",\"body\":\"hi\",\"ts\":5}\n"
    );
}

#[test]
fn fan_out_skips_the_sender_and_gives_each_queue_the_prefix_that_fits() {
    let (conns, d) = (Table::new(3), LocalDirectory::new());
    let all: Vec<_> = (0..4).map(|_| conns.open(addr())).collect();
    for (i, c) in all.iter().enumerate() {
        d.claim(c, name(&format!("u{i}"))).unwrap();
    }
    // Each holds the joins of those after it: room 0, 1, 2 and 3 of 3.
    let (mut run, mut ends) = (Vec::new(), Vec::new());
    for body in ["\"a\"", "\"b\"", "\"c\""] {
        encode::msg_event_into(&mut run, "u3", "*", raw(body), &Ts::new(1));
        ends.push(run.len());
    }
    let lines = Lines {
        bytes: Bytes::from(run),
        ends,
    };
    let delivered = d.fan_out(Some(&all[3]), Audience::Everyone, &lines);
    assert_eq!(delivered, [2, 1, 0]);
    let bodies = |c: &Conn| {
        let text = drain(c);
        text.lines()
            .filter(|l| l.contains("\"to\":\"*\""))
            .map(|l| l[l.find("body").unwrap() + 7..][..1].to_string())
            .collect::<Vec<_>>()
    };
    assert!(bodies(&all[0]).is_empty());
    assert_eq!(bodies(&all[1]), ["a"]);
    assert_eq!(bodies(&all[2]), ["a", "b"]);
    assert!(bodies(&all[3]).is_empty(), "not to the sender");
    assert_eq!(all[2].mailbox.depth(), 0);
}

#[test]
fn a_removed_connection_frees_its_queue_even_while_a_route_still_holds_it() {
    let (conns, d) = (Table::new(8), LocalDirectory::new());
    let a = conns.open(addr());
    let b = conns.open(addr());
    let alice = name("alice");
    d.claim(&a, alice.clone()).unwrap();
    d.claim(&b, name("bob")).unwrap();
    let mut route = Route::default();
    assert_eq!(
        send(&d, &mut route, &alice, "bob", "\"hi\""),
        Delivery::Queued
    );
    assert_eq!(b.mailbox.depth(), 1);
    d.release(&b, LeaveReason::Disconnect, true);
    conns.remove(&b);
    assert_eq!(b.mailbox.depth(), 0);
    assert!(route.last.is_some(), "the route still holds bob's Conn");
}

#[test]
fn release_and_kick() {
    let (conns, d) = (Table::new(8), LocalDirectory::new());
    let a = conns.open(addr());
    let b = conns.open(addr());
    d.claim(&a, name("a")).unwrap();
    d.claim(&b, name("b")).unwrap();
    drain(&a);
    assert_eq!(d.kick("B", Some("bye".into())).unwrap().as_str(), "b");
    assert_eq!(d.kick("nobody", None), None);
    assert_eq!(
        d.release(&b, LeaveReason::Kicked, true).unwrap().as_str(),
        "b"
    );
    assert_eq!(
        drain(&a),
        "{\"type\":\"leave\",\"user\":\"b\",\"reason\":\"kicked\"}\n"
    );
    assert_eq!(d.release(&b, LeaveReason::Disconnect, true), None);
    assert_eq!(d.list(Audience::Everyone).len(), 1);
    assert_eq!(d.count(Audience::Everyone), 1);
    assert_eq!(drain(&a), "", "leave is told once");
    d.release(&a, LeaveReason::Disconnect, false);
    assert!(d.list(Audience::Everyone).is_empty());
    assert_eq!(d.count(Audience::Everyone), 0);
}

#[test]
fn a_routed_recipient_that_left_is_looked_up_again() {
    let (conns, d) = (Table::new(8), LocalDirectory::new());
    let a = conns.open(addr());
    let alice = name("alice");
    d.claim(&a, alice.clone()).unwrap();
    let b1 = conns.open(addr());
    d.claim(&b1, name("bob")).unwrap();
    let mut route = Route::default();
    assert_eq!(
        send(&d, &mut route, &alice, "bob", "\"1\""),
        Delivery::Queued
    );
    assert!(drain(&b1).contains("\"1\""));
    d.release(&b1, LeaveReason::Disconnect, true);
    assert_eq!(
        send(&d, &mut route, &alice, "bob", "\"2\""),
        Delivery::Unknown
    );
    let b2 = conns.open(addr());
    d.claim(&b2, name("Bob")).unwrap();
    assert_eq!(
        d.send(&mut route, &alice, "BOB", raw("\"3\""), &Ts::new(3)),
        Delivery::Queued
    );
    assert_eq!(
        drain(&b2),
        "{\"type\":\"msg\",\"from\":\"alice\",\"to\":\"Bob\",\"body\":\"3\",\"ts\":3}\n"
    );
}
