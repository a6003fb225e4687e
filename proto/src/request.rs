//! The server's parser for one request line.
//!
//! One pass over the line borrows every known field as raw JSON (the flat scanner of
//! `flat.rs` for the usual shape, serde_json for any other), so nothing is copied or
//! unescaped unless it has to be. Checks then run field by field, and because `id` was taken
//! raw in that same pass, every error after the JSON itself parsed can echo the client's `id`
//! byte for byte. `body` stays the JSON string it arrived as: it is validated here once and
//! relayed as is, never unescaped and escaped again.

use crate::ErrorCode;
use crate::name::{self, NameError};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A parsed request line.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The client's `id`, raw (a JSON string or integer), to be echoed in the reply.
    pub id: Option<Raw<'a>>,
    pub request: Request<'a>,
}

/// The five requests of protocol version 1, with borrowed fields.
#[derive(Debug)]
pub enum Request<'a> {
    Login {
        /// A valid name, as the user spelled it.
        name: Cow<'a, str>,
        password: Option<Cow<'a, str>>,
    },
    Msg {
        to: Target<'a>,
        /// A JSON string literal, quotes included, checked to be valid.
        body: Raw<'a>,
        from: Option<Cow<'a, str>>,
    },
    Users,
    Logout,
    Ping,
}

/// Where a `msg` goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `*`: everyone logged in except the sender.
    All,
    /// One user, by a name that passed the naming rules.
    User(Cow<'a, str>),
}

/// Why a line got an `error` reply instead of being served.
#[derive(Debug)]
pub struct RequestError<'a> {
    /// The request's `id`, when the line was JSON enough to have one.
    pub id: Option<Raw<'a>>,
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
}

impl<'a> RequestError<'a> {
    fn bad(id: Option<Raw<'a>>, message: impl Into<Cow<'static, str>>) -> Self {
        RequestError {
            id,
            code: ErrorCode::BadRequest,
            message: message.into(),
        }
    }
}

/// A JSON value exactly as it appeared in a request line, known to be valid JSON. Replies
/// echo it byte for byte (`id`), and a message body travels as one (`body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// Checks that `json` is one JSON value (surrounding white space allowed) and keeps it.
    pub fn parse(json: &'a str) -> Result<Raw<'a>, serde_json::Error> {
        let v: &'a RawValue = serde_json::from_str(json)?;
        Ok(Raw(v.get()))
    }

    /// The JSON text.
    pub fn get(self) -> &'a str {
        self.0
    }

    /// Only for text the caller has already checked to be one valid JSON value.
    pub(crate) fn trusted(json: &'a str) -> Raw<'a> {
        Raw(json)
    }
}

/// The fields of a request object that the protocol knows, each as raw JSON.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields<'a> {
    pub kind: Option<Raw<'a>>,
    pub id: Option<Raw<'a>>,
    pub from: Option<Raw<'a>>,
    pub to: Option<Raw<'a>>,
    pub body: Option<Raw<'a>>,
    pub password: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    from: Option<&'a RawValue>,
    #[serde(borrow)]
    to: Option<&'a RawValue>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    #[serde(borrow)]
    password: Option<&'a RawValue>,
}

/// The general path: serde_json checks the whole line, whatever its shape.
pub(crate) fn fields_by_serde(text: &str) -> Result<Fields<'_>, serde_json::Error> {
    let env: Envelope<'_> = serde_json::from_str(text)?;
    fn raw<'a>(v: Option<&'a RawValue>) -> Option<Raw<'a>> {
        v.map(|v| Raw(v.get()))
    }
    Ok(Fields {
        kind: raw(env.kind),
        id: raw(env.id),
        from: raw(env.from),
        to: raw(env.to),
        body: raw(env.body),
        password: raw(env.password),
    })
}

