//! # nnet-sim
//!
//! A deterministic network simulator for nnet: it runs `nnet-core` state machines
//! (clients, servers) directly on virtual time, with gateways, balancers and lossy
//! links between them, and a schedule of faults. One `u64` seed fixes every random
//! choice, so a failing run replays exactly.

#![warn(missing_docs)]

pub mod check;
pub mod compare;
pub mod forge;
pub mod link;
pub mod plain;
pub mod proxy;
pub mod report;
pub mod scenario;
pub mod world;
