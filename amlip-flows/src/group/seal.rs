//! A group's own connections in a trusted domain: sealed with AES-256-GCM under a key the main
//! draws for the group and hands each worker inside its job (which crosses the domain's DDS
//! Security or the direct path's TLS, so only members ever hold it).
//!
//! Each direction of each connection opens with a fresh random 16-byte salt in clear; its
//! sealing key is HKDF-SHA256(group key, salt), and its nonces count up from 0, so no nonce is
//! ever used twice under one key, and the two halves of a connection (used from different
//! threads) need no shared state. A frame that does not open (forged, replayed, reordered, or
//! from a stranger without the key) fails the connection.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes a sealed frame adds (the GCM tag).
pub(crate) const TAG: usize = 16;
/// Bytes of the salt each direction opens with.
pub(crate) const SALT: usize = 16;

/// The group's key (hex in the job's parameters).
#[derive(Clone)]
pub(crate) struct GroupKey([u8; 32]);

impl GroupKey {
    pub fn random() -> Result<Self, String> {
        let mut k = [0u8; 32];
        SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| "no random bytes for the group key".to_string())?;
        Ok(Self(k))
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self, String> {
        let b = unhex(s)
            .filter(|b| b.len() == 32)
            .ok_or("a group key is 64 hex digits")?;
        Ok(Self(b.try_into().expect("32 bytes")))
    }

    fn derive(&self, salt: &[u8; SALT]) -> LessSafeKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&self.0);
        let okm = prk
            .expand(&[b"amlip group link"], &AES_256_GCM)
            .expect("32 bytes is a valid HKDF output length");
        LessSafeKey::new(UnboundKey::from(okm))
    }
}

/// One direction's sending end.
pub(crate) struct Sealer {
    key: LessSafeKey,
    next: u64,
}

impl Sealer {
    /// A sealer and the salt to send first.
    pub fn new(group: &GroupKey) -> Result<(Self, [u8; SALT]), String> {
        let mut salt = [0u8; SALT];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| "no random bytes for a salt".to_string())?;
        Ok((
            Self {
                key: group.derive(&salt),
                next: 0,
            },
            salt,
        ))
    }

    /// Encrypts `data` in place and appends the tag.
    pub fn seal(&mut self, data: &mut Vec<u8>) {
        let nonce = nonce(self.next);
        self.next += 1;
        self.key
            .seal_in_place_append_tag(nonce, Aad::empty(), data)
            .expect("a frame under 64 GiB seals");
    }
}

/// One direction's receiving end.
pub(crate) struct Opener {
    key: LessSafeKey,
    next: u64,
}

impl Opener {
    pub fn new(group: &GroupKey, salt: &[u8; SALT]) -> Self {
        Self {
            key: group.derive(salt),
            next: 0,
        }
    }

    /// Decrypts a sealed frame in place; the plain bytes are the returned prefix.
    pub fn open<'a>(&mut self, frame: &'a mut [u8]) -> Result<&'a mut [u8], String> {
        let nonce = nonce(self.next);
        self.next += 1;
        self.key
            .open_in_place(nonce, Aad::empty(), frame)
            .map(|plain| &mut plain[..])
            .map_err(|_| "a frame that does not open under the group's key".to_string())
    }
}

fn nonce(n: u64) -> Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(b)
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_open_in_order_under_the_same_key_only() {
        let key = GroupKey::random().unwrap();
        let (mut s, salt) = Sealer::new(&key).unwrap();
        let mut o = Opener::new(&key, &salt);
        let mut a = b"first".to_vec();
        let mut b = b"second".to_vec();
        s.seal(&mut a);
        s.seal(&mut b);
        assert_eq!(a.len(), 5 + TAG);
        assert!(!a.windows(5).any(|w| w == b"first"));
        assert_eq!(o.open(&mut a.clone()).unwrap(), b"first");
        assert_eq!(o.open(&mut b.clone()).unwrap(), b"second");
        // Replayed, or under another key: refused.
        assert!(o.open(&mut b.clone()).is_err());
        let other = GroupKey::random().unwrap();
        assert!(Opener::new(&other, &salt).open(&mut a).is_err());
        let k2 = GroupKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(k2.0, key.0);
        assert!(GroupKey::from_hex("00").is_err());
    }
}
