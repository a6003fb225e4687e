//! PROTOCOL.md row by row, against chatd served in-process over TCP: every request, every
//! reply shape, every event, the `id` echo, names ignoring case, and spoofing refused.

use e2e::{Client, Server};
use serde_json::json;

fn server() -> Server {
    Server::start(&[])
}

#[tokio::test]
async fn the_documented_session_plays_out_exactly() {
    let d = server();
    let mut alice = Client::connect(d.addr()).await;
    alice
        .send(r#"{"type":"login","from":"alice","id":1}"#)
        .await;
    alice
        .expect(json!({"type":"ok","id":1,"user":"alice","users":["alice"],"server":format!("chatd/{}", env!("CARGO_PKG_VERSION")),"proto":1}))
        .await;
    let mut bob = Client::login(d.addr(), "bob").await;
    alice.expect(json!({"type":"join","user":"bob"})).await;
    alice
        .send(r#"{"type":"msg","to":"bob","body":"salut","id":2}"#)
        .await;
    alice
        .expect(json!({"type":"ok","id":2,"delivered":1}))
        .await;
    bob.expect(json!({"type":"msg","from":"alice","to":"bob","body":"salut"}))
        .await;
    bob.send(r#"{"type":"msg","to":"*","body":"hello all"}"#)
        .await;
    bob.expect(json!({"type":"ok","delivered":1})).await;
    alice
        .expect(json!({"type":"msg","from":"bob","to":"*","body":"hello all"}))
        .await;
    alice
        .send(r#"{"type":"msg","to":"carol","body":"?","id":3}"#)
        .await;
    alice
        .expect(
            json!({"type":"error","id":3,"code":"unknown_user","message":"carol is not logged in"}),
        )
        .await;
    alice.send(r#"{"type":"logout","id":4}"#).await;
    alice.expect(json!({"type":"ok","id":4})).await;
    alice.expect(json!({"type":"bye","reason":"logout"})).await;
    assert!(alice.expect_closed().await.is_empty());
    bob.expect(json!({"type":"leave","user":"alice","reason":"logout"}))
        .await;
}

#[tokio::test]
async fn ping_works_before_and_after_login_and_echoes_any_id_form() {
    let d = server();
    let mut c = Client::connect(d.addr()).await;
    c.send(r#"{"type":"ping"}"#).await;
    c.expect(json!({"type":"ok"})).await;
    c.send(r#"{"type":"ping","id":"abc"}"#).await;
    c.expect(json!({"type":"ok","id":"abc"})).await;
    // an id is echoed byte for byte, however large or escaped
    c.send(r#"{"type":"ping","id":18446744073709551615}"#).await;
    assert_eq!(
        c.recv_line().await.unwrap(),
        "{\"type\":\"ok\",\"id\":18446744073709551615}\n"
    );
    c.send(r#"{"type":"ping","id":"\u00e9"}"#).await;
    assert_eq!(
        c.recv_line().await.unwrap(),
        "{\"type\":\"ok\",\"id\":\"\\u00e9\"}\n"
    );
    c.send(r#"{"type":"ping","id":-7}"#).await;
    c.expect(json!({"type":"ok","id":-7})).await;
}

#[tokio::test]
async fn users_lists_everyone_sorted_and_login_includes_yourself() {
    let d = server();
    let mut zed = Client::login(d.addr(), "zed").await;
    let _amy = Client::login(d.addr(), "amy").await;
    let mut bo = Client::connect(d.addr()).await;
    bo.send(r#"{"type":"login","from":"Bo","id":"l"}"#).await;
    let reply = bo.recv().await;
    assert_eq!(reply["users"], json!(["Bo", "amy", "zed"]));
    assert_eq!(reply["user"], "Bo");
    zed.expect(json!({"type":"join","user":"amy"})).await;
    zed.expect(json!({"type":"join","user":"Bo"})).await;
    zed.send(r#"{"type":"users","id":9}"#).await;
    zed.expect(json!({"type":"ok","id":9,"users":["Bo","amy","zed"]}))
        .await;
}

#[tokio::test]
async fn names_are_unique_ignoring_case_and_matched_ignoring_case() {
    let d = server();
    let mut bob = Client::login(d.addr(), "Bob").await;
    let mut other = Client::connect(d.addr()).await;
    other.send(r#"{"type":"login","from":"bOB","id":1}"#).await;
    other
        .expect(json!({"type":"error","id":1,"code":"name_taken","message":"bOB is already logged in; choose another name"}))
        .await;
    // the refused connection may try another name
    other
        .send(r#"{"type":"login","from":"carol","id":2}"#)
        .await;
    assert_eq!(other.recv().await["user"], "carol");
    bob.expect(json!({"type":"join","user":"carol"})).await;
    other
        .send(r#"{"type":"msg","to":"BOB","body":"hi","id":3}"#)
        .await;
    other
        .expect(json!({"type":"ok","id":3,"delivered":1}))
        .await;
    // the event carries the name as its owner spelled it
    bob.expect(json!({"type":"msg","from":"carol","to":"Bob","body":"hi"}))
        .await;
}

#[tokio::test]
async fn a_name_is_free_again_after_its_owner_leaves() {
    let d = server();
    let mut a = Client::login(d.addr(), "ann").await;
    let mut watcher = Client::login(d.addr(), "watcher").await;
    a.shutdown_write().await;
    assert_eq!(
        a.expect_closed().await,
        vec![json!({"type":"join","user":"watcher"})],
        "no bye on a client's own close"
    );
    watcher
        .expect(json!({"type":"leave","user":"ann","reason":"disconnect"}))
        .await;
    let _again = Client::login(d.addr(), "ANN").await;
    watcher.expect(json!({"type":"join","user":"ANN"})).await;
}

#[tokio::test]
async fn invalid_names_are_refused_with_the_rule_broken() {
    let d = server();
    let mut c = Client::connect(d.addr()).await;
    let cases = [
        (r#""""#, "name is empty; a name has 1 to 32 characters"),
        (
            r#""-dash""#,
            "name starts with '-'; a name may not start with - or .",
        ),
        (
            r#"".dot""#,
            "name starts with '.'; a name may not start with - or .",
        ),
        (
            r#""a b""#,
            "name contains ' '; allowed are A-Z a-z 0-9 _ - .",
        ),
        (
            r#""émile""#,
            "name contains 'é'; allowed are A-Z a-z 0-9 _ - .",
        ),
        (r#""*""#, "`*` means everyone and is not a name"),
        (
            r#""abcdefghijabcdefghijabcdefghijabc""#,
            "name is 33 characters long; the limit is 32",
        ),
    ];
    for (i, (name, message)) in cases.iter().enumerate() {
        c.send(&format!(r#"{{"type":"login","from":{name},"id":{i}}}"#))
            .await;
        c.expect(json!({"type":"error","id":i,"code":"invalid_name","message":message}))
            .await;
    }
    // 32 characters is fine
    c.send(r#"{"type":"login","from":"abcdefghijabcdefghijabcdefghij_2","id":"ok"}"#)
        .await;
    assert_eq!(c.recv().await["type"], "ok");
    c.send(r#"{"type":"msg","to":"no way","body":"x","id":5}"#)
        .await;
    c.expect(json!({"type":"error","id":5,"code":"invalid_name","message":"name contains ' '; allowed are A-Z a-z 0-9 _ - ."}))
        .await;
}

#[tokio::test]
async fn requests_before_login_get_not_logged_in() {
    let d = server();
    let mut c = Client::connect(d.addr()).await;
    let message = r#"log in first: {"type":"login","from":"NAME"}"#;
    for (i, req) in [
        r#""type":"msg","to":"*","body":"x""#,
        r#""type":"users""#,
        r#""type":"logout""#,
    ]
    .iter()
    .enumerate()
    {
        c.send(&format!("{{{req},\"id\":{i}}}")).await;
        c.expect(json!({"type":"error","id":i,"code":"not_logged_in","message":message}))
            .await;
    }
}

#[tokio::test]
async fn a_second_login_on_one_connection_is_refused() {
    let d = server();
    let mut c = Client::login(d.addr(), "once").await;
    c.send(r#"{"type":"login","from":"twice","id":1}"#).await;
    c.expect(json!({"type":"error","id":1,"code":"already_logged_in","message":"this connection is already logged in as once"}))
        .await;
}

#[tokio::test]
async fn speaking_as_someone_else_is_forbidden_and_delivers_nothing() {
    let d = server();
    let mut mallory = Client::login(d.addr(), "mallory").await;
    let mut alice = Client::login(d.addr(), "alice").await;
    mallory.expect(json!({"type":"join","user":"alice"})).await;
    mallory
        .send(r#"{"type":"msg","from":"alice","to":"*","body":"I am alice","id":1}"#)
        .await;
    mallory
        .expect(json!({"type":"error","id":1,"code":"forbidden","message":"you are logged in as mallory and cannot send as alice"}))
        .await;
    // `from` equal to one's own name (any case) is fine
    mallory
        .send(r#"{"type":"msg","from":"Mallory","to":"alice","body":"really me","id":2}"#)
        .await;
    mallory
        .expect(json!({"type":"ok","id":2,"delivered":1}))
        .await;
    alice
        .expect(json!({"type":"msg","from":"mallory","to":"alice","body":"really me"}))
        .await;
    alice.expect_nothing_pending().await;
}

#[tokio::test]
async fn broadcast_counts_everyone_but_the_sender_and_zero_when_alone() {
    let d = server();
    let mut solo = Client::login(d.addr(), "solo").await;
    solo.send(r#"{"type":"msg","to":"*","body":"anyone?","id":1}"#)
        .await;
    solo.expect(json!({"type":"ok","id":1,"delivered":0})).await;
    let mut others = Vec::new();
    for i in 0..3 {
        others.push(Client::login(d.addr(), &format!("o{i}")).await);
    }
    for _ in 0..3 {
        assert_eq!(solo.recv().await["type"], "join");
    }
    solo.send(r#"{"type":"msg","to":"*","body":"hi all","id":2}"#)
        .await;
    solo.expect(json!({"type":"ok","id":2,"delivered":3})).await;
    for o in &mut others {
        loop {
            let v = o.recv_no_ts().await;
            if v["type"] == "msg" {
                assert_eq!(
                    v,
                    json!({"type":"msg","from":"solo","to":"*","body":"hi all"})
                );
                break;
            }
            assert_eq!(v["type"], "join");
        }
    }
    solo.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_message_to_yourself_is_delivered_to_yourself() {
    let d = server();
    let mut me = Client::login(d.addr(), "narcissus").await;
    me.send(r#"{"type":"msg","to":"NARCISSUS","body":"hi me","id":1}"#)
        .await;
    let mut got = vec![me.recv_no_ts().await, me.recv_no_ts().await];
    got.sort_by_key(|v| v["type"].as_str().unwrap().to_owned());
    assert_eq!(
        got,
        vec![
            json!({"type":"msg","from":"narcissus","to":"narcissus","body":"hi me"}),
            json!({"type":"ok","id":1,"delivered":1}),
        ]
    );
}

#[tokio::test]
async fn bodies_travel_exactly_unicode_escapes_and_newlines_included() {
    let d = server();
    let mut a = Client::login(d.addr(), "a").await;
    let mut b = Client::login(d.addr(), "b").await;
    a.recv().await; // join b
    let bodies = [
        "",
        "multi\nline\ttab",
        "quote \" backslash \\",
        "héllo ✓ 🎉",
        "\u{1}ctl",
    ];
    for body in bodies {
        let req = json!({"type":"msg","to":"b","body":body});
        a.send(&req.to_string()).await;
        assert_eq!(a.recv().await["delivered"], 1);
        let got = b.recv().await;
        assert_eq!(got["body"], body);
    }
    // escapes as the sender wrote them are relayed byte for byte
    a.send(r#"{"type":"msg","to":"b","body":"caf\u00e9 \/"}"#)
        .await;
    a.recv().await;
    let line = b.recv_line().await.unwrap();
    assert!(line.contains(r#""body":"caf\u00e9 \/""#), "{line}");
}

#[tokio::test]
async fn malformed_requests_get_bad_request_and_the_connection_stays() {
    let d = server();
    let mut c = Client::connect(d.addr()).await;
    let cases: &[(&str, serde_json::Value)] = &[
        (
            "hello",
            json!({"type":"error","code":"bad_request","message":"request must be a JSON object"}),
        ),
        (
            "[1,2,3]",
            json!({"type":"error","code":"bad_request","message":"request must be a JSON object"}),
        ),
        (
            "42",
            json!({"type":"error","code":"bad_request","message":"request must be a JSON object"}),
        ),
        (
            r#"{"id":1}"#,
            json!({"type":"error","id":1,"code":"bad_request","message":"missing field `type`"}),
        ),
        (
            r#"{"type":"dance","id":2}"#,
            json!({"type":"error","id":2,"code":"bad_request","message":"unknown request type \"dance\""}),
        ),
        (
            r#"{"type":5,"id":3}"#,
            json!({"type":"error","id":3,"code":"bad_request","message":"`type` must be a string"}),
        ),
        (
            r#"{"type":"login","id":4}"#,
            json!({"type":"error","id":4,"code":"bad_request","message":"missing field `from`"}),
        ),
        (
            r#"{"type":"login","from":["x"],"id":5}"#,
            json!({"type":"error","id":5,"code":"bad_request","message":"`from` must be a string"}),
        ),
        (
            r#"{"type":"ping","id":{"a":1}}"#,
            json!({"type":"error","code":"bad_request","message":"`id` must be a string or an integer"}),
        ),
        (
            r#"{"type":"ping","id":1.5}"#,
            json!({"type":"error","code":"bad_request","message":"`id` must be a string or an integer"}),
        ),
    ];
    for (line, expected) in cases {
        c.send(line).await;
        assert_eq!(&c.recv().await, expected, "for {line}");
    }
    c.send(r#"{"type":"ping","unknown":"fields are ignored","id":6}"#)
        .await;
    c.expect(json!({"type":"ok","id":6})).await;
    // truncated JSON: the message names serde's complaint
    c.send(r#"{"type":"ping""#).await;
    let v = c.recv().await;
    assert_eq!(
        (v["code"].as_str(), v.get("id")),
        (Some("bad_request"), None)
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON: EOF while parsing an object"),
        "{v}"
    );
    // msg fields once logged in
    c.send(r#"{"type":"login","from":"m"}"#).await;
    c.recv().await;
    c.send(r#"{"type":"msg","body":"x","id":7}"#).await;
    c.expect(json!({"type":"error","id":7,"code":"bad_request","message":"missing field `to`"}))
        .await;
    c.send(r#"{"type":"msg","to":"m","id":8}"#).await;
    c.expect(json!({"type":"error","id":8,"code":"bad_request","message":"missing field `body`"}))
        .await;
    c.send(r#"{"type":"msg","to":"m","body":12,"id":9}"#).await;
    c.expect(
        json!({"type":"error","id":9,"code":"bad_request","message":"`body` must be a string"}),
    )
    .await;
    c.expect_nothing_pending().await;
}

#[tokio::test]
async fn invalid_utf8_is_a_bad_request_never_relayed() {
    let d = server();
    let mut a = Client::login(d.addr(), "a").await;
    let mut b = Client::login(d.addr(), "b").await;
    a.recv().await;
    a.send_raw(b"{\"type\":\"msg\",\"to\":\"b\",\"body\":\"\xff\xfe\",\"id\":1}\n")
        .await;
    a.expect(json!({"type":"error","code":"bad_request","message":"line is not valid UTF-8"}))
        .await;
    b.expect_nothing_pending().await;
}

#[tokio::test]
async fn blank_lines_get_no_reply_and_crlf_is_accepted() {
    let d = server();
    let mut c = Client::connect(d.addr()).await;
    c.send_raw(b"\n\r\n   \n\t\r\n{\"type\":\"ping\",\"id\":1}\r\n")
        .await;
    c.expect(json!({"type":"ok","id":1})).await;
    c.expect_nothing_pending().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_with_their_ids() {
    let d = Server::start(&["--rate", "0"]);
    let mut a = Client::login(d.addr(), "piper").await;
    let mut batch = String::new();
    for i in 0..500 {
        batch.push_str(&format!("{{\"type\":\"ping\",\"id\":{i}}}\n"));
        batch.push_str(&format!(
            "{{\"type\":\"msg\",\"to\":\"piper\",\"body\":\"{i}\",\"id\":\"m{i}\"}}\n"
        ));
    }
    a.send_raw(batch.as_bytes()).await;
    let (mut replies, mut msgs) = (Vec::new(), Vec::new());
    while replies.len() < 1000 || msgs.len() < 500 {
        let v = a.recv().await;
        if v["type"] == "msg" {
            msgs.push(v["body"].as_str().unwrap().parse::<u32>().unwrap());
        } else {
            replies.push(v["id"].clone());
        }
    }
    let expected: Vec<_> = (0..500)
        .flat_map(|i| [json!(i), json!(format!("m{i}"))])
        .collect();
    assert_eq!(replies, expected);
    assert_eq!(msgs, (0..500).collect::<Vec<_>>());
}

#[tokio::test]
async fn pipelined_broadcasts_mixed_with_other_requests_keep_reply_and_delivery_order() {
    // Broadcasts of one read are queued together; every other reply must still come out in
    // request order, and the listener must see broadcasts and private messages as sent.
    let d = Server::start(&["--rate", "0"]);
    let mut ear = Client::login(d.addr(), "ear").await;
    let mut caster = Client::login(d.addr(), "caster").await;
    assert_eq!(ear.recv().await["type"], "join");
    let (mut batch, mut expected, mut heard) = (String::new(), Vec::new(), Vec::new());
    for i in 0..400 {
        match i % 5 {
            0 | 1 | 4 => {
                batch.push_str(&format!(
                    "{{\"type\":\"msg\",\"to\":\"*\",\"body\":\"{i}\",\"id\":\"b{i}\"}}\n"
                ));
                expected.push(json!({"type": "ok", "id": format!("b{i}"), "delivered": 1}));
                heard.push(i);
            }
            3 => {
                batch.push_str(&format!(
                    "{{\"type\":\"msg\",\"to\":\"ear\",\"body\":\"{i}\",\"id\":\"p{i}\"}}\n"
                ));
                expected.push(json!({"type": "ok", "id": format!("p{i}"), "delivered": 1}));
                heard.push(i);
            }
            _ => {
                // an error right after broadcasts: it must not overtake their replies
                batch.push_str(&format!("{{\"type\":\"msg\",\"id\":\"x{i}\"}}\n"));
                expected
                    .push(json!({"type": "error", "id": format!("x{i}"), "code": "bad_request"}));
            }
        }
    }
    assert!(batch.len() > 16 * 1024, "spans more than one read");
    caster.send_raw(batch.as_bytes()).await;
    let mut replies = Vec::new();
    while replies.len() < expected.len() {
        let mut v = caster.recv().await;
        v.as_object_mut().unwrap().remove("message");
        replies.push(v);
    }
    assert_eq!(replies, expected);
    let mut got = Vec::new();
    while got.len() < heard.len() {
        let v = ear.recv().await;
        assert_eq!(v["type"], "msg", "{v}");
        got.push(v["body"].as_str().unwrap().parse::<u32>().unwrap());
    }
    assert_eq!(got, heard);
}
