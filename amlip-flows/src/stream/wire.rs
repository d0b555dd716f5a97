//! What sample streams put on the wire: the DDS announcement by which a producer is found, and
//! the frames of the TCP connection over which a consumer reads its samples.
//!
//! The announcement (`amlipx::sample_producer` on `amlipx/sample_producers`, `idl/amlipx.idl`)
//! is small and repeated every second: it names the stream, the producer, its rank, where it
//! listens and how many samples it has produced. Samples themselves go over TCP, where a
//! consumer names the first sequence number it wants (0, or where a broken connection left
//! off), so a late consumer catches up and nothing arrives twice.
//!
//! The TCP connection, little-endian throughout:
//! - consumer -> producer, once: `b"AMLS"`, version `u32` (1), the producer id `u64` it means to
//!   reach (a port reused by another producer is refused), the first sequence number `u64`.
//! - producer -> consumer, frames `tag u8, length u32, body`, the length a multiple of 4:
//!   - [`BATCH`]: iteration `u64`, first sequence number `u64`, samples `u32`, floats per input
//!     `u32`, floats per target `u32`, then every input, then every target, as `f32`;
//!   - [`GAP`]: first sequence number `u64`, samples `u64`: produced, but no longer retained by
//!     the producer when this consumer asked (counted as dropped by the producer);
//!   - [`END`]: samples produced in all `u64`: nothing follows;
//!   - [`KEEPALIVE`]: empty, sent when idle, so a silent connection means a stuck producer.
//! - consumer -> producer, after `END`: one byte `1`, so the producer knows it was read whole.

use std::net::Ipv4Addr;

use bytes::Bytes;

use crate::wire::cdr::{CdrReader, CdrWriter};
use crate::wire::{ByteOrder, WireError, WireType};

/// The DDS topic of producer announcements.
pub(crate) const TOPIC: &str = "amlipx/sample_producers";
/// What a consumer sends first.
pub(crate) const MAGIC: &[u8; 4] = b"AMLS";
/// The connection protocol's version.
pub(crate) const VERSION: u32 = 1;
/// Frame tags.
pub(crate) const BATCH: u8 = 1;
pub(crate) const GAP: u8 = 2;
pub(crate) const END: u8 = 3;
pub(crate) const KEEPALIVE: u8 = 4;
/// Bytes of a batch frame's fixed fields.
pub(crate) const BATCH_HEADER: usize = 8 + 8 + 4 + 4 + 4;
/// The largest frame a consumer reads: what one connection can make it allocate at once.
pub const MAX_FRAME: usize = 16 << 20;
/// Addresses an announcement may carry.
const MAX_ADDRS: usize = 16;
/// Longest stream name.
pub const MAX_STREAM_NAME: usize = 128;

/// A producer's announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerInfo {
    pub stream: String,
    pub producer: u64,
    pub rank: u32,
    pub port: u16,
    pub addrs: Vec<Ipv4Addr>,
    /// Samples produced so far.
    pub produced: u64,
    /// Iterations published so far.
    pub iterations: u64,
    /// Whether the producer has published its last batch.
    pub ended: bool,
}

impl WireType for ProducerInfo {
    const TYPE_NAME: &'static str = "amlipx::sample_producer";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        w.string(&self.stream);
        w.u64(self.producer);
        w.u32(self.rank);
        w.u32(self.port as u32);
        w.u32(self.addrs.len() as u32);
        for a in &self.addrs {
            w.octets(&a.octets());
        }
        w.u64(self.produced);
        w.u64(self.iterations);
        w.u32(self.ended as u32);
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let stream = r.string("stream")?.to_owned();
        if stream.is_empty() || stream.len() > MAX_STREAM_NAME {
            return Err(WireError::Invalid {
                field: "stream",
                reason: format!("{} bytes (1 to {MAX_STREAM_NAME})", stream.len()),
            });
        }
        let producer = r.u64("producer")?;
        let rank = r.u32("rank")?;
        let port = r.u32("port")?;
        let port = u16::try_from(port).map_err(|_| WireError::Invalid {
            field: "port",
            reason: format!("{port} is not a port"),
        })?;
        let n = r.u32("addrs.length")? as usize;
        if n > MAX_ADDRS {
            return Err(WireError::Invalid {
                field: "addrs.length",
                reason: format!("{n} addresses (at most {MAX_ADDRS})"),
            });
        }
        let addrs = (0..n)
            .map(|_| {
                let o = r.octets(4, "addrs")?;
                Ok(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        let produced = r.u64("produced")?;
        let iterations = r.u64("iterations")?;
        let ended = r.u32("ended")? != 0;
        r.end()?;
        Ok(Self {
            stream,
            producer,
            rank,
            port,
            addrs,
            produced,
            iterations,
            ended,
        })
    }
}

/// The consumer's hello.
pub(crate) fn hello(producer: u64, from_seq: u64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..4].copy_from_slice(MAGIC);
    out[4..8].copy_from_slice(&VERSION.to_le_bytes());
    out[8..16].copy_from_slice(&producer.to_le_bytes());
    out[16..24].copy_from_slice(&from_seq.to_le_bytes());
    out
}

/// Reads a hello: the producer id meant and the first sequence number wanted.
pub(crate) fn parse_hello(b: &[u8; 24]) -> Result<(u64, u64), String> {
    if &b[..4] != MAGIC {
        return Err("not a sample-stream consumer (no AMLS magic)".into());
    }
    let version = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!(
            "sample-stream protocol version {version} (this producer speaks {VERSION})"
        ));
    }
    Ok((
        u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
    ))
}

