//! The fast path of the request parser: a scanner for the shape nearly every request has.
//!
//! A request is almost always one flat JSON object whose values are plain strings (no
//! backslash), integers, `true`, `false` or `null`. For that shape this scanner finds each
//! field's raw text in one pass over the bytes, several times faster than serde_json. It is a
//! strict subset of JSON: the moment it meets anything else (an escape, a control character,
//! a nested value, a fraction or exponent, a repeated known key, trailing text), it gives up
//! and returns false, and [`crate::request`] falls back to serde_json, which accepts or
//! rejects the line and words the error. So the scanner never has to be right about a line
//! it cannot read, only about the lines it accepts, and a test holds it to serde's answers.

use crate::request::{Fields, Raw};

/// The known fields of a flat request object, filled into `f`; false to let serde_json
/// decide (`f` is then to be ignored). Filled in place where the caller keeps it, rather than
/// built here and moved: the move cost more than scanning a short request.
#[inline]
pub(crate) fn fields_into<'a>(text: &'a str, f: &mut Fields<'a>) -> bool {
    scan(text, f).is_some()
}

fn scan<'a>(text: &'a str, f: &mut Fields<'a>) -> Option<()> {
    let b = text.as_bytes();
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    let mut seen = 0u8;
    if b.get(i) == Some(&b'}') {
        return (ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        let (key_start, key_end) = key(b, i)?;
        i = ws(b, key_end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        let value_end = value(b, i)?;
        let raw = Raw::trusted(&text[i..value_end]);
        let known = match &b[key_start + 1..key_end] {
            b"type" => Some((0, &mut f.kind)),
            b"id" => Some((1, &mut f.id)),
            b"from" => Some((2, &mut f.from)),
            b"to" => Some((3, &mut f.to)),
            b"body" => Some((4, &mut f.body)),
            b"password" => Some((5, &mut f.password)),
            _ => None,
        };
        if let Some((bit, slot)) = known {
            if seen & (1 << bit) != 0 {
                // A repeated field: serde reports it.
                return None;
            }
            seen |= 1 << bit;
            // As with serde's Option, null is the same as absent.
            *slot = (raw.get() != "null").then_some(raw);
        }
        i = ws(b, value_end);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => return (ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

/// Skips JSON white space.
fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A key starting at `i`: its quotes' positions. The protocol's own keys are recognised by
/// comparing them whole; only other keys are scanned as strings.
#[inline]
fn key(b: &[u8], i: usize) -> Option<(usize, usize)> {
    const KNOWN: [&[u8]; 6] = [
        b"\"type\"",
        b"\"to\"",
        b"\"body\"",
        b"\"id\"",
        b"\"from\"",
        b"\"password\"",
    ];
    let rest = b.get(i..)?;
    for k in KNOWN {
        if rest.starts_with(k) {
            return Some((i, i + k.len() - 1));
        }
    }
    string(b, i)
}

/// A string starting at `i` with no escape and no control character: its quotes' positions.
#[inline]
fn string(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let end = special(b, i + 1)?;
    (b[end] == b'"').then_some((i, end))
}

/// The first quote, backslash or control character at or after `i`. One pass for all three,
/// eight bytes at a time: most strings are a few dozen bytes, too short for memchr's vectors
/// to pay for their set-up, and a body must be checked for all three anyway.
#[inline]
fn special(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte of `x` below `n` (exact for the first such byte; a borrow
    // may also flag later bytes, which are never looked at).
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * n as u64) & !x & HIGH;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let found = below(w ^ (ONES * b'"' as u64), 1)
            | below(w ^ (ONES * b'\\' as u64), 1)
            | below(w, 0x20);
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|at| i + at)
}

/// A plain string, an integer or a literal starting at `i`: the index just past it.
#[inline]
fn value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string(b, i).map(|(_, end)| end + 1),
        b'-' | b'0'..=b'9' => integer(b, i),
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        _ => None,
    }
}

/// `-?(0|[1-9][0-9]*)` followed by something that cannot continue a number.
fn integer(b: &[u8], mut i: usize) -> Option<usize> {
    if b[i] == b'-' {
        i += 1;
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => {
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        _ => return None,
    }
    // A fraction or an exponent (or a leading zero followed by digits) is for serde.
    match b.get(i) {
        Some(b'.' | b'e' | b'E' | b'0'..=b'9') => None,
        _ => Some(i),
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    (b.get(i..end)? == word).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Option<Fields<'_>> {
        let mut f = Fields::default();
        fields_into(text, &mut f).then_some(f)
    }

    /// serde's reading of the same text, for comparison.
    fn by_serde(text: &str) -> Option<Fields<'_>> {
        crate::request::fields_by_serde(text).ok()
    }

    #[test]
    fn reads_the_usual_requests_as_serde_does() {
        for line in [
            r#"{"type":"msg","to":"bob","body":"hi there","id":12}"#,
            r#"{"type":"login","from":"alice","id":"x-1"}"#,
            r#" { "type" : "ping" , "id" : -9223372036854775808 } "#,
            r#"{"type":"ping","id":18446744073709551615}"#,
            r#"{"type":"msg","to":"*","body":"","from":"a","extra":true,"more":null,"n":0}"#,
            r#"{"type":"users","id":null}"#,
            "{\"type\":\"msg\",\"to\":\"b\",\"body\":\"h\u{e9}llo \u{1f389}\"}",
            r#"{}"#,
            r#"{"body":"only"}"#,
        ] {
            let fast = fields(line).unwrap_or_else(|| panic!("fast path refused {line}"));
            assert_eq!(Some(fast), by_serde(line), "{line}");
        }
    }

    #[test]
    fn gives_up_on_everything_else() {
        for line in [
            r#"{"type":"msg","body":"a \"quote\""}"#,
            r#"{"type":"msg","body":"tab	inside"}"#,
            r#"{"type":"ping","id":1.5}"#,
            r#"{"type":"ping","id":1e3}"#,
            r#"{"type":"ping","id":01}"#,
            r#"{"type":"ping","id":-}"#,
            r#"{"type":"ping","x":{"nested":1}}"#,
            r#"{"type":"ping","x":[1,2]}"#,
            r#"{"type":"ping","type":"ping"}"#,
            r#"{"id":null,"type":"ping","id":1}"#,
            r#"{"type":"ping"} trailing"#,
            r#"{"type":"ping",}"#,
            r#"{"type":"ping""#,
            r#"{"ty\u0070e":"ping"}"#,
            r#"{"type":tru}"#,
            r#"["type","ping"]"#,
            "{\"type\":\"ping\"}\u{c}",
        ] {
            assert_eq!(fields(line), None, "{line}");
        }
    }

    #[test]
    fn finds_the_first_special_byte_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                for special_byte in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    // Bytes that are close to the special ones, around the one that is.
                    let mut b: Vec<u8> = (0..len)
                        .map(|k| [b'!', b'#', b'[', b']', 0x20, 0x7f, 0xe9][k % 7])
                        .collect();
                    let want = (at < len).then(|| {
                        b[at] = special_byte;
                        at
                    });
                    if at + 1 < len {
                        b[at + 1] = b'"';
                    }
                    assert_eq!(special(&b, 0), want, "{b:?}");
                }
            }
        }
    }

    #[test]
    fn unknown_keys_may_repeat_as_serde_allows() {
        let line = r#"{"x":1,"x":2,"type":"ping"}"#;
        assert_eq!(fields(line), by_serde(line));
    }

    #[test]
    fn every_truncation_of_a_request_is_refused_or_read_like_serde() {
        let line = r#"{"type":"msg","to":"bob","body":"hi","id":123,"ok":false}"#;
        for end in 0..=line.len() {
            let cut = &line[..end];
            if let Some(fast) = fields(cut) {
                assert_eq!(Some(fast), by_serde(cut), "{cut}");
            }
        }
    }

    /// Mutates valid requests a byte at a time (deterministically) and checks that whenever
    /// the fast path accepts a line, serde reads exactly the same fields from it.
    #[test]
    fn mutated_requests_are_refused_or_read_like_serde() {
        let corpus = [
            r#"{"type":"msg","to":"bob","body":"hi 1","id":42}"#,
            r#"{ "type" : "login" , "from" : "al" , "password" : "pw" , "x" : -0 }"#,
            r#"{"type":"ping","id":"p","n":null,"t":true,"f":false}"#,
        ];
        let alphabet = b"{}[]:,\"-+.0123456789eEtrufalsn \t\nabyp\x01\xc3\xa9";
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut accepted, mut tried) = (0, 0);
        for base in corpus {
            for _ in 0..20_000 {
                let mut bytes = base.as_bytes().to_vec();
                for _ in 0..1 + next() % 3 {
                    let at = (next() % (bytes.len() as u64 + 1)) as usize;
                    let c = alphabet[(next() % alphabet.len() as u64) as usize];
                    match next() % 3 {
                        0 if at < bytes.len() => bytes[at] = c,
                        1 if at < bytes.len() => {
                            bytes.remove(at);
                        }
                        _ => bytes.insert(at, c),
                    }
                }
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    continue;
                };
                tried += 1;
                if let Some(fast) = fields(text) {
                    accepted += 1;
                    assert_eq!(Some(fast), by_serde(text), "{text:?}");
                }
            }
        }
        // the property is only worth something if both outcomes happen often
        assert!(
            accepted > 1000 && tried - accepted > 1000,
            "{accepted} of {tried}"
        );
    }
}
