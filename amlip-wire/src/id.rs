//! Node identity: AML-IP's `AmlipId` (a name plus 4 random bytes) and task ids.

use std::fmt;

use super::cdr::{CdrReader, CdrWriter};
use super::WireError;

/// A task id: a per-main counter starting at 0, as AML-IP numbers its jobs.
pub type TaskId = u32;

/// Longest node name AML-IP accepts.
pub const MAX_NAME_LEN: usize = 28;

/// Longest name we accept from the wire (lenient with foreign implementations, but bounded so a
/// hostile sample cannot make us build huge topic names).
const MAX_WIRE_NAME_LEN: usize = 200;

/// Which characters a node name may hold.
///
/// AML-IP puts a node's name into topic names as it is and restricts nothing; its own demos
/// are named `AML-MainNode`, `AML-ComputingNode`. Both rustdds and Fast DDS take any printable
/// ASCII in a topic name (tested: `tests::every_printable_character_makes_a_working_topic`), so
/// every name an AML-IP node can have is accepted from others but `/` (a path separator, and
/// the one character that would make our topic names ambiguous to read) and control or
/// non-ASCII bytes. The names amlip gives its own nodes stay conservative: letters, digits,
/// `_`, `.` and `-`, so that they read well in shells, logs, file names and metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    /// Our own nodes' names.
    Own,
    /// Names of other nodes, as AML-IP allows them.
    Peer,
}

impl Charset {
    fn allows(self, c: char) -> bool {
        match self {
            Charset::Own => c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
            Charset::Peer => (' '..='~').contains(&c) && c != '/',
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Charset::Own => "only letters, digits, '_', '.' and '-' are allowed",
            Charset::Peer => "only printable ASCII other than '/' is allowed",
        }
    }
}

/// Why a node name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// No name.
    #[error("node name is empty")]
    Empty,
    /// Longer than AML-IP allows.
    #[error("node name {name:?} is {len} bytes; AML-IP allows at most {max}")]
    TooLong {
        /// The name.
        name: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not the printed form of an id.
    #[error("{0:?} is not a node id (<name>.aa.bb.cc.dd)")]
    NotAnId(String),
    /// A character topic names cannot hold.
    #[error("node name {name:?} has {bad:?}; {allowed} (it becomes part of DDS topic names)")]
    BadChar {
        /// The name.
        name: String,
        /// The character.
        bad: char,
        /// What is allowed.
        allowed: &'static str,
    },
}

/// Identity of a node: its name and 4 random bytes drawn when the node starts.
///
/// The random part must be fresh on every start: topics are named after ids, and a restarted
/// node reusing its id would receive its previous life's transient-local history.
/// Printed as `<name>.aa.bb.cc.dd`, which is also how it appears in topic names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AmlipId {
    name: String,
    suffix: [u8; 4],
}

impl AmlipId {
    /// A new id with fresh random bytes, for a node of ours (letters, digits, `_`, `.`, `-`).
    pub fn new_random(name: &str) -> Result<Self, IdError> {
        validate_name(name, MAX_NAME_LEN, Charset::Own)?;
        Ok(Self {
            name: name.to_owned(),
            suffix: rand::random(),
        })
    }

    /// An id with given bytes (any node's, AML-IP's included: printable ASCII but `/`).
    pub fn from_parts(name: &str, suffix: [u8; 4]) -> Result<Self, IdError> {
        validate_name(name, MAX_NAME_LEN, Charset::Peer)?;
        Ok(Self {
            name: name.to_owned(),
            suffix,
        })
    }

    /// The name part.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4 random bytes.
    pub fn suffix(&self) -> [u8; 4] {
        self.suffix
    }

    pub(crate) fn write(&self, w: &mut CdrWriter) {
        w.string(&self.name);
        w.octets(&self.suffix);
    }

    pub(crate) fn read(r: &mut CdrReader<'_>, field: &'static str) -> Result<Self, WireError> {
        let name = r.string(field)?;
        validate_name(name, MAX_WIRE_NAME_LEN, Charset::Peer).map_err(|e| WireError::Invalid {
            field,
            reason: e.to_string(),
        })?;
        let suffix: [u8; 4] = r.octets(4, field)?.try_into().expect("4 bytes");
        Ok(Self {
            name: name.to_owned(),
            suffix,
        })
    }
}

fn validate_name(name: &str, max: usize, charset: Charset) -> Result<(), IdError> {
    if name.is_empty() {
        return Err(IdError::Empty);
    }
    if name.len() > max {
        return Err(IdError::TooLong {
            name: name.to_owned(),
            len: name.len(),
            max,
        });
    }
    if let Some(bad) = name.chars().find(|c| !charset.allows(*c)) {
        return Err(IdError::BadChar {
            name: name.to_owned(),
            bad,
            allowed: charset.describe(),
        });
    }
    Ok(())
}