/// Parses one framed line. `Ok(None)` for a blank line, which gets no reply.
pub fn parse(line: &[u8]) -> Result<Option<Parsed<'_>>, RequestError<'_>> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(RequestError::bad(None, "line is not valid UTF-8"));
    };
    let trimmed = trim_json_ws(text);
    if trimmed.is_empty() {
        return Ok(None);
    }
    // serde would also build a struct from a JSON array; the protocol wants an object.
    if !trimmed.starts_with('{') {
        return Err(RequestError::bad(None, "request must be a JSON object"));
    }
    // Most requests are flat objects of plain strings and integers: a scanner made for that
    // shape reads them in a fraction of serde's time, and hands anything else to serde.
    // Strings the scanner accepted have no escapes, so they are not searched for one again.
    let mut env = Fields::default();
    let plain = crate::flat::fields_into(trimmed, &mut env);
    if !plain {
        env = match fields_by_serde(trimmed) {
            Ok(fields) => fields,
            Err(e) => return Err(RequestError::bad(None, format!("invalid JSON: {e}"))),
        };
    }
    let id = match env.id.filter(|raw| !is_null(*raw)) {
        Some(raw) if valid_id(raw, plain) => Some(raw),
        Some(raw) if raw.get().starts_with('"') => {
            return Err(RequestError::bad(None, not_a_string(raw, "id")));
        }
        Some(_) => {
            return Err(RequestError::bad(
                None,
                "`id` must be a string or an integer",
            ));
        }
        None => None,
    };
    let bad = |m: &'static str| RequestError::bad(id, m);
    let kind = match env.kind.filter(|raw| !is_null(*raw)) {
        None => return Err(bad("missing field `type`")),
        Some(raw) => str_field(raw, plain).ok_or_else(|| bad("`type` must be a string"))?,
    };
    let request = match &*kind {
        "login" => {
            let name = required_str(env.from, "from", id, plain)?;
            if let Err(e) = name::validate(&name) {
                return Err(invalid_name(id, e));
            }
            let password = optional_str(env.password, "password", id, plain)?;
            Request::Login { name, password }
        }
        "msg" => {
            let to = required_str(env.to, "to", id, plain)?;
            let to = if to == "*" {
                Target::All
            } else {
                name::validate(&to).map_err(|e| invalid_name(id, e))?;
                Target::User(to)
            };
            let body = match env.body.filter(|raw| !is_null(*raw)) {
                None => return Err(bad("missing field `body`")),
                Some(raw) if str_field(raw, plain).is_some() => raw,
                Some(raw) => return Err(RequestError::bad(id, not_a_string(raw, "body"))),
            };
            let from = optional_str(env.from, "from", id, plain)?;
            Request::Msg { to, body, from }
        }
        "users" => Request::Users,
        "logout" => Request::Logout,
        "ping" => Request::Ping,
        other => {
            return Err(RequestError::bad(
                id,
                format!("unknown request type {:?}", truncate(other, 64)),
            ));
        }
    };
    Ok(Some(Parsed { id, request }))
}

fn invalid_name(id: Option<Raw<'_>>, e: NameError) -> RequestError<'_> {
    RequestError {
        id,
        code: ErrorCode::InvalidName,
        message: e.to_string().into(),
    }
}

fn is_null(raw: Raw<'_>) -> bool {
    raw.get() == "null"
}

/// An id is a JSON string or an integer that fits in 64 bits.
fn valid_id(raw: Raw<'_>, plain: bool) -> bool {
    let s = raw.get();
    if s.starts_with('"') {
        return str_field(raw, plain).is_some();
    }
    // Up to 18 digits always fits; only a longer integer is converted to see if it does.
    let digits = s.strip_prefix('-').unwrap_or(s);
    if plain && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    s.parse::<i64>().is_ok() || s.parse::<u64>().is_ok()
}

/// The value of a JSON string, borrowed when it has no escapes. `None` if not a string, or if
/// its escapes are invalid (a lone surrogate, say). `plain`: the fast path read it, so it
/// has no escape.
fn str_field(raw: Raw<'_>, plain: bool) -> Option<Cow<'_, str>> {
    let s = raw.get();
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if plain || !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(s).ok().map(Cow::Owned)
}

fn required_str<'a>(
    raw: Option<Raw<'a>>,
    field: &'static str,
    id: Option<Raw<'a>>,
    plain: bool,
) -> Result<Cow<'a, str>, RequestError<'a>> {
    match optional_str(raw, field, id, plain)? {
        Some(s) => Ok(s),
        None => Err(RequestError::bad(id, format!("missing field `{field}`"))),
    }
}

fn optional_str<'a>(
    raw: Option<Raw<'a>>,
    field: &'static str,
    id: Option<Raw<'a>>,
    plain: bool,
) -> Result<Option<Cow<'a, str>>, RequestError<'a>> {
    match raw.filter(|r| !is_null(*r)) {
        None => Ok(None),
        Some(r) => match str_field(r, plain) {
            Some(s) => Ok(Some(s)),
            None => Err(RequestError::bad(id, not_a_string(r, field))),
        },
    }
}

/// Why `raw`, which [`str_field`] refused, is not a string: not one at all, or one whose
/// escapes do not decode (a lone UTF-16 surrogate such as `\ud800`, say).
fn not_a_string(raw: Raw<'_>, field: &str) -> String {
    let s = raw.get();
    if s.starts_with('"') && s.to_ascii_lowercase().contains("\\ud") {
        format!(
            "`{field}` has a lone UTF-16 surrogate (an escape from \\ud800 to \\udfff without \
             its pair); a character outside the BMP is escaped as a pair, such as \\ud83d\\ude00"
        )
    } else {
        format!("`{field}` must be a string")
    }
}

