//! amlip's library tests, one binary (each extra test binary links the whole library): the
//! job protocol between real nodes over DDS on loopback, the direct path, hostile peers,
//! payloads, the README's programs, robustness, sample streams and served models.

mod common;

mod direct;
mod hostile;
mod infer_models;
mod payloads;
mod protocol;
mod readme;
mod robustness;
mod streams;
