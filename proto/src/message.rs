//! Owned, typed protocol messages for clients: what `chatcli`, `chatbench` and the tests send
//! and receive. The server has faster borrowed paths ([`crate::request`], [`crate::encode`]);
//! the tests in `encode` check that both agree.

use crate::{ByeReason, ErrorCode, LeaveReason};
use serde::{Deserialize, Serialize};

/// A request `id`: the protocol allows a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Int(i64),
    Str(String),
}

impl From<i64> for Id {
    fn from(n: i64) -> Id {
        Id::Int(n)
    }
}

/// A request, client to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientRequest {
    Login {
        from: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
    Msg {
        to: String,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
    Users {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
    Logout {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
}

impl ClientRequest {
    /// The request as one protocol line, `\n` included.
    pub fn to_line(&self) -> String {
        // Only strings and integers inside: serialization cannot fail.
        let mut s = serde_json::to_string(self).expect("serialize a request");
        s.push('\n');
        s
    }
}

/// The fields of an `ok` reply; which ones are present depends on the request answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// `login`: the name as registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `login` and `users`: everyone logged in, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    /// `login`: the server's name and version, e.g. `chatd/0.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `login`: the protocol version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u32>,
    /// `msg`: how many recipients' queues accepted the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u64>,
}

/// An `error` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    pub code: ErrorCode,
    pub message: String,
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgEvent {
    pub from: String,
    /// The recipient's name for a private message, `*` for a broadcast.
    pub to: String,
    pub body: String,
    /// Server receive time, milliseconds since the Unix epoch.
    pub ts: u64,
}

impl MsgEvent {
    pub fn is_broadcast(&self) -> bool {
        self.to == "*"
    }
}

/// Anything the server sends: a reply (carries `id`) or an event (does not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Ok(OkReply),
    Error(ErrorReply),
    Msg(MsgEvent),
    Join {
        user: String,
    },
    Leave {
        user: String,
        reason: LeaveReason,
    },
    Notice {
        body: String,
        ts: u64,
    },
    Bye {
        reason: ByeReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

impl ServerMessage {
    /// Parses one line from the server (with or without its `\n`).
    pub fn parse(line: &str) -> Result<ServerMessage, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// The `id` of a reply; `None` for events.
    pub fn id(&self) -> Option<&Id> {
        match self {
            ServerMessage::Ok(r) => r.id.as_ref(),
            ServerMessage::Error(e) => e.id.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{self, Request, Target};

    #[test]
    fn client_requests_are_understood_by_the_server_parser() {
        let line = ClientRequest::Login {
            from: "al".into(),
            password: None,
            id: Some(Id::Int(1)),
        }
        .to_line();
        assert_eq!(line, "{\"type\":\"login\",\"from\":\"al\",\"id\":1}\n");
        let p = request::parse(line.trim_end().as_bytes()).unwrap().unwrap();
        assert!(matches!(p.request, Request::Login { .. }));

        let line = ClientRequest::Msg {
            to: "*".into(),
            body: "multi\nline \"quoted\"".into(),
            from: None,
            id: Some(Id::Str("m1".into())),
        }
        .to_line();
        assert_eq!(
            line.matches('\n').count(),
            1,
            "a body never breaks the framing"
        );
        let p = request::parse(line.trim_end().as_bytes()).unwrap().unwrap();
        assert_eq!(p.id.unwrap().get(), "\"m1\"");
        assert!(matches!(
            p.request,
            Request::Msg {
                to: Target::All,
                ..
            }
        ));

        for r in [
            ClientRequest::Users { id: None },
            ClientRequest::Logout { id: None },
            ClientRequest::Ping {
                id: Some(Id::Int(-4)),
            },
        ] {
            let line = r.to_line();
            assert!(
                request::parse(line.trim_end().as_bytes())
                    .unwrap()
                    .is_some(),
                "{line}"
            );
            let back: ClientRequest = serde_json::from_str(&line).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn the_protocol_documents_example_session_parses() {
        let lines = [
            r#"{"type":"ok","id":1,"user":"alice","users":["alice"],"server":"chatd/0.1.0","proto":1}"#,
            r#"{"type":"join","user":"bob"}"#,
            r#"{"type":"ok","id":2,"delivered":1}"#,
            r#"{"type":"msg","from":"bob","to":"*","body":"hello all","ts":1763856000123}"#,
            r#"{"type":"error","id":3,"code":"unknown_user","message":"carol is not logged in"}"#,
            r#"{"type":"ok","id":4}"#,
            r#"{"type":"bye","reason":"logout"}"#,
            r#"{"type":"leave","user":"bob","reason":"kicked"}"#,
            r#"{"type":"notice","body":"maintenance at 6","ts":1763856000123}"#,
        ];
        for l in lines {
            let m = ServerMessage::parse(l).unwrap();
            let again: ServerMessage =
                serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(again, m, "{l}");
        }
        let m = ServerMessage::parse(lines[3]).unwrap();
        assert!(matches!(m, ServerMessage::Msg(ref e) if e.is_broadcast()));
        assert_eq!(
            ServerMessage::parse(lines[4]).unwrap().id(),
            Some(&Id::Int(3))
        );
    }
}
