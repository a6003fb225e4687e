//! Newline framing with a hard cap on line size.
//!
//! [`LineDecoder`] is fed whatever bytes a read returned and hands back each complete line as
//! a [`Frame`]. A line wholly inside one chunk is lent straight from that chunk, so the common
//! case copies nothing; only the unfinished tail of a chunk is kept, and never more than
//! `max + 1` bytes of it (the extra byte is a possible `\r` before the `\n`). A line longer
//! than `max` yields one [`Frame::TooLong`] as soon as it is known to be too long, and the rest
//! of it is skipped without being stored. Nothing here is an error: over-long lines are items,
//! so a caller keeps serving the connection (tokio-util's `FramedRead` would end the stream).
//!
//! The limit counts the bytes of the line without its terminator (`\n` or `\r\n`).

/// One framed line, or the news that a line was over the limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line without its `\n` and without a `\r` just before it.
    Line(&'a [u8]),
    /// A line longer than the limit; it has been (or will be) skipped up to its `\n`.
    TooLong,
}

/// Splits a byte stream into lines of at most `max` bytes. See the module docs.
#[derive(Debug)]
pub struct LineDecoder {
    max: usize,
    /// The start of a line whose `\n` has not arrived yet.
    partial: Vec<u8>,
    /// Inside an over-long line, skipping up to its `\n`.
    discarding: bool,
}

/// Above this capacity an emptied `partial` buffer is freed, so an idle connection holds no
/// read buffer after one large line.
const KEEP_CAPACITY: usize = 4096;

impl LineDecoder {
    pub fn new(max: usize) -> LineDecoder {
        LineDecoder {
            max,
            partial: Vec::new(),
            discarding: false,
        }
    }

    /// The line limit, in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes held for an unfinished line (at most `max + 1`).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// True when the stream ended at a line boundary: no unfinished line is pending.
    pub fn at_boundary(&self) -> bool {
        self.partial.is_empty() && !self.discarding
    }

    /// Feeds one chunk; calls `on_frame` for each line (or over-long line) it completes.
    pub fn feed(&mut self, mut chunk: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        while !chunk.is_empty() {
            let newline = memchr::memchr(b'\n', chunk);
            if self.discarding {
                match newline {
                    Some(i) => {
                        self.discarding = false;
                        chunk = &chunk[i + 1..];
                        continue;
                    }
                    None => return,
                }
            }
            match newline {
                Some(i) => {
                    let (head, rest) = (&chunk[..i], &chunk[i + 1..]);
                    chunk = rest;
                    if self.partial.is_empty() {
                        on_frame(self.frame(head));
                    } else {
                        let mut line = std::mem::take(&mut self.partial);
                        line.extend_from_slice(head);
                        on_frame(self.frame(&line));
                        line.clear();
                        if line.capacity() <= KEEP_CAPACITY {
                            self.partial = line;
                        }
                    }
                }
                None => {
                    let len = self.partial.len() + chunk.len();
                    let ends_in_cr = chunk.last() == Some(&b'\r');
                    if len > self.max + 1 || (len == self.max + 1 && !ends_in_cr) {
                        self.partial = Vec::new();
                        self.discarding = true;
                        on_frame(Frame::TooLong);
                    } else {
                        self.partial.extend_from_slice(chunk);
                    }
                    return;
                }
            }
        }
    }

