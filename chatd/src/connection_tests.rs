//! Unit tests of the connection over an in-memory stream (`tokio::io::duplex`), which is
//! neither TCP nor a socket: framing across reads, the high-water mark and its deferred
//! lines, the end of the stream, and the close that still delivers its last line.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

/// Records every line it is given and answers each with `reply_len` bytes.
#[derive(Default)]
struct Record {
    lines: Vec<String>,
    batches: usize,
    reply_len: usize,
}

impl Handler for Record {
    type Batch = ();
    fn begin_batch(&mut self, _: usize, _: &mut Vec<u8>) {
        self.batches += 1;
    }
    fn frame(&mut self, _: &mut (), frame: Frame<'_>, _: usize, out: &mut Vec<u8>) {
        self.lines.push(match frame {
            Frame::Line(l) => String::from_utf8_lossy(l).into_owned(),
            Frame::TooLong => "<too long>".into(),
        });
        out.resize(out.len() + self.reply_len, b'r');
    }
}

async fn serve(conn: &mut Connection<DuplexStream>, h: &mut Record) -> Read {
    poll_fn(|cx| conn.poll_serve(cx, h)).await.unwrap()
}

#[tokio::test]
async fn lines_are_served_across_reads_and_the_end_says_whether_a_line_was_cut() {
    let (mut client, server) = duplex(1 << 20);
    let mut conn = Connection::new(server, 16);
    let mut h = Record::default();
    client.write_all(b"one\ntwo\nthr").await.unwrap();
    assert_eq!(serve(&mut conn, &mut h).await, Read::Data(11));
    assert_eq!(h.lines, ["one", "two"]);
    client
        .write_all(b"ee\nthis line is far too long\nfour")
        .await
        .unwrap();
    serve(&mut conn, &mut h).await;
    assert_eq!(h.lines, ["one", "two", "three", "<too long>"]);
    drop(client);
    assert_eq!(serve(&mut conn, &mut h).await, Read::Eof { mid_line: true });
}

#[tokio::test]
async fn past_the_high_water_mark_lines_wait_in_order_until_the_client_reads() {
    let (mut client, server) = duplex(1 << 20);
    let mut conn = Connection::new(server, 1024);
    let mut h = Record {
        reply_len: OUT_HIGH_WATER / 2,
        ..Record::default()
    };
    client.write_all(b"a\nb\nc\nd\n").await.unwrap();
    serve(&mut conn, &mut h).await;
    assert_eq!(h.lines, ["a", "b"], "two replies reach the mark");
    assert!(!conn.wants_read() && !conn.can_serve_deferred());
    let mut written = 0;
    poll_fn(|cx| conn.poll_write(cx, |n| written += n))
        .await
        .unwrap();
    assert_eq!(written, OUT_HIGH_WATER);
    assert!(conn.can_serve_deferred());
    conn.serve_deferred(&mut h);
    assert_eq!(h.lines, ["a", "b", "c", "d"]);
    let mut got = vec![0; written];
    client.read_exact(&mut got).await.unwrap();
    poll_fn(|cx| conn.poll_write(cx, |n| written += n))
        .await
        .unwrap();
    assert_eq!(written, 2 * OUT_HIGH_WATER);
    assert!(conn.wants_read(), "nothing waits any more");
}

#[tokio::test]
async fn close_writes_the_last_line_then_ends_the_stream() {
    let (mut client, server) = duplex(64);
    let mut conn = Connection::new(server, 1024);
    conn.out().extend_from_slice(b"{\"type\":\"bye\"}\n");
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        got
    });
    conn.close(Duration::from_secs(10)).await;
    drop(conn);
    assert_eq!(reader.await.unwrap(), b"{\"type\":\"bye\"}\n");
}
