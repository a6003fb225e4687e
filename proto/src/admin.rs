//! The admin channel: JSON lines over chatd's Unix socket, spoken by `chatctl`.
//!
//! One request per line, one response line per request (except `watch`, which answers `ok`
//! and then streams events until the client closes). Fields are stable: scripts read
//! `chatctl --json` output built from these types.
