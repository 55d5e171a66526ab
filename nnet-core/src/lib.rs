//! # nnet-core
//!
//! The sans-IO core of nnet, a reliable-UDP transport that speaks KCP on the wire and
//! keeps a session alive while its client moves between proxy "lines".
//!
//! Nothing in this crate touches a socket, a clock, a thread or a random source: time
//! and datagrams come in as calls, datagrams and timer deadlines come out of polls.
//! The same inputs in the same order give the same outputs, byte for byte.
//!
//! Layers, bottom up:
//! - [`wire`]: parse and write segments (PROTOCOL.md sections 1-3);
//! - [`arq`]: the KCP engine (retransmission, windows, RTO, fragmentation), wire
//!   compatible with the reference C `ikcp.c`.

#![warn(missing_docs)]

pub mod arq;
pub mod client;
mod clock;
pub mod config;
pub mod endpoint;
pub mod event;
pub mod gateway;
mod huge_pages;
pub mod line;
mod prefetch;
mod session;
pub mod transmit;
pub mod wire;