/// `text` without JSON's white space (space, tab, CR, LF) at either end; any other space
/// (a form feed, say) stays for serde to refuse.
fn trim_json_ws(text: &str) -> &str {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let b = text.as_bytes();
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |i| i + 1);
    // Both ends are next to ASCII bytes, so they are character boundaries.
    &text[start..end]
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Parsed<'_> {
        parse(line.as_bytes()).unwrap().unwrap()
    }

    fn err(line: &str) -> (Option<String>, ErrorCode, String) {
        let e = parse(line.as_bytes()).unwrap_err();
        (
            e.id.map(|r| r.get().to_owned()),
            e.code,
            e.message.into_owned(),
        )
    }

    #[test]
    fn every_request_type_parses() {
        let p = ok(r#"{"type":"login","from":"Alice","id":1}"#);
        assert_eq!(p.id.unwrap().get(), "1");
        assert!(
            matches!(p.request, Request::Login { ref name, password: None } if name == "Alice")
        );
        let p = ok(r#"{"type":"login","from":"a","password":"pw"}"#);
        assert!(matches!(p.request, Request::Login { password: Some(ref pw), .. } if pw == "pw"));
        let p = ok(r#"{"type":"msg","to":"bob","body":"hi \"there\"","id":"x"}"#);
        assert_eq!(p.id.unwrap().get(), "\"x\"");
        match p.request {
            Request::Msg { to, body, from } => {
                assert_eq!(to, Target::User("bob".into()));
                assert_eq!(body.get(), r#""hi \"there\"""#);
                assert_eq!(from, None);
            }
            other => panic!("{other:?}"),
        }
        let p = ok(r#"{"type":"msg","to":"*","body":"","from":"me"}"#);
        assert!(matches!(
            p.request,
            Request::Msg {
                to: Target::All,
                from: Some(_),
                ..
            }
        ));
        assert!(matches!(ok(r#"{"type":"users"}"#).request, Request::Users));
        assert!(matches!(
            ok(r#"{"type":"logout"}"#).request,
            Request::Logout
        ));
        assert!(matches!(ok(r#" {"type":"ping"} "#).request, Request::Ping));
    }

    #[test]
    fn unknown_fields_are_ignored_and_null_is_absent() {
        let p = ok(r#"{"type":"ping","extra":[1,{"a":2}],"id":null,"v":2}"#);
        assert!(p.id.is_none());
        assert!(matches!(p.request, Request::Ping));
    }

    #[test]
    fn blank_lines_are_not_requests() {
        assert!(parse(b"").unwrap().is_none());
        assert!(parse(b" \t ").unwrap().is_none());
    }

    #[test]
    fn malformed_lines_are_bad_requests_with_the_id_when_there_is_one() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("not json", None, "request must be a JSON object"),
            ("[1,2]", None, "request must be a JSON object"),
            ("\"login\"", None, "request must be a JSON object"),
            ("{\"type\":", None, "invalid JSON"),
            (r#"{"id":5}"#, Some("5"), "missing field `type`"),
            (r#"{"type":7,"id":5}"#, Some("5"), "`type` must be a string"),
            (
                r#"{"type":"dance","id":"a"}"#,
                Some("\"a\""),
                "unknown request type \"dance\"",
            ),
            (
                r#"{"type":"login","id":1}"#,
                Some("1"),
                "missing field `from`",
            ),
            (
                r#"{"type":"login","from":3,"id":1}"#,
                Some("1"),
                "`from` must be a string",
            ),
            (
                r#"{"type":"login","from":"a","password":1}"#,
                None,
                "`password` must be a string",
            ),
            (
                r#"{"type":"msg","body":"x","id":2}"#,
                Some("2"),
                "missing field `to`",
            ),
            (
                r#"{"type":"msg","to":"b","id":2}"#,
                Some("2"),
                "missing field `body`",
            ),
            (
                r#"{"type":"msg","to":"b","body":5,"id":2}"#,
                Some("2"),
                "`body` must be a string",
            ),
            (
                r#"{"type":"msg","to":["b"],"body":"x"}"#,
                None,
                "`to` must be a string",
            ),
            (
                r#"{"type":"msg","to":"b","body":"x","from":{}}"#,
                None,
                "`from` must be a string",
            ),
            (
                r#"{"type":"ping","id":1.5}"#,
                None,
                "`id` must be a string or an integer",
            ),
            (
                r#"{"type":"ping","id":[1]}"#,
                None,
                "`id` must be a string or an integer",
            ),
            (
                r#"{"type":"ping","type":"ping"}"#,
                None,
                "invalid JSON: duplicate field",
            ),
        ];
        for (line, id, msg) in cases {
            let (got_id, code, got_msg) = err(line);
            assert_eq!(code, ErrorCode::BadRequest, "{line}");
            assert_eq!(got_id.as_deref(), *id, "{line}");
            assert!(got_msg.starts_with(msg), "{line}: {got_msg}");
        }
    }

    #[test]
    fn invalid_utf8_is_a_bad_request() {
        let e = parse(b"{\"type\":\"ping\",\"x\":\"\xff\"}").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(e.message, "line is not valid UTF-8");
    }

    #[test]
    fn a_lone_surrogate_is_named_as_such() {
        let (_, code, msg) = err(r#"{"type":"msg","to":"b","body":"\ud800"}"#);
        assert_eq!(code, ErrorCode::BadRequest);
        assert_eq!(
            msg,
            "`body` has a lone UTF-16 surrogate (an escape from \\ud800 to \\udfff without its \
             pair); a character outside the BMP is escaped as a pair, such as \\ud83d\\ude00"
        );
        let (id, _, msg) = err(r#"{"type":"ping","id":"\uDC00x"}"#);
        assert_eq!(id, None);
        assert!(msg.starts_with("`id` has a lone UTF-16 surrogate"), "{msg}");
        let (_, _, msg) = err(r#"{"type":"login","from":"\ud800"}"#);
        assert!(
            msg.starts_with("`from` has a lone UTF-16 surrogate"),
            "{msg}"
        );
        let (_, _, msg) = err(r#"{"type":"msg","to":"b","body":"\q"}"#);
        assert!(!msg.contains("surrogate"), "{msg}");
    }

    #[test]
    fn escaped_strings_are_decoded_where_their_value_matters() {
        let p = ok(r#"{"type":"l\u006fgin","from":"\u0061"}"#);
        assert!(matches!(p.request, Request::Login { ref name, .. } if name == "a"));
        let p = ok(r#"{"type":"msg","to":"b","body":"\u00e9\n"}"#);
        assert!(matches!(p.request, Request::Msg { body, .. } if body.get() == r#""\u00e9\n""#));
    }

    #[test]
    fn names_are_checked() {
        let (id, code, msg) = err(r#"{"type":"login","from":"-x","id":9}"#);
        assert_eq!((id.as_deref(), code), (Some("9"), ErrorCode::InvalidName));
        assert_eq!(
            msg,
            "name starts with '-'; a name may not start with - or ."
        );
        let (_, code, _) = err(r#"{"type":"login","from":"*"}"#);
        assert_eq!(code, ErrorCode::InvalidName);
        let (_, code, _) = err(r#"{"type":"msg","to":"a b","body":"x"}"#);
        assert_eq!(code, ErrorCode::InvalidName);
        let (_, code, _) = err(r#"{"type":"msg","to":"","body":"x"}"#);
        assert_eq!(code, ErrorCode::InvalidName);
    }

    #[test]
    fn large_integer_and_string_ids_are_kept_raw() {
        let p = ok(r#"{"type":"ping","id":18446744073709551615}"#);
        assert_eq!(p.id.unwrap().get(), "18446744073709551615");
        let p = ok(r#"{"type":"ping","id":-3}"#);
        assert_eq!(p.id.unwrap().get(), "-3");
        let p = ok(r#"{"type":"ping","id":"\u0041"}"#);
        assert_eq!(p.id.unwrap().get(), r#""\u0041""#);
    }

    /// Integers up to 18 digits are taken without converting them; longer ones must fit
    /// in 64 bits, signed or not.
    #[test]
    fn an_integer_id_fits_in_64_bits_at_every_length() {
        for id in [
            "0",
            "-0",
            "999999999999999999",
            "-999999999999999999",
            "1000000000000000000",
            "-9223372036854775808",
            "18446744073709551615",
        ] {
            let line = format!(r#"{{"type":"ping","id":{id}}}"#);
            assert_eq!(ok(&line).id.unwrap().get(), id);
        }
        for id in [
            "-9223372036854775809",
            "18446744073709551616",
            "1000000000000000000000",
        ] {
            let line = format!(r#"{{"type":"ping","id":{id}}}"#);
            let (_, code, message) = err(&line);
            assert_eq!(code, ErrorCode::BadRequest, "{id}");
            assert_eq!(message, "`id` must be a string or an integer", "{id}");
        }
    }
}
