//! Turns a burst of plain text in the keyboard's byte stream into a bracketed paste.
//!
//! rustyline takes keys one at a time and draws the whole line again each time the cursor
//! wraps to a new row, so n characters arriving as keys cost about n²/width: a paste of
//! 40 000 characters took 5 to 19 s and drew 10 MB. The same text inside `ESC [200~ … ESC [201~`
//! (what a terminal sends for a paste when it supports bracketed paste) is inserted at once,
//! with one redraw. [`Bracketer`] rewrites the input so that every long run of plain text is
//! such a paste, whoever sent it: a terminal without bracketed paste, a program typing keys.
//!
//! Only plain text is wrapped: control bytes (Enter, Tab, Backspace, Ctrl-C...) and escape
//! sequences (arrow keys, a terminal's answer to a query, its own bracketed paste) pass as they
//! came, so each still means what it meant. Runs shorter than [`MIN_RUN`] pass as keys too:
//! rustyline draws those one character at a time, and typing stays exactly as it was. A run
//! is never cut inside a UTF-8 character.

/// Shortest run of plain text, in bytes, sent as a paste. Below it, keys cost rustyline at most
/// a redraw or two; at it, one redraw is cheaper than the redraws of the rows it fills.
pub const MIN_RUN: usize = 256;

/// Longest run sent as one paste; a longer one is sent as several, so what is held stays
/// bounded.
pub const MAX_RUN: usize = 1 << 20;

const PASTE_START: &[u8] = b"\x1b[200~";
const PASTE_END: &[u8] = b"\x1b[201~";
const ESC: u8 = 0x1b;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between keys.
    Ground,
    /// Just after ESC.
    Escape,
    /// Inside `ESC [`, up to its final byte.
    Csi,
    /// Just after `ESC O` (a function key): one more byte.
    Ss3,
    /// Inside the terminal's own bracketed paste, which passes unchanged up to its end.
    Pasted,
}

/// The rewriting state; feed it what the terminal sent, in order.
#[derive(Debug)]
pub struct Bracketer {
    state: State,
    /// Plain text not written out yet.
    run: Vec<u8>,
    /// The parameters of the CSI sequence being read (enough to tell `200` from the rest).
    params: Vec<u8>,
    /// How much of [`PASTE_END`] the terminal's own paste has matched so far.
    end_matched: usize,
}

impl Default for Bracketer {
    fn default() -> Self {
        Bracketer {
            state: State::Ground,
            run: Vec::new(),
            params: Vec::new(),
            end_matched: 0,
        }
    }
}

impl Bracketer {
    /// Rewrites `input` into `out`. Plain text at the end of `input` is held: more of it may
    /// be on its way, and [`Bracketer::flush`] writes it out.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            match self.state {
                State::Ground if b == ESC => {
                    self.end_run(out);
                    out.push(b);
                    self.state = State::Escape;
                }
                State::Ground if b < 0x20 || b == 0x7f => {
                    self.end_run(out);
                    out.push(b);
                }
                State::Ground => {
                    if self.run.len() >= MAX_RUN && is_char_start(b) {
                        self.end_run(out);
                    }
                    self.run.push(b);
                }
                State::Escape => {
                    out.push(b);
                    self.state = match b {
                        b'[' => {
                            self.params.clear();
                            State::Csi
                        }
                        b'O' => State::Ss3,
                        _ => State::Ground,
                    };
                }
                State::Csi => {
                    out.push(b);
                    match b {
                        0x30..=0x3f if self.params.len() < 8 => self.params.push(b),
                        0x20..=0x3f => {}
                        0x40..=0x7e if b == b'~' && self.params == b"200" => {
                            self.end_matched = 0;
                            self.state = State::Pasted;
                        }
                        _ => self.state = State::Ground,
                    }
                }
                State::Ss3 => {
                    out.push(b);
                    self.state = State::Ground;
                }
                State::Pasted => {
                    out.push(b);
                    if b == PASTE_END[self.end_matched] {
                        self.end_matched += 1;
                    } else {
                        self.end_matched = usize::from(b == ESC);
                    }
                    if self.end_matched == PASTE_END.len() {
                        self.state = State::Ground;
                    }
                }
            }
        }
    }

    /// Bytes of plain text held, waiting to see whether more follows.
    pub fn held(&self) -> usize {
        self.run.len()
    }

    /// Writes out the plain text held, but for the start of a character still incomplete.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        let whole = whole_chars(&self.run);
        let tail = self.run.split_off(whole);
        self.end_run(out);
        self.run = tail;
    }

    fn end_run(&mut self, out: &mut Vec<u8>) {
        if self.run.len() >= MIN_RUN {
            out.extend_from_slice(PASTE_START);
            out.extend_from_slice(&self.run);
            out.extend_from_slice(PASTE_END);
        } else {
            out.extend_from_slice(&self.run);
        }
        self.run.clear();
    }
}

