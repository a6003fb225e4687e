//! A line-framed connection over any byte stream: plain TCP, TLS, the admin channel's Unix
//! socket.
//!
//! [`Connection`] owns the stream, the line decoder, the output buffer with its high-water
//! mark, the request lines deferred past that mark, and the lingering close. It offers what a
//! session needs: serve the next batch of lines ([`Connection::poll_serve`]), write a reply
//! into [`Connection::out`], flush ([`Connection::poll_write`]) and close with a last line (a
//! `bye`, [`Connection::close`]). What a line means is the [`Handler`]'s business.
//!
//! Idle connections are most connections, so one holds no buffer while idle: a read goes
//! into a stack buffer inside one synchronous poll and every complete line is served from
//! there without a copy; the output buffer is given back whenever it empties. Past the
//! high-water mark nothing more is read and further lines of the same read wait, copied, in
//! order, so memory per connection stays bounded and a client that does not read its replies
//! slows only itself.

use proto::codec::{Frame, LineDecoder};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Output bytes pending before the connection stops reading requests (and its session stops
/// taking queued lines).
pub const OUT_HIGH_WATER: usize = 64 * 1024;
/// What an empty output buffer reserves when a batch starts: room for a few dozen replies.
const OUT_INITIAL: usize = 2048;
/// One read's stack buffer.
const READ_CHUNK: usize = 16 * 1024;
/// Reads per wake-up before the connection lets its output and other tasks have a turn.
const READS_PER_WAKE: usize = 4;
/// The most one [`Connection::poll_serve`] reads: a read of this much means more is likely
/// waiting, and the session then yields its worker before reading again.
pub const READ_PER_TURN: usize = READ_CHUNK * READS_PER_WAKE;
/// Reads of discarded input per poll while lingering, so a client that keeps sending cannot
/// hold a worker.
const DISCARDS_PER_POLL: usize = 16;

/// What a connection's lines mean: implemented by the chat session and the admin channel.
pub trait Handler {
    /// What the lines of one read share while they are served (a clock read once, counts
    /// added up once). It lives on the stack of the read, not in the connection's state.
    type Batch;
    /// A read brought `bytes` bytes: the batch of its lines starts, and may first write into
    /// `out` what must come before their answers.
    fn begin_batch(&mut self, bytes: usize, out: &mut Vec<u8>) -> Self::Batch;
    /// Serves one line, or a line longer than `max` (which was discarded), writing any reply
    /// into `out`.
    fn frame(&mut self, batch: &mut Self::Batch, frame: Frame<'_>, max: usize, out: &mut Vec<u8>);
    /// Every line of the batch is served: finish what was gathered over them.
    fn end_batch(&mut self, _batch: Self::Batch, _out: &mut Vec<u8>) {}
    /// False once the handler takes no more lines (it is closing); the rest are dropped.
    fn open(&self) -> bool {
        true
    }
    /// True while the handler holds an answer back: later lines wait, in order, and nothing
    /// more is read.
    fn paused(&self) -> bool {
        false
    }
}

/// Ignores every line: for input that is read only to notice the peer leaving.
impl Handler for () {
    type Batch = ();
    fn begin_batch(&mut self, _: usize, _: &mut Vec<u8>) {}
    fn frame(&mut self, _: &mut (), _: Frame<'_>, _: usize, _: &mut Vec<u8>) {}
}

/// What [`Connection::poll_serve`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// This many bytes were read and their complete lines served.
    Data(usize),
    /// The client closed its side; `mid_line` if it left a partial line (dropped).
    Eof { mid_line: bool },
}

/// What [`Connection::poll_io`] did.
#[derive(Debug)]
pub enum Io {
    /// Wrote all that was pending (or failed).
    Wrote(io::Result<()>),
    /// Read and served (or found the end, or failed).
    Read(io::Result<Read>),
}

/// Request lines read past the output buffer's high-water mark, in order; `None` stands for a
/// line that was too long. At most one read's worth, since nothing more is read while any
/// wait.
type Deferred = VecDeque<Option<Box<[u8]>>>;

pub struct Connection<S> {
    stream: S,
    decoder: LineDecoder,
    out: Vec<u8>,
    deferred: Option<Box<Deferred>>,
    /// Bytes were handed to the stream since its last flush (TLS buffers records).
    unflushed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// A connection whose request lines may be up to `max_line` bytes.
    pub fn new(stream: S, max_line: usize) -> Connection<S> {
        Connection {
            stream,
            decoder: LineDecoder::new(max_line),
            out: Vec::new(),
            deferred: None,
            unflushed: false,
        }
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Where replies and queued lines go; written by [`Connection::poll_write`].
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// True while the output buffer is under its high-water mark.
    pub fn has_room(&self) -> bool {
        self.out.len() < OUT_HIGH_WATER
    }

    /// True when reading more would not outrun the client: room for output and nothing
    /// deferred.
    pub fn wants_read(&self) -> bool {
        self.has_room() && self.deferred.is_none()
    }

    /// True while something waits to be written (or flushed).
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.unflushed
    }

    /// True while lines read past the high-water mark wait to be served.
    pub fn has_deferred(&self) -> bool {
        self.deferred.is_some()
    }

    /// True when deferred lines can be served now.
    pub fn can_serve_deferred(&self) -> bool {
        self.deferred.is_some() && self.has_room()
    }

    /// Reads what the stream has (a bounded amount) and serves every complete line in it.
    /// Pending when nothing could be read.
    pub fn poll_serve(
        &mut self,
        cx: &mut Context<'_>,
        h: &mut impl Handler,
    ) -> Poll<io::Result<Read>> {
        // Uninitialised: zeroing 16 KiB on every wake-up would cost more than most reads.
        let mut buf = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut total = 0;
        for _ in 0..READS_PER_WAKE {
            let mut rb = ReadBuf::uninit(&mut buf);
            match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The end is reported by the next poll (a closed stream stays closed), so
                // that what was read before it is accounted first.
                Poll::Ready(Ok(())) if rb.filled().is_empty() && total > 0 => break,
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    let mid_line = !self.decoder.at_boundary();
                    return Poll::Ready(Ok(Read::Eof { mid_line }));
                }
                Poll::Ready(Ok(())) => {
                    total += rb.filled().len();
                    self.serve_bytes(rb.filled(), h);
                    if !h.open() || !self.wants_read() || h.paused() {
                        break;
                    }
                }
            }
        }
        if total == 0 {
            Poll::Pending
        } else {
            Poll::Ready(Ok(Read::Data(total)))
        }
    }

    fn serve_bytes(&mut self, data: &[u8], h: &mut impl Handler) {
        if self.out.capacity() == 0 {
            // One allocation for this batch's replies instead of a realloc per doubling.
            self.out.reserve(OUT_INITIAL);
        }
        let mut batch = h.begin_batch(data.len(), &mut self.out);
        let max = self.decoder.max();
        let (out, deferred) = (&mut self.out, &mut self.deferred);
        self.decoder.feed(data, |frame| {
            if !h.open() {
                // Lines after `logout` (or a close) in the same read are not served.
                return;
            }
            if out.len() >= OUT_HIGH_WATER || deferred.is_some() || h.paused() {
                // One read can hold hundreds of requests with large replies (`users` on a big
                // server): past the mark the rest wait for the client to read.
                let line = match frame {
                    Frame::Line(line) => Some(line.into()),
                    Frame::TooLong => None,
                };
                deferred.get_or_insert_default().push_back(line);
                return;
            }
            h.frame(&mut batch, frame, max, out);
        });
        h.end_batch(batch, &mut self.out);
    }

    /// Serves the lines deferred by [`Connection::poll_serve`], in order, while the output
    /// buffer has room.
    pub fn serve_deferred(&mut self, h: &mut impl Handler) {
        let max = self.decoder.max();
        let mut batch = h.begin_batch(0, &mut self.out);
        while self.has_room() && h.open() && !h.paused() {
            let Some(deferred) = &mut self.deferred else {
                break;
            };
            let line = deferred.pop_front();
            if deferred.is_empty() {
                self.deferred = None;
            }
            match line {
                Some(Some(line)) => h.frame(&mut batch, Frame::Line(&line), max, &mut self.out),
                Some(None) => h.frame(&mut batch, Frame::TooLong, max, &mut self.out),
                None => break,
            }
        }
        if !h.open() {
            self.deferred = None;
        }
        h.end_batch(batch, &mut self.out);
    }

    /// Writes pending output until it is all written (Ready) or the stream is full (Pending),
    /// telling `written` each amount written.
    pub fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        mut written: impl FnMut(usize),
    ) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    written(n);
                    self.unflushed = true;
                    if n == self.out.len() {
                        // Give the buffer back: an idle connection should hold no output
                        // memory, and the next burst's allocation costs far less than the
                        // write that follows.
                        self.out = Vec::new();
                    } else {
                        self.out.drain(..n);
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.unflushed {
            std::task::ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// One turn of a connection's I/O: writes pending output, then, if `read` and there is
    /// room, serves what the stream has. Ready with the first that made progress or failed.
    pub fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        read: bool,
        h: &mut impl Handler,
        written: impl FnMut(usize),
    ) -> Poll<Io> {
        if self.wants_write()
            && let Poll::Ready(r) = self.poll_write(cx, written)
        {
            return Poll::Ready(Io::Wrote(r));
        }
        if read && self.wants_read() {
            return self.poll_serve(cx, h).map(Io::Read);
        }
        Poll::Pending
    }

    /// Writes everything pending, waiting for the stream as needed.
    pub async fn write_all(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write(cx, |_| {})).await
    }

    /// Ends the connection gracefully, all within `within`: writes what is pending (the last
    /// lines, a `bye`), sends our end of the stream, then discards what the client still
    /// sends until it closes too. Closing with unread input would make the kernel reset the
    /// connection and could destroy those last lines before the client reads them.
    pub async fn close(&mut self, within: Duration) {
        let _ = tokio::time::timeout(within, async {
            if self.write_all().await.is_ok()
                && poll_fn(|cx| Pin::new(&mut self.stream).poll_shutdown(cx))
                    .await
                    .is_ok()
            {
                poll_fn(|cx| self.poll_discard(cx)).await;
            }
        })
        .await;
    }

    /// Reads and drops input; Ready once the client closed or the stream failed.
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut sink = [MaybeUninit::<u8>::uninit(); 4096];
        for _ in 0..DISCARDS_PER_POLL {
            let mut rb = ReadBuf::uninit(&mut sink);
            match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if !rb.filled().is_empty() => {}
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
