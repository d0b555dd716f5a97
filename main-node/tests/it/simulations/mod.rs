//! Simulations in the loop, as separate processes: sample streams with the online trainer
//! (`online`), and Dragon's AI-in-the-loop workflow (`ailoop`).

mod ailoop;
mod online;
