//! A pass-through (de)serializer adapter: rustdds moves bytes, [`crate::wire`] owns the layout.
//!
//! Keeping the encoding out of rustdds's serde machinery gives byte-exact control (AML-IP's
//! GENERIC payload is not a CDR sequence), zero-copy sends (`Bytes` is handed over as is), and
//! lets a malformed sample be logged and dropped by our decoder instead of surfacing as a reader
//! error.

use bytes::Bytes;
use rustdds::no_key::{Decode, DefaultDecoder, DeserializerAdapter, SerializerAdapter};
use rustdds::RepresentationIdentifier;

use crate::wire::ByteOrder;

/// A sample body as it travels: the bytes after the encapsulation header and their byte order.
#[derive(Clone)]
pub struct RawSample {
    pub body: Bytes,
    pub order: ByteOrder,
}

impl std::fmt::Debug for RawSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawSample({} bytes, {:?})", self.body.len(), self.order)
    }
}

/// The adapter; it never fails (decoding happens later, in [`crate::wire`]).
pub struct RawAdapter;

/// Uninhabited: the raw adapter cannot fail.
#[derive(Debug, thiserror::Error)]
#[error("unreachable")]
pub enum Infallible {}

impl DeserializerAdapter<RawSample> for RawAdapter {
    type Error = Infallible;
    type Decoded = RawSample;

    fn supported_encodings() -> &'static [RepresentationIdentifier] {
        &[
            RepresentationIdentifier::CDR_LE,
            RepresentationIdentifier::CDR_BE,
        ]
    }

    fn transform_decoded(decoded: RawSample) -> RawSample {
        decoded
    }
}

#[derive(Clone)]
pub struct RawDecoder;

impl<'de> Decode<'de, RawSample> for RawDecoder {
    type Error = Infallible;

    fn decode_bytes(
        self,
        input_bytes: &'de [u8],
        encoding: RepresentationIdentifier,
    ) -> Result<RawSample, Infallible> {
        let order = if encoding == RepresentationIdentifier::CDR_BE {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        };
        Ok(RawSample {
            body: Bytes::copy_from_slice(input_bytes),
            order,
        })
    }
}

impl DefaultDecoder<RawSample> for RawAdapter {
    type Decoder = RawDecoder;
    const DECODER: RawDecoder = RawDecoder;
}

impl SerializerAdapter<RawSample> for RawAdapter {
    type Error = Infallible;

    fn output_encoding() -> RepresentationIdentifier {
        // Plain CDR little endian: never XCDR2, which AML-IP decodes differently and fails on.
        RepresentationIdentifier::CDR_LE
    }

    fn to_bytes(value: &RawSample) -> Result<Bytes, Infallible> {
        Ok(value.body.clone())
    }
}
