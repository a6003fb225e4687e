//! Reassembly for the wires whose frames are not just lines: a NATS `MSG` and a Redis reply
//! announce a length, and a frame may end anywhere in a read.
//!
//! A parser is a pure function from the front of a buffer to [`Parsed`]: a complete frame and
//! its size, "need more bytes", or a stream that cannot be read. [`Reassembler`] feeds it what
//! each read returned. Frames wholly inside one read are parsed where they lie and copy
//! nothing; only the unfinished tail of a read is kept, to be completed by the next ones (the
//! same idea as proto's `LineDecoder`).

use super::Incoming;

/// What a parser found at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// The frame is not complete yet.
    Need,
    /// A frame, and how many bytes it took.
    Frame(Incoming<'a>, usize),
    /// The bytes are not this protocol: the connection cannot go on.
    Bad(&'static str),
}

/// Keeps the unfinished tail of a stream of frames. See the module docs.
#[derive(Debug)]
pub struct Reassembler {
    pending: Vec<u8>,
    /// Longest unfinished frame kept before giving up on the stream.
    max: usize,
}

/// Above this capacity an emptied tail buffer is freed (an idle connection keeps none).
const KEEP_CAPACITY: usize = 4096;

impl Reassembler {
    pub fn new(max: usize) -> Reassembler {
        Reassembler {
            pending: Vec::new(),
            max,
        }
    }

    /// Feeds one read; calls `on` for every frame it completes. An error means the stream
    /// broke the protocol (or a frame outgrew `max`) and the connection should end.
    pub fn feed(
        &mut self,
        input: &[u8],
        parse: impl Fn(&[u8]) -> Parsed<'_>,
        mut on: impl FnMut(Incoming<'_>),
    ) -> Result<(), &'static str> {
        if self.pending.is_empty() {
            let used = each(input, &parse, &mut on)?;
            self.pending.extend_from_slice(&input[used..]);
        } else {
            self.pending.extend_from_slice(input);
            let used = each(&self.pending, &parse, &mut on)?;
            self.pending.drain(..used);
            if self.pending.is_empty() && self.pending.capacity() > KEEP_CAPACITY {
                self.pending = Vec::new();
            }
        }
        if self.pending.len() > self.max {
            return Err("a frame is longer than the bench accepts");
        }
        Ok(())
    }
}

/// Parses every complete frame of `buf`; returns how many bytes they took.
fn each(
    buf: &[u8],
    parse: &impl Fn(&[u8]) -> Parsed<'_>,
    on: &mut impl FnMut(Incoming<'_>),
) -> Result<usize, &'static str> {
    let mut at = 0;
    while at < buf.len() {
        match parse(&buf[at..]) {
            Parsed::Need => break,
            Parsed::Frame(ev, n) => {
                on(ev);
                at += n;
            }
            Parsed::Bad(why) => return Err(why),
        }
    }
    Ok(at)
}

/// The line at the front of `buf` without its `\n` (and a `\r` before it), and the bytes it
/// takes with its terminator; `None` until the `\n` has arrived.
pub fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = memchr::memchr(b'\n', buf)?;
    let text = &buf[..end];
    Some((text.strip_suffix(b"\r").unwrap_or(text), end + 1))
}

/// What `parse` makes of a stream that arrives in `parts`, each event as its `Debug` text.
#[cfg(test)]
pub fn events(
    parse: fn(&[u8]) -> Parsed<'_>,
    parts: &[&[u8]],
) -> Result<Vec<String>, &'static str> {
    let mut r = Reassembler::new(1 << 20);
    let mut seen = Vec::new();
    for p in parts {
        r.feed(p, parse, |ev| seen.push(format!("{ev:?}")))?;
    }
    Ok(seen)
}

/// Checks that `stream` gives `expected` whole, cut in two at every byte, and a byte a read.
#[cfg(test)]
pub fn check_every_split(parse: fn(&[u8]) -> Parsed<'_>, stream: &[u8], expected: &[&str]) {
    let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        events(parse, &[stream]),
        Ok(expected.clone()),
        "in one read"
    );
    for cut in 0..stream.len() {
        let parts = [&stream[..cut], &stream[cut..]];
        assert_eq!(events(parse, &parts), Ok(expected.clone()), "cut at {cut}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(events(parse, &bytes), Ok(expected), "a byte a read");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy protocol: a digit N, then N bytes of payload, which must be a bench body.
    fn toy(buf: &[u8]) -> Parsed<'_> {
        let Some(&d) = buf.first() else {
            return Parsed::Need;
        };
        if !d.is_ascii_digit() {
            return Parsed::Bad("not a digit");
        }
        let n = usize::from(d - b'0');
        if buf.len() < 1 + n {
            return Parsed::Need;
        }
        Parsed::Frame(Incoming::Error { code: "toy" }, 1 + n)
    }

    fn count(r: &mut Reassembler, input: &[u8]) -> Result<usize, &'static str> {
        let mut n = 0;
        r.feed(input, toy, |_| n += 1)?;
        Ok(n)
    }

    #[test]
    fn frames_split_across_reads_are_completed() {
        let mut r = Reassembler::new(100);
        assert_eq!(count(&mut r, b"3ab"), Ok(0));
        assert_eq!(count(&mut r, b"c2"), Ok(1));
        assert_eq!(count(&mut r, b"x"), Ok(0));
        assert_eq!(count(&mut r, b"y0"), Ok(2));
        assert!(r.pending.is_empty());
    }

    #[test]
    fn several_frames_in_one_read_each_come_out() {
        let mut r = Reassembler::new(100);
        assert_eq!(count(&mut r, b"1a2bc0"), Ok(3));
    }

    #[test]
    fn a_broken_stream_or_an_endless_frame_is_an_error() {
        let mut r = Reassembler::new(100);
        assert!(count(&mut r, b"1ax").is_err());
        let mut small = Reassembler::new(3);
        assert!(count(&mut small, b"9abcd").is_err());
    }

    #[test]
    fn lines_end_at_lf_with_or_without_cr() {
        assert_eq!(line(b"PING\r\nx"), Some((&b"PING"[..], 6)));
        assert_eq!(line(b"+\nx"), Some((&b"+"[..], 2)));
        assert_eq!(line(b"PIN"), None);
    }
}