impl fmt::Display for AmlipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.suffix;
        write!(f, "{}.{a:02x}.{b:02x}.{c:02x}.{d:02x}", self.name)
    }
}

impl std::str::FromStr for AmlipId {
    type Err = IdError;

    /// The printed form, `<name>.aa.bb.cc.dd`.
    fn from_str(s: &str) -> Result<Self, IdError> {
        let mut parts = s.rsplitn(5, '.');
        let mut suffix = [0u8; 4];
        for i in (0..4).rev() {
            let byte = parts.next().and_then(|h| {
                (h.len() == 2)
                    .then(|| u8::from_str_radix(h, 16).ok())
                    .flatten()
            });
            suffix[i] = byte.ok_or_else(|| IdError::NotAnId(s.to_owned()))?;
        }
        Self::from_parts(parts.next().unwrap_or(""), suffix)
    }
}

impl fmt::Debug for AmlipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_printed_form_parses_back() {
        let id = super::AmlipId::from_parts("Computing.x", [0x0a, 0xff, 0, 7]).unwrap();
        assert_eq!(id.to_string().parse::<super::AmlipId>().unwrap(), id);
        assert!("Computing".parse::<super::AmlipId>().is_err());
        assert!("Main.1.2.3.4".parse::<super::AmlipId>().is_err());
    }

    use super::*;

    #[test]
    fn prints_like_amlip() {
        let id = AmlipId::from_parts("AmlipMainCpp", [0x83, 0x63, 0xf2, 0x1d]).unwrap();
        assert_eq!(id.to_string(), "AmlipMainCpp.83.63.f2.1d");
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(AmlipId::new_random(""), Err(IdError::Empty));
        assert!(matches!(
            AmlipId::new_random("a/b"),
            Err(IdError::BadChar { bad: '/', .. })
        ));
        assert!(matches!(
            AmlipId::new_random(&"x".repeat(29)),
            Err(IdError::TooLong { len: 29, .. })
        ));
    }

    /// AML-IP's demo names, and every printable ASCII character but `/`, are taken from peers;
    /// our own nodes keep to letters, digits, `_`, `.` and `-`.
    #[test]
    fn peers_names_are_aml_ip_s_and_ours_stay_conservative() {
        for name in ["AML-MainNode", "AML-ComputingNode", "AML-StatusNode"] {
            let id = AmlipId::from_parts(name, [0xaa, 0xa5, 0x47, 0xfe]).unwrap();
            assert_eq!(id.to_string().parse::<AmlipId>().unwrap(), id);
            AmlipId::new_random(name).unwrap();
        }
        for c in (' '..='~').filter(|c| *c != '/') {
            let name = format!("A{c}B");
            let id = AmlipId::from_parts(&name, [1, 2, 3, 4])
                .unwrap_or_else(|e| panic!("{c:?} refused: {e}"));
            assert_eq!(id.to_string().parse::<AmlipId>().unwrap(), id, "{c:?}");
            let own = AmlipId::new_random(&name);
            assert_eq!(
                own.is_ok(),
                c.is_ascii_alphanumeric() || "_.-".contains(c),
                "{c:?}"
            );
        }
        for bad in ['/', '\0', '\n', '\t', '\u{7f}', 'é', '\u{200b}'] {
            let name = format!("A{bad}B");
            assert!(
                matches!(AmlipId::from_parts(&name, [0; 4]), Err(IdError::BadChar { bad: b, .. }) if b == bad),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            AmlipId::from_parts(&"x".repeat(29), [0; 4]),
            Err(IdError::TooLong { len: 29, .. })
        ));
    }

    /// From the wire: AML-IP's names decode, names up to 200 bytes of any printable ASCII but
    /// `/` decode (lenient, bounded), and anything else is a clear error, never a panic.
    #[test]
    fn wire_names_are_bounded_and_checked() {
        fn decode(name: &[u8]) -> Result<AmlipId, WireError> {
            let mut w = CdrWriter::with_capacity(64);
            w.u32(name.len() as u32 + 1);
            w.octets(name);
            w.octets(&[0, 1, 2, 3, 4]);
            let body = w.finish();
            let mut r = CdrReader::new(&body, crate::ByteOrder::Little);
            AmlipId::read(&mut r, "id")
        }
        assert_eq!(decode(b"AML-MainNode").unwrap().name(), "AML-MainNode");
        assert_eq!(decode(b"A #%*?~B").unwrap().name(), "A #%*?~B");
        assert!(decode(&[b'x'; 200]).is_ok());
        for bad in [&b"a/b"[..], b"a\nb", b"a\x01b", b"", &[b'x'; 201][..]] {
            let e = decode(bad).unwrap_err().to_string();
            assert!(e.contains("`id`") || e.contains("id"), "{e}");
        }
    }

    #[test]
    fn random_ids_differ() {
        let a = AmlipId::new_random("Node").unwrap();
        let b = AmlipId::new_random("Node").unwrap();
        assert_ne!(a, b, "two starts must not share an id");
    }
}
