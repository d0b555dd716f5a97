//! The job protocol's state machines: [`client`] (the main's side) and [`server`] (the
//! computing node's side), over what they share in [`core`], whose DDS side is in
//! [`endpoints`].

pub mod client;
pub mod core;
pub mod endpoints;
pub(crate) mod requests;
pub mod server;
