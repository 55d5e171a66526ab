//! The KCP ARQ engine: reliable, ordered messages over unreliable datagrams.
//!
//! [`Arq`] follows the reference C `ikcp.c` segment for segment: the same send and
//! receive queues, una and ACK handling, RTT/RTO estimation with the normal and nodelay
//! back-off, fast retransmit with its limit, congestion window, zero-window probing
//! (WASK/WINS), fragmentation, stream mode and dead-link detection, with the same
//! defaults. Fed the same inputs at the same times, it emits the same datagrams (tested
//! against the C code in `tests/interop.rs`).
//!
//! What differs is only how the state is kept:
//! - the send and receive buffers are rings indexed by sequence number, so an ACK or an
//!   arriving segment costs O(1) instead of a list walk (the reference goes quadratic
//!   with large windows under loss); the send queue is the same ring's tail, so the
//!   window admits a segment without moving it;
//! - payloads of more than 64 bytes are [`bytes::Bytes`] slices: a message is
//!   fragmented without copying, a received segment is a slice of its datagram, and a
//!   one-segment message reaches the application without a copy (a fragmented one is
//!   lent as its fragments by [`Arq::recv_parts`], or joined into a buffer that is
//!   reused once the application dropped the previous one);
//! - payloads of at most 64 bytes are copied into the buffers' own entries instead
//!   (received ones always, sent ones through [`Arq::send_slice`]) and lent out by
//!   [`Arq::recv_with`]: a copy that small costs less than the atomic reference-count
//!   updates of a shared slice;
//! - outgoing datagrams share one buffer allocation instead of one per segment, and
//!   come out in runs of one size ([`Transmit`], [`Arq::poll_transmit`]: what one
//!   `sendmsg` with `UDP_SEGMENT` sends) with one reference count per run; a received
//!   run ([`Arq::input_batch`], what `UDP_GRO` hands over) is kept as one handle that
//!   the stored payloads point into, not one per datagram;
//! - input checks the common shapes of a datagram in one pass of independent loads
//!   (ACKs only, what a receiver's flush sends; segments of one size, what a bulk
//!   sender's flush sends) and takes each in by a loop of its own;
//! - [`Arq::check`] is O(1);
//! - buffers are released when idle, so an idle engine costs a few hundred bytes; the
//!   emptied ones ([`Buffers`]) can be handed to another engine (a server's pool).
//!
//! On top, two settings serve nnet's session layer: NEW segments (data sent with the
//! session token, [`Arq::set_announce`]) and the empty-message rule
//! ([`ArqConfig::reserve_empty_messages`]). Neither is active by default.
//!
//! Two more settings, also off by default, do better than the reference under loss
//! while staying wire-compatible with it: time-based loss detection
//! ([`ArqConfig::recent_ack`], sender side) and repeated ACKs for out-of-order segments
//! ([`ArqConfig::ack_repeat`], receiver side).

mod ack_repeat;
mod buffers;
mod config;
mod engine;
mod error;
mod kept;
mod output;
mod payload;
mod recent_ack;
mod recv_buf;
mod rtt;
mod send_buf;
mod seq;
mod stats;
#[cfg(test)]
mod tests;

pub use buffers::Buffers;
pub use config::{ArqConfig, ArqConfigError, MAX_FRAGMENTS, MAX_MTU, MIN_MTU, MIN_RECV_WINDOW};
pub use engine::{Arq, BatchReport, InputReport};
pub use error::{InputError, NoAnnounceRoom, SendError};
pub use output::{Transmit, MAX_TRANSMIT_BYTES, MAX_TRANSMIT_DATAGRAMS};
pub use recv_buf::MessageParts;
pub use rtt::{RTO_INITIAL_MS, RTO_MAX_MS, RTO_MIN_MS, RTO_MIN_NODELAY_MS};
pub use stats::ArqStats;
