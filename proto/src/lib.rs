//! The chatd wire protocol, version 1: everything a peer needs to speak it and nothing more.
//!
//! The contract lives in `docs/PROTOCOL.md`. This crate is pure data and framing: no sockets,
//! no runtime, no logging, so the daemon, the admin CLI, the client, the benchmark and the
//! tests all agree on one definition.
//!
//! - [`codec`]: newline framing with a hard cap on line size that never buffers past it.
//! - [`name`]: the user-name rules, checked once when a [`Name`] is built.
//! - [`request`]: the server's zero-copy parser for request lines (borrowed fields, `id` kept
//!   raw so it can be echoed byte for byte even when the rest of the request is wrong).
//! - [`encode`]: the server's writers for replies and events, straight into a byte buffer.
//! - [`message`]: owned, typed requests and server messages for clients.
//! - [`admin`]: the admin channel's request and response types (Unix socket, JSON lines).
//! - [`text`]: text from the other end made safe to show on a terminal (control characters
//!   escaped), for every client.

pub mod admin;
pub mod codec;
pub mod encode;
pub mod message;
pub mod name;
pub mod request;
pub mod text;

mod code;
mod flat;

pub use code::{ByeReason, ErrorCode, LeaveReason};
pub use name::{Name, NameError, NameKey};

/// Protocol version spoken by this crate, sent as `proto` in the `login` reply.
pub const PROTO_VERSION: u32 = 1;

/// Default TCP port of the chat listener.
pub const DEFAULT_PORT: u16 = 7878;

/// Default cap on one request line, in bytes, excluding its `\n` or `\r\n` terminator.
pub const DEFAULT_MAX_LINE_BYTES: usize = 65536;