    fn frame<'a>(&self, line: &'a [u8]) -> Frame<'a> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.max {
            Frame::TooLong
        } else {
            Frame::Line(line)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Owned {
        Line(Vec<u8>),
        TooLong,
    }
    use Owned::*;

    fn run(max: usize, chunks: &[&[u8]]) -> (Vec<Owned>, LineDecoder) {
        let mut d = LineDecoder::new(max);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, |f| {
                out.push(match f {
                    Frame::Line(l) => Line(l.to_vec()),
                    Frame::TooLong => TooLong,
                })
            });
            assert!(d.buffered() <= max + 1, "buffered {} > max+1", d.buffered());
        }
        (out, d)
    }

    fn l(s: &str) -> Owned {
        Line(s.as_bytes().to_vec())
    }

    #[test]
    fn two_lines_in_one_read() {
        let (out, d) = run(100, &[b"ab\ncd\n"]);
        assert_eq!(out, vec![l("ab"), l("cd")]);
        assert!(d.at_boundary());
    }

    #[test]
    fn a_line_split_across_reads_byte_by_byte() {
        let input = b"hello\nworld\n";
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        let (out, _) = run(100, &chunks);
        assert_eq!(out, vec![l("hello"), l("world")]);
    }

    #[test]
    fn crlf_is_stripped_and_a_lone_cr_inside_is_kept() {
        let (out, _) = run(100, &[b"a\r\nb\rc\n\r\n"]);
        assert_eq!(out, vec![l("a"), l("b\rc"), l("")]);
    }

    #[test]
    fn empty_lines_are_framed_for_the_caller_to_ignore() {
        let (out, _) = run(100, &[b"\n\n  \n"]);
        assert_eq!(out, vec![l(""), l(""), l("  ")]);
    }

    #[test]
    fn unfinished_tail_is_kept_until_its_newline() {
        let (out, d) = run(100, &[b"abc"]);
        assert!(out.is_empty());
        assert!(!d.at_boundary());
        assert_eq!(d.buffered(), 3);
    }

    #[test]
    fn exactly_at_the_limit_passes_one_over_does_not() {
        let at = "x".repeat(8);
        let over = "x".repeat(9);
        let (out, _) = run(8, &[format!("{at}\n{over}\n{at}\r\n").as_bytes()]);
        assert_eq!(out, vec![l(&at), TooLong, l(&at)]);
        // the same split across reads
        let (out, _) = run(8, &[at.as_bytes(), b"\r", b"\n", over.as_bytes(), b"\n"]);
        assert_eq!(out, vec![l(&at), TooLong]);
        let (out, _) = run(8, &["x".repeat(7).as_bytes(), b"\n"]);
        assert_eq!(out, vec![l(&"x".repeat(7))]);
    }

    #[test]
    fn over_long_line_is_reported_once_and_skipped_without_buffering() {
        let big = vec![b'y'; 10_000];
        let mut chunks: Vec<&[u8]> = big.chunks(1000).collect();
        chunks.push(b"tail\nnext\n");
        let (out, d) = run(64, &chunks);
        assert_eq!(out, vec![TooLong, l("next")]);
        assert!(d.at_boundary());
    }

    #[test]
    fn over_long_is_known_before_the_newline_arrives() {
        let (out, d) = run(4, &[b"abcdef"]);
        assert_eq!(out, vec![TooLong]);
        assert_eq!(d.buffered(), 0);
        assert!(!d.at_boundary());
    }

    #[test]
    fn a_cr_at_the_limit_waits_for_its_newline() {
        // "abcd\r" is 5 bytes with max 4: may still be "abcd" + CRLF
        let (out, d) = run(4, &[b"abcd\r"]);
        assert!(out.is_empty());
        assert_eq!(d.buffered(), 5);
        let (out, _) = run(4, &[b"abcd\r", b"x\n"]);
        assert_eq!(out, vec![TooLong]);
    }

    #[test]
    fn invalid_utf8_is_framed_as_bytes() {
        let (out, _) = run(10, &[b"\xff\xfe\n"]);
        assert_eq!(out, vec![Line(vec![0xff, 0xfe])]);
    }

    #[test]
    fn large_partial_buffer_is_released_after_use() {
        let big = vec![b'z'; 60_000];
        let mut d = LineDecoder::new(65536);
        d.feed(&big, |_| {});
        d.feed(b"\n", |f| {
            assert!(matches!(f, Frame::Line(l) if l.len() == 60_000))
        });
        assert_eq!(d.partial.capacity(), 0);
    }
}
