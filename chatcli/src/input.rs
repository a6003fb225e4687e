//! The lines a scripted sender sends: stdin streamed through a capped decoder, or one `-m`
//! message.
//!
//! Stdin is read in fixed chunks and framed by `proto`'s [`LineDecoder`], so memory stays
//! bounded whatever is piped in: a line longer than `--max-line-bytes` is reported as such and
//! skipped without being stored. Line numbers count every line, empty ones included, so they
//! match what `nl -ba` or an editor shows.

use proto::codec::{Frame, LineDecoder};
use std::collections::VecDeque;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// One input line, numbered from 1.
#[derive(Debug, PartialEq, Eq)]
pub struct Numbered {
    pub line: u64,
    pub content: Content,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Content {
    Text(String),
    /// Longer than the limit; skipped.
    TooLong,
    /// Not UTF-8, so it cannot be a JSON string; skipped.
    NotUtf8,
}

/// Where the lines come from.
pub enum Source<R> {
    Stream(Lines<R>),
    /// `-m TEXT`: one message, taken once.
    One(Option<String>),
}

impl<R: AsyncRead + Unpin> Source<R> {
    /// The next line, waiting for input if needed; `None` at the end. Cancel-safe.
    pub async fn next(&mut self) -> io::Result<Option<Numbered>> {
        match self {
            Source::Stream(lines) => lines.next().await,
            Source::One(_) => Ok(self.try_next()),
        }
    }

    /// A line that is already at hand, without waiting.
    pub fn try_next(&mut self) -> Option<Numbered> {
        match self {
            Source::Stream(lines) => lines.ready.pop_front(),
            Source::One(msg) => msg.take().map(|text| Numbered {
                line: 1,
                content: Content::Text(text),
            }),
        }
    }
}

/// Lines of a byte stream, at most `max` bytes each.
pub struct Lines<R> {
    reader: R,
    decoder: LineDecoder,
    /// Lines decoded from the last chunk; at most one chunk's worth.
    ready: VecDeque<Numbered>,
    numbered: u64,
    eof: bool,
}

/// Bytes read from stdin at a time.
const CHUNK: usize = 64 * 1024;

impl<R: AsyncRead + Unpin> Lines<R> {
    pub fn new(reader: R, max: usize) -> Lines<R> {
        Lines {
            reader,
            decoder: LineDecoder::new(max),
            ready: VecDeque::new(),
            numbered: 0,
            eof: false,
        }
    }

    /// Cancel-safe: the only await is one `read`, and decoded lines wait in `ready`.
    pub async fn next(&mut self) -> io::Result<Option<Numbered>> {
        let mut chunk = vec![0u8; CHUNK];
        loop {
            if let Some(l) = self.ready.pop_front() {
                return Ok(Some(l));
            }
            if self.eof {
                return Ok(None);
            }
            let n = self.reader.read(&mut chunk).await?;
            if n == 0 {
                self.eof = true;
                // A last line without its newline is still a line; at a boundary this adds an
                // empty line, which nobody sends.
                self.decode(b"\n");
            } else {
                self.decode(&chunk[..n]);
            }
        }
    }

    fn decode(&mut self, bytes: &[u8]) {
        let (ready, numbered) = (&mut self.ready, &mut self.numbered);
        self.decoder.feed(bytes, |frame| {
            *numbered += 1;
            let content = match frame {
                Frame::Line(l) => match std::str::from_utf8(l) {
                    Ok(s) => Content::Text(s.to_owned()),
                    Err(_) => Content::NotUtf8,
                },
                Frame::TooLong => Content::TooLong,
            };
            ready.push_back(Numbered {
                line: *numbered,
                content,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], max: usize) -> Vec<Numbered> {
        let mut src = Source::Stream(Lines::new(input, max));
        let mut out = Vec::new();
        while let Some(l) = src.next().await.unwrap() {
            out.push(l);
        }
        out
    }

    fn text(line: u64, s: &str) -> Numbered {
        Numbered {
            line,
            content: Content::Text(s.to_owned()),
        }
    }

    #[tokio::test]
    async fn lines_are_numbered_and_the_last_needs_no_newline() {
        let got = all(b"a\r\n\nb", 10).await;
        assert_eq!(got, vec![text(1, "a"), text(2, ""), text(3, "b")]);
    }

    #[tokio::test]
    async fn a_trailing_newline_adds_only_an_empty_line() {
        let got = all(b"a\n", 10).await;
        assert_eq!(got, vec![text(1, "a"), text(2, "")]);
    }

    #[tokio::test]
    async fn long_and_binary_lines_are_flagged_not_stored() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\n\xff\nok\n");
        let got = all(&input, 10).await;
        assert_eq!(got[0].content, Content::TooLong);
        assert_eq!(got[1].content, Content::NotUtf8);
        assert_eq!(got[2], text(3, "ok"));
    }

    #[tokio::test]
    async fn one_message_is_taken_once() {
        let mut src: Source<&[u8]> = Source::One(Some("hi".into()));
        assert_eq!(src.next().await.unwrap(), Some(text(1, "hi")));
        assert_eq!(src.next().await.unwrap(), None);
    }
}