fn is_char_start(b: u8) -> bool {
    b & 0xc0 != 0x80
}

/// How many bytes at the start of `run` are whole UTF-8 characters: all of it, unless it
/// ends inside a character that is still arriving. Bytes that are no UTF-8 at all count as
/// whole (rustyline refuses them either way).
fn whole_chars(run: &[u8]) -> usize {
    let continuation = run
        .iter()
        .rev()
        .take(3)
        .take_while(|b| !is_char_start(**b))
        .count();
    let Some(lead) = run.len().checked_sub(continuation + 1).map(|i| run[i]) else {
        return run.len();
    };
    let needs = match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    };
    if continuation + 1 < needs {
        run.len() - continuation - 1
    } else {
        run.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(chunks: &[&[u8]]) -> Vec<u8> {
        let mut b = Bracketer::default();
        let mut out = Vec::new();
        for c in chunks {
            b.feed(c, &mut out);
            b.flush(&mut out);
        }
        out
    }

    fn pasted(text: &[u8]) -> Vec<u8> {
        [PASTE_START, text, PASTE_END].concat()
    }

    #[test]
    fn keys_and_short_runs_pass_as_they_came() {
        for keys in [
            &b"h"[..],
            b"hello\r",
            b"/to al\t",
            b"\x1b[A\x1b[D\x7f\x03\x04",
            b"\x1bb\x1bOP",
            "é✓".as_bytes(),
        ] {
            assert_eq!(rewrite(&[keys]), keys, "{keys:?}");
        }
    }

    #[test]
    fn a_long_run_becomes_one_paste_and_the_keys_around_it_stay_keys() {
        let text = vec![b'x'; 1000];
        let input = [b"\x1b[A", &text[..], b"\r\t"].concat();
        assert_eq!(
            rewrite(&[&input]),
            [b"\x1b[A", &pasted(&text)[..], b"\r\t"].concat()
        );
    }

    #[test]
    fn a_run_split_across_reads_is_one_paste_when_flushed_once() {
        let text = vec![b'y'; 3000];
        let mut b = Bracketer::default();
        let mut out = Vec::new();
        for part in text.chunks(700) {
            b.feed(part, &mut out);
        }
        assert!(out.is_empty() && b.held() == 3000);
        b.flush(&mut out);
        assert_eq!(out, pasted(&text));
    }

    #[test]
    fn the_terminals_own_paste_passes_unchanged() {
        let text = vec![b'z'; 500];
        let own = pasted(&text);
        assert_eq!(rewrite(&[&own, b"\r"]), [&own[..], b"\r"].concat());
        // Split anywhere, even inside its end mark.
        let (a, b) = own.split_at(own.len() - 3);
        assert_eq!(rewrite(&[a, b, b"ok"]), [&own[..], b"ok"].concat());
    }

    #[test]
    fn a_character_is_never_cut() {
        let text = "é".repeat(200);
        let bytes = text.as_bytes();
        // The first read ends inside the last é: its first byte waits for its second.
        let (a, b) = bytes.split_at(bytes.len() - 1);
        let mut br = Bracketer::default();
        let mut out = Vec::new();
        br.feed(a, &mut out);
        br.flush(&mut out);
        assert_eq!(out, pasted(&a[..a.len() - 1]));
        out.clear();
        br.feed(b, &mut out);
        br.flush(&mut out);
        assert_eq!(out, &bytes[bytes.len() - 2..]);
        assert_eq!(whole_chars("a✓".as_bytes()), 4);
        assert_eq!(whole_chars(&"a✓".as_bytes()[..3]), 1);
        assert_eq!(whole_chars(b"\x80\x80"), 2);
    }

    #[test]
    fn a_huge_run_is_cut_into_pastes_of_at_most_max_run() {
        let text = vec![b'w'; MAX_RUN + 10];
        let out = rewrite(&[&text]);
        let expected = [pasted(&text[..MAX_RUN]), text[MAX_RUN..].to_vec()].concat();
        assert_eq!(out, expected);
    }
}
