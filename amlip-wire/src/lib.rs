//! amlip-wire: the bytes on the wire. AML-IP's types exactly as AML-IP v0.3 lays them out, and
//! amlip's own extension types (which AML-IP nodes never see, because they live on topics AML-IP
//! never opens); and the payloads amlip's jobs carry, named tensors in safetensors.
//!
//! Everything here is pure: no DDS, no I/O. The DDS layer hands us a sample's body (the bytes
//! after the 4-byte encapsulation header) and its byte order; we hand back a body to send.
//! `idl/` describes the same layouts. Not for: topics, QoS, sending (`amlip-fabric`).
//!
//! # Module map
//! - `cdr`: plain CDR, little or big endian, every read bounded and naming its field.
//! - [`id`]: [`AmlipId`] (a node's name and 4 random bytes) and the rules for names.
//! - [`messages`]: AML-IP's types (`ms_request`, `ms_reference`, `ms_data_GENERIC`, `status`,
//!   the model managers' RPC and statistics).
//! - [`ext`]: amlip's extension types (heartbeats, chunks, credits, direct-path frames).
//! - [`payload`]: jobs and solutions as named tensors in safetensors, with their kind.
//! - [`summary`]: what a main does (job counters, sessions and their curves), for status views.
#![warn(missing_docs)]

#[doc(hidden)]
pub mod cdr;
pub mod ext;
pub mod id;
pub mod messages;
pub mod payload;
pub mod summary;

use bytes::Bytes;

pub use cdr::ByteOrder;
pub use id::{AmlipId, IdError, TaskId};
pub use messages::{
    ModelStatistics, MsData, MsReference, MsRequest, NodeKind, NodeState, RpcReply, RpcRequest,
    Status,
};

/// Why a sample's bytes could not be decoded. Always names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The sample ends inside a field.
    #[error("truncated sample: field `{field}` needs {needed} bytes, {available} left")]
    Truncated {
        /// The field.
        field: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A field's value is not allowed.
    #[error("invalid field `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Not plain CDR.
    #[error("unsupported encapsulation {0:02x?} (expected plain CDR 00 00 or 00 01)")]
    Encapsulation([u8; 2]),
    /// Bytes after the last field that are not alignment padding.
    #[error("{0} bytes after the last field (at most 3 zero bytes of padding may follow)")]
    Trailing(usize),
    /// Not even the encapsulation header.
    #[error("sample shorter than the 4-byte encapsulation header")]
    NoHeader,
}

/// A type that travels on one DDS topic: its registered type name and its CDR body.
pub trait WireType: Sized {
    /// The type name registered in DDS (endpoints match on topic name + type name).
    const TYPE_NAME: &'static str;

    /// The CDR body (after the encapsulation header), padded to 4 bytes.
    fn encode(&self) -> Vec<u8>;

    /// Decodes a body. `body` is the whole received buffer after the header, so payload
    /// fields can be returned as zero-copy slices of it. Trailing padding is ignored.
    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError>;

    /// The full serialized payload: encapsulation header `00 01 00 00` (CDR_LE) then the body.
    /// This is what a packet capture shows; the DDS layer adds the header itself.
    fn to_payload(&self) -> Vec<u8> {
        let body = self.encode();
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&[0, 1, 0, 0]);
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a full serialized payload (header included), as captured on the wire.
    fn from_payload(payload: &[u8]) -> Result<Self, WireError> {
        let (order, body) = split_encapsulation(payload)?;
        Self::decode(&Bytes::copy_from_slice(body), order)
    }
}

/// Splits a serialized payload into its byte order and body. Accepts CDR_BE and CDR_LE.
pub fn split_encapsulation(payload: &[u8]) -> Result<(ByteOrder, &[u8]), WireError> {
    if payload.len() < 4 {
        return Err(WireError::NoHeader);
    }
    let order = match [payload[0], payload[1]] {
        [0, 0] => ByteOrder::Big,
        [0, 1] => ByteOrder::Little,
        other => return Err(WireError::Encapsulation(other)),
    };
    Ok((order, &payload[4..]))
}