/// A frame: tag, length, body.
pub(crate) fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A whole batch frame.
pub(crate) fn batch_frame(
    iteration: u64,
    first_seq: u64,
    inputs: &[f32],
    input_len: usize,
    targets: &[f32],
    target_len: usize,
    count: usize,
) -> Vec<u8> {
    let body_len = BATCH_HEADER + 4 * (inputs.len() + targets.len());
    let mut out = Vec::with_capacity(5 + body_len);
    out.push(BATCH);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&iteration.to_le_bytes());
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out.extend_from_slice(&(input_len as u32).to_le_bytes());
    out.extend_from_slice(&(target_len as u32).to_le_bytes());
    put_f32s(&mut out, inputs);
    put_f32s(&mut out, targets);
    out
}

/// Appends `v` little-endian (a plain copy on little-endian hosts).
fn put_f32s(out: &mut Vec<u8>, v: &[f32]) {
    if cfg!(target_endian = "little") {
        out.extend_from_slice(bytemuck::cast_slice(v));
    } else {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// A batch as a consumer reads it, borrowed from the frame.
#[derive(Debug)]
pub(crate) struct BatchFrame<'a> {
    pub iteration: u64,
    pub first_seq: u64,
    pub count: usize,
    pub input_len: usize,
    pub target_len: usize,
    /// `count * input_len` inputs then `count * target_len` targets.
    pub values: &'a [f32],
}

/// A frame body as 32-bit words in host order, from its little-endian bytes (every frame is a
/// whole number of words). Reading into words keeps the floats aligned: no copy to use them.
pub(crate) fn words_from_le(words: &mut [u32]) {
    if cfg!(target_endian = "big") {
        for w in words {
            *w = u32::from_le(*w);
        }
    }
}

/// Reads a batch frame's body (as words, see [`words_from_le`]), checking that its sizes add
/// up.
pub(crate) fn parse_batch(body: &[u32]) -> Result<BatchFrame<'_>, String> {
    const HEADER_WORDS: usize = BATCH_HEADER / 4;
    if body.len() < HEADER_WORDS {
        return Err(format!(
            "a batch frame of {} bytes (its header alone is {BATCH_HEADER})",
            body.len() * 4
        ));
    }
    let u64_at = |i: usize| body[i] as u64 | (body[i + 1] as u64) << 32;
    let (iteration, first_seq) = (u64_at(0), u64_at(2));
    let (count, input_len, target_len) = (body[4] as usize, body[5] as usize, body[6] as usize);
    let floats = input_len
        .checked_add(target_len)
        .and_then(|per| per.checked_mul(count));
    let data = &body[HEADER_WORDS..];
    if floats != Some(data.len()) {
        return Err(format!(
            "a batch of {count} samples of {input_len} + {target_len} floats in {} bytes",
            data.len() * 4
        ));
    }
    Ok(BatchFrame {
        iteration,
        first_seq,
        count,
        input_len,
        target_len,
        values: bytemuck::cast_slice(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_hostile_ones_are_named() {
        let info = ProducerInfo {
            stream: "sin".into(),
            producer: 7,
            rank: 3,
            port: 4000,
            addrs: vec![Ipv4Addr::LOCALHOST],
            produced: 320,
            iterations: 20,
            ended: true,
        };
        let back = ProducerInfo::from_payload(&info.to_payload()).unwrap();
        assert_eq!(back, info);
        let mut bad = info.clone();
        bad.addrs = vec![Ipv4Addr::LOCALHOST; 17];
        let e = ProducerInfo::from_payload(&bad.to_payload()).unwrap_err();
        assert!(e.to_string().contains("addrs.length"), "{e}");
        let cut = info.to_payload();
        let e = ProducerInfo::from_payload(&cut[..cut.len() - 8]).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn batch_frames_round_trip_and_inconsistent_ones_are_refused() {
        let f = batch_frame(4, 10, &[1.0, 2.0, 3.0, 4.0], 2, &[5.0, 6.0], 1, 2);
        assert_eq!(f[0], BATCH);
        let len = u32::from_le_bytes(f[1..5].try_into().unwrap()) as usize;
        let words = |b: &[u8]| -> Vec<u32> {
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let body = words(&f[5..5 + len]);
        let b = parse_batch(&body).unwrap();
        assert_eq!((b.iteration, b.first_seq, b.count), (4, 10, 2));
        assert_eq!((b.input_len, b.target_len), (2, 1));
        assert_eq!(b.values, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let e = parse_batch(&body[..body.len() - 1]).unwrap_err();
        assert!(e.contains("2 samples of 2 + 1 floats in 20 bytes"), "{e}");
        // Sizes whose product overflows are refused, not multiplied.
        let mut hostile = body.clone();
        hostile[4] = u32::MAX;
        hostile[5] = u32::MAX;
        assert!(parse_batch(&hostile).is_err());
        assert!(parse_hello(&hello(9, 5)).unwrap() == (9, 5));
        assert!(parse_hello(&[0u8; 24]).unwrap_err().contains("magic"));
    }
}
