//! Plain CDR (XCDR1) encoding and decoding, the subset AML-IP's types use.
//!
//! Alignment is counted from the first byte after the 4-byte encapsulation header, as Fast CDR
//! does. We always write little endian and read both byte orders. The GENERIC payload of AML-IP
//! is not a CDR sequence (it carries a flag byte after its length), so it has its own pair of
//! functions here rather than being forced through `sequence<octet>`.

use bytes::Bytes;

use super::WireError;

/// Byte order of a serialized payload, from its encapsulation header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Little endian (CDR_LE), what amlip writes.
    Little,
    /// Big endian (CDR_BE).
    Big,
}

/// Writes CDR fields into a body buffer (the bytes after the encapsulation header).
#[derive(Debug, Default)]
pub struct CdrWriter {
    buf: Vec<u8>,
}

impl CdrWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    fn align(&mut self, n: usize) {
        let pad = (n - self.buf.len() % n) % n;
        self.buf.resize(self.buf.len() + pad, 0);
    }

    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Raw bytes with no length and no alignment (CDR `octet[N]`).
    pub fn octets(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// CDR string: u32 length counting the terminating NUL, the bytes, the NUL.
    pub fn string(&mut self, s: &str) {
        self.u32(s.len() as u32 + 1);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// CDR `sequence<octet>`: u32 length then the bytes.
    pub fn byte_seq(&mut self, bytes: &[u8]) {
        self.u32(bytes.len() as u32);
        self.buf.extend_from_slice(bytes);
    }

    /// AML-IP's GENERIC payload: u32 size, one flag byte (always 1), the raw bytes.
    pub fn generic(&mut self, bytes: &[u8]) {
        self.u32(bytes.len() as u32);
        self.buf.push(1);
        self.buf.extend_from_slice(bytes);
    }

    /// The body, padded to a multiple of 4 bytes as RTPS serialized payloads are.
    pub fn finish(mut self) -> Vec<u8> {
        self.align(4);
        self.buf
    }
}

/// Reads CDR fields from a body (the bytes after the encapsulation header).
///
/// Every read checks the remaining length first, so a truncated or hostile sample yields a
/// [`WireError`] naming the field, never a panic.
#[derive(Debug, Clone)]
pub struct CdrReader<'a> {
    buf: &'a [u8],
    pos: usize,
    order: ByteOrder,
}

impl<'a> CdrReader<'a> {
    pub fn new(buf: &'a [u8], order: ByteOrder) -> Self {
        Self { buf, pos: 0, order }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Checks that nothing but alignment padding (fewer than 4 zero bytes, which AML-IP and
    /// amlip add to round a sample up to 4 bytes) follows the last field.
    pub fn end(self) -> Result<(), WireError> {
        let rest = &self.buf[self.pos..];
        if rest.len() < 4 && rest.iter().all(|b| *b == 0) {
            Ok(())
        } else {
            Err(WireError::Trailing(rest.len()))
        }
    }

    fn align(&mut self, n: usize, field: &'static str) -> Result<(), WireError> {
        let pad = (n - self.pos % n) % n;
        self.take(pad, field).map(|_| ())
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated {
                field,
                needed: n,
                available: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        self.align(4, field)?;
        let b: [u8; 4] = self.take(4, field)?.try_into().expect("4 bytes");
        Ok(match self.order {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        })
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        self.align(8, field)?;
        let b: [u8; 8] = self.take(8, field)?.try_into().expect("8 bytes");
        Ok(match self.order {
            ByteOrder::Little => u64::from_le_bytes(b),
            ByteOrder::Big => u64::from_be_bytes(b),
        })
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, field)?[0])
    }

    pub fn octets(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        self.take(n, field)
    }

    /// A CDR string; it must end in NUL and be valid UTF-8.
    pub fn string(&mut self, field: &'static str) -> Result<&'a str, WireError> {
        let len = self.u32(field)? as usize;
        if len == 0 {
            return Err(WireError::Invalid {
                field,
                reason: "string length 0 (a CDR string counts its NUL)".into(),
            });
        }
        let bytes = self.take(len, field)?;
        let (body, nul) = bytes.split_at(len - 1);
        if nul != [0] {
            return Err(WireError::Invalid {
                field,
                reason: "string is not NUL-terminated".into(),
            });
        }
        std::str::from_utf8(body).map_err(|_| WireError::Invalid {
            field,
            reason: "string is not UTF-8".into(),
        })
    }

    /// CDR `sequence<octet>`, as a zero-copy slice of `whole` (which must be the buffer read).
    pub fn byte_seq(&mut self, whole: &Bytes, field: &'static str) -> Result<Bytes, WireError> {
        let len = self.u32(field)? as usize;
        let start = self.pos;
        self.take(len, field)?;
        Ok(whole.slice(start..start + len))
    }

    /// AML-IP's GENERIC payload (u32 size, flag 0/1, bytes), zero-copy from `whole`.
    pub fn generic(&mut self, whole: &Bytes, field: &'static str) -> Result<Bytes, WireError> {
        let len = self.u32(field)? as usize;
        let flag = self.u8(field)?;
        if flag > 1 {
            return Err(WireError::Invalid {
                field,
                reason: format!("GENERIC flag byte is {flag}, must be 0 or 1"),
            });
        }
        let start = self.pos;
        self.take(len, field)?;
        Ok(whole.slice(start..start + len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_relative_to_body_start() {
        let mut w = CdrWriter::new();
        w.octets(&[1]);
        w.u32(2);
        w.u64(3);
        let body = w.finish();
        assert_eq!(body.len(), 16);
        assert_eq!(&body[4..8], &2u32.to_le_bytes());
        assert_eq!(&body[8..16], &3u64.to_le_bytes());
        let mut r = CdrReader::new(&body, ByteOrder::Little);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u32("b").unwrap(), 2);
        assert_eq!(r.u64("c").unwrap(), 3);
    }

    #[test]
    fn big_endian_is_read() {
        let body = [0, 0, 0, 5, b'a', b'b', b'c', b'd', 0];
        let mut r = CdrReader::new(&body, ByteOrder::Big);
        assert_eq!(r.string("s").unwrap(), "abcd");
    }

    #[test]
    fn truncation_names_the_field() {
        let body = [9, 0, 0, 0, b'a'];
        let mut r = CdrReader::new(&body, ByteOrder::Little);
        let e = r.string("client_id.name").unwrap_err();
        assert!(e.to_string().contains("client_id.name"), "{e}");
    }

    #[test]
    fn generic_rejects_bad_flag() {
        let whole = Bytes::from_static(&[1, 0, 0, 0, 7, b'x']);
        let mut r = CdrReader::new(&whole, ByteOrder::Little);
        assert!(r.generic(&whole, "data").is_err());
    }
}
