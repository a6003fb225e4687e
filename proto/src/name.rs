//! User names: 1 to 32 characters from `A-Z a-z 0-9 _ - .`, not starting with `-` or `.`.
//!
//! A [`Name`] is checked once, when it is built, and keeps the spelling the user chose.
//! Uniqueness and lookups ignore ASCII case; [`NameKey`] is that case-folded form, a fixed
//! 33-byte value so a lookup of a `to` field never allocates.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::sync::Arc;

/// Longest allowed name, in bytes (every allowed character is one byte).
pub const MAX_NAME_LEN: usize = 32;

/// Why a string is not a valid user name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("name is empty; a name has 1 to {MAX_NAME_LEN} characters")]
    Empty,
    #[error("name is {len} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong { len: usize },
    #[error("name contains {}; allowed are A-Z a-z 0-9 _ - .", Shown(*ch))]
    BadChar { ch: char },
    #[error("name starts with {}; a name may not start with - or .", Shown(*ch))]
    BadStart { ch: char },
    #[error("`*` means everyone and is not a name")]
    Star,
}

/// A character as a person can read it in an error: quoted when it is visible, its code
/// point (`U+200B`) when it is not, never a Rust escape such as `'\u{200b}'`.
struct Shown(char);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted = format!("{:?}", self.0);
        if quoted.contains('\\') {
            write!(f, "U+{:04X}", u32::from(self.0))
        } else {
            f.write_str(&quoted)
        }
    }
}

/// Checks `s` against the naming rules.
pub fn validate(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s == "*" {
        return Err(NameError::Star);
    }
    // Byte by byte: every name character is ASCII, so the first byte that is not one starts
    // the character to report.
    if let Some(at) = s.bytes().position(|b| !is_name_byte(b)) {
        let ch = s[at..].chars().next().expect("a character starts there");
        return Err(NameError::BadChar { ch });
    }
    // Only ASCII is left, so the byte length is the character count.
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: s.len() });
    }
    let first = s.as_bytes()[0] as char;
    if first == '-' || first == '.' {
        return Err(NameError::BadStart { ch: first });
    }
    Ok(())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// A valid user name, in the spelling its owner chose. Cloning is a reference-count bump.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    /// Builds a name, or says which rule `s` breaks.
    pub fn new(s: &str) -> Result<Name, NameError> {
        validate(s)?;
        Ok(Name(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded key under which this name is unique.
    pub fn key(&self) -> NameKey {
        // A valid name always fits a key.
        NameKey::new(&self.0).expect("a valid name fits a NameKey")
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Name::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A name folded to ASCII lower case: the identity of a user for uniqueness and lookup.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKey {
    len: u8,
    bytes: [u8; MAX_NAME_LEN],
}

impl NameKey {
    /// The key of `s` if `s` is a valid name, `None` otherwise.
    pub fn new(s: &str) -> Option<NameKey> {
        validate(s).ok()?;
        let mut bytes = [0u8; MAX_NAME_LEN];
        for (dst, src) in bytes.iter_mut().zip(s.bytes()) {
            *dst = src.to_ascii_lowercase();
        }
        Some(NameKey {
            len: s.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Built only from validated ASCII.
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("keys are ASCII")
    }

    /// True when `s` is a valid name with this key: the same user, whatever the ASCII case.
    pub fn is(&self, s: &str) -> bool {
        NameKey::new(s).as_ref() == Some(self)
    }

    /// True when the name starts with `prefix`, ignoring ASCII case (completing a name that
    /// is half typed). Every name starts with the empty prefix.
    pub fn starts_with(&self, prefix: &str) -> bool {
        let key = self.as_str().as_bytes();
        key.len() >= prefix.len() && key[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    }
}

impl fmt::Debug for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_character_is_shown_quoted_when_visible_and_by_code_point_when_not() {
        let msg = |s: &str| validate(s).unwrap_err().to_string();
        assert_eq!(
            msg("a\u{200b}b"),
            "name contains U+200B; allowed are A-Z a-z 0-9 _ - ."
        );
        assert_eq!(
            msg("a\tb"),
            "name contains U+0009; allowed are A-Z a-z 0-9 _ - ."
        );
        assert_eq!(
            msg("a\u{202e}b"),
            "name contains U+202E; allowed are A-Z a-z 0-9 _ - ."
        );
        assert_eq!(
            msg("aéb"),
            "name contains 'é'; allowed are A-Z a-z 0-9 _ - ."
        );
        assert_eq!(
            msg("-a"),
            "name starts with '-'; a name may not start with - or ."
        );
    }

    #[test]
    fn accepts_every_allowed_character_and_both_lengths() {
        for ok in [
            "a",
            "A",
            "0",
            "_",
            "_x",
            "a-b",
            "a.b",
            "Bob_1.2-3",
            &"x".repeat(32),
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_each_rule_with_its_own_error() {
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(
            validate(&"x".repeat(33)),
            Err(NameError::TooLong { len: 33 })
        );
        assert_eq!(validate("a b"), Err(NameError::BadChar { ch: ' ' }));
        assert_eq!(validate("é"), Err(NameError::BadChar { ch: 'é' }));
        assert_eq!(validate("a\u{0}"), Err(NameError::BadChar { ch: '\0' }));
        assert_eq!(validate("-a"), Err(NameError::BadStart { ch: '-' }));
        assert_eq!(validate(".a"), Err(NameError::BadStart { ch: '.' }));
        assert_eq!(validate("*"), Err(NameError::Star));
    }

    #[test]
    fn keys_ignore_ascii_case_and_names_keep_spelling() {
        let a = Name::new("Bob").unwrap();
        let b = Name::new("bOB").unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key().as_str(), "bob");
        assert_eq!(a.as_str(), "Bob");
        assert_ne!(a, b);
        assert_eq!(NameKey::new("x y"), None);
    }

    #[test]
    fn a_key_matches_names_and_prefixes_ignoring_case() {
        let bob = NameKey::new("Bob").unwrap();
        assert!(bob.is("bOB"));
        assert!(!bob.is("bobby"));
        assert!(!bob.is("b b"));
        for p in ["", "b", "BO", "bOb"] {
            assert!(bob.starts_with(p), "{p:?}");
        }
        for p in ["x", "bobb", "ö"] {
            assert!(!bob.starts_with(p), "{p:?}");
        }
    }

    #[test]
    fn deserialize_checks_the_rules() {
        let n: Name = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(n.as_str(), "alice");
        assert!(serde_json::from_str::<Name>("\"-x\"").is_err());
    }
}
