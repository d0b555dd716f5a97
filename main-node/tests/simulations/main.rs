//! Simulations in the loop, as separate processes: sample streams with the online trainer
//! (`online`), and Dragon's AI-in-the-loop workflow (`ailoop`). One test binary for both: CI
//! links every test binary against the whole library, which costs more than these tests run.

#[path = "../common/mod.rs"]
mod common;

mod ailoop;
mod online;
