//! # nnet-sim
//!
//! A deterministic network simulator for nnet: it runs `nnet-core` state machines
//! (clients, servers) directly on virtual time, with gateways, balancers and lossy
//! links between them, and a schedule of faults. One `u64` seed fixes every random
//! choice, so a failing run replays exactly.
//!
//! - [`link`]: one direction of a link (latency, jitter, loss, duplication, reordering,
//!   bandwidth, MTU, up/down);
//! - [`proxy`]: gateways (fill path blocks, a proxy session per client) and balancers
//!   (by conv or by client address);
//! - [`plain`]: plain C KCP clients; [`forge`]: an attacker's datagrams;
//! - [`world`]: every host, the event queue and the fault schedule;
//! - [`check`]: the invariants; [`scenario`]: the suite and how to run one;
//! - [`report`]: a run's metrics (JSON) and timeline (SVG);
//! - [`compare`]: nnet's engine and the C KCP side by side under loss.

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
