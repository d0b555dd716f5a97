//! The binaries' tests, one binary: `main-node` and `computing-node` as separate processes
//! (training, all-reduce, pipelines, inference, simulations in the loop, observation, forged
//! traffic, Docker, and amlip against the Fast DDS peer that speaks AML-IP).

mod common;

mod allreduce;
mod bench;
mod docker;
mod forged;
mod inference;
mod interop;
mod observe;
mod own_data;
mod pipeline;
mod processes;
mod simulations;
mod train;
mod trusted;
