//! # nnet-ckcp
//!
//! Test and benchmark support for nnet: the reference C KCP (`ikcp.c`, compiled by the
//! `kcp-io` crate with `cc`) behind a small safe API that works in memory. Output
//! datagrams are collected in a queue instead of being handed to a socket, so a test or
//! benchmark can move them wherever it wants, at whatever virtual time it wants; or,
//! with `CKcp::update_with`, handed to a closure as `ikcp.c` writes them (no copy).
//!
//! This crate is not part of nnet's runtime; it exists so that interop tests, lock-step
//! comparisons and benchmarks all talk to the C engine through one wrapper.

use std::collections::VecDeque;
use std::os::raw::{c_char, c_int, c_long, c_void};
use std::ptr::NonNull;

use kcp_io::sys;

/// The C engine's settings that `ikcp.c` exposes through setter functions or fields.
///
/// `Default` is exactly what `ikcp_create` starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CKcpConfig {
    /// Maximum datagram size (`ikcp_setmtu`), default 1400.
    pub mtu: u32,
    /// Send window in segments, default 32.
    pub send_window: u32,
    /// Receive window in segments, default 128 (`ikcp_wndsize` never goes below 128).
    pub recv_window: u32,
    /// 0 normal, 1 or 2 nodelay (`ikcp_nodelay`), default 0.
    pub nodelay: u32,
    /// Flush interval in ms, default 100 (clamped to 10..=5000 by ikcp.c).
    pub interval: u32,
    /// Fast retransmit after this many skipping ACKs, 0 = off (default).
    pub resend: u32,
    /// `true` turns the congestion window off (`nc = 1`), default `false`.
    pub no_cwnd: bool,
    /// Stream mode, default `false`.
    pub stream: bool,
    /// Largest fragment count per message (`ikcp_setmaxfrag`), default 127.
    pub max_frag: u32,
    /// Retransmissions of one segment after which the link is dead, default 20.
    pub dead_link: u32,
}

impl Default for CKcpConfig {
    fn default() -> Self {
        CKcpConfig {
            mtu: 1400,
            send_window: 32,
            recv_window: 128,
            nodelay: 0,
            interval: 100,
            resend: 0,
            no_cwnd: false,
            stream: false,
            max_frag: sys::IKCP_DEFAULT_MAX_FRAG,
            dead_link: 20,
        }
    }
}

impl CKcpConfig {
    /// KCP's "fast mode": nodelay 1, interval 10, resend 2, nc 1.
    pub fn fast() -> Self {
        CKcpConfig {
            nodelay: 1,
            interval: 10,
            resend: 2,
            no_cwnd: true,
            ..CKcpConfig::default()
        }
    }
}

/// An error code returned by an `ikcp_*` function (always negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CKcpError(pub i32);

impl std::fmt::Display for CKcpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ikcp returned {}", self.0)
    }
}

impl std::error::Error for CKcpError {}

/// Where the C output callback writes: every datagram back to back in one buffer, so
/// collecting output costs no allocation once the buffer has grown; or, during
/// [`CKcp::update_with`], straight to that call's sink.
struct OutputQueue {
    bytes: Vec<u8>,
    /// (start, len) of each datagram in `bytes`, oldest first.
    datagrams: VecDeque<(usize, usize)>,
    /// During [`CKcp::update_with`]: its sink, a `*mut &mut dyn FnMut(&[u8])` to a
    /// reference on that call's stack. Null otherwise.
    sink: *mut c_void,
}

impl Default for OutputQueue {
    fn default() -> Self {
        OutputQueue {
            bytes: Vec::new(),
            datagrams: VecDeque::new(),
            sink: std::ptr::null_mut(),
        }
    }
}

/// The sink type [`OutputQueue::sink`] points to.
type Sink<'a> = &'a mut dyn FnMut(&[u8]);

impl OutputQueue {
    fn push(&mut self, datagram: &[u8]) {
        if self.datagrams.is_empty() {
            self.bytes.clear();
        }
        self.datagrams.push_back((self.bytes.len(), datagram.len()));
        self.bytes.extend_from_slice(datagram);
    }
}

unsafe extern "C" fn collect_output(
    buf: *const c_char,
    len: c_int,
    _kcp: *mut sys::IKCPCB,
    user: *mut c_void,
) -> c_int {
    // SAFETY: `user` is the `OutputQueue` boxed by `CKcp::new`, which outlives the C
    // engine, and ikcp.c passes a buffer of `len` readable bytes.
    unsafe {
        let queue = &mut *(user as *mut OutputQueue);
        let datagram = std::slice::from_raw_parts(buf as *const u8, len.max(0) as usize);
        if queue.sink.is_null() {
            queue.push(datagram);
        } else {
            // `update_with` set it to its sink, which lives until it resets it to null.
            let sink = &mut *(queue.sink as *mut Sink<'_>);
            sink(datagram);
        }
    }
    0
}

/// One reference C KCP control block, owned, with its output collected in memory.
pub struct CKcp {
    kcp: NonNull<sys::IKCPCB>,
    output: Box<OutputQueue>,
}

impl std::fmt::Debug for CKcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let raw = self.raw();
        f.debug_struct("CKcp")
            .field("conv", &raw.conv)
            .field("snd_nxt", &raw.snd_nxt)
            .field("rcv_nxt", &raw.rcv_nxt)
            .field("waiting", &self.wait_send())
            .finish()
    }
}

impl CKcp {
    /// Creates a C engine for `conv` with `config` applied.
    pub fn new(conv: u32, config: &CKcpConfig) -> Result<CKcp, CKcpError> {
        let mut output = Box::<OutputQueue>::default();
        let user = (&mut *output) as *mut OutputQueue as *mut c_void;
        // SAFETY: ikcp_create only stores `user`; it returns null on allocation failure.
        let raw = unsafe { sys::ikcp_create(conv, user) };
        let kcp = NonNull::new(raw).ok_or(CKcpError(-1))?;
        let mut this = CKcp { kcp, output };
        // SAFETY: `kcp` is a live control block owned by `this`.
        unsafe {
            sys::ikcp_setoutput(this.kcp.as_ptr(), collect_output);
            check(sys::ikcp_setmtu(this.kcp.as_ptr(), config.mtu as c_int))?;
            sys::ikcp_wndsize(
                this.kcp.as_ptr(),
                config.send_window as c_int,
                config.recv_window as c_int,
            );
            sys::ikcp_nodelay(
                this.kcp.as_ptr(),
                config.nodelay as c_int,
                config.interval as c_int,
                config.resend as c_int,
                config.no_cwnd as c_int,
            );
            check(sys::ikcp_setmaxfrag(
                this.kcp.as_ptr(),
                config.max_frag as c_int,
            ))?;
        }
        let raw = this.raw_mut();
        raw.stream = config.stream as c_int;
        raw.dead_link = config.dead_link;
        Ok(this)
    }

    /// Queues one message (`ikcp_send`); returns the bytes accepted.
    pub fn send(&mut self, message: &[u8]) -> Result<usize, CKcpError> {
        let len = c_int::try_from(message.len()).map_err(|_| CKcpError(-2))?;
        // SAFETY: the pointer and length describe `message`.
        let sent = unsafe { sys::ikcp_send(self.kcp.as_ptr(), message.as_ptr().cast(), len) };
        check(sent).map(|n| n as usize)
    }

    /// Size of the next whole message, if one is ready (`ikcp_peeksize`).
    pub fn peek_size(&self) -> Option<usize> {
        // SAFETY: read-only call on a live control block.
        let size = unsafe { sys::ikcp_peeksize(self.kcp.as_ptr()) };
        usize::try_from(size).ok()
    }

    /// Receives the next whole message into `buf` (`ikcp_recv`); returns its length.
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, CKcpError> {
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: the pointer and length describe `buf`, which ikcp_recv writes at most
        // `len` bytes into.
        let got = unsafe { sys::ikcp_recv(self.kcp.as_ptr(), buf.as_mut_ptr().cast(), len) };
        check(got).map(|n| n as usize)
    }

    /// Receives the next whole message, if one is ready, into a new `Vec`.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        let size = self.peek_size()?;
        let mut message = vec![0u8; size];
        let got = self.recv_into(&mut message).ok()?;
        message.truncate(got);
        Some(message)
    }

    /// Feeds one received datagram (`ikcp_input`); returns ikcp's result code as an error
    /// when it rejected the datagram (it may have processed earlier segments first).
    pub fn input(&mut self, datagram: &[u8]) -> Result<(), CKcpError> {
        // SAFETY: the pointer and length describe `datagram`.
        let code = unsafe {
            sys::ikcp_input(
                self.kcp.as_ptr(),
                datagram.as_ptr().cast(),
                datagram.len() as c_long,
            )
        };
        check(code).map(|_| ())
    }

    /// Advances the clock to `now_ms` and flushes when the interval is due (`ikcp_update`).
    pub fn update(&mut self, now_ms: u32) {
        // SAFETY: live control block; output goes to our callback.
        unsafe { sys::ikcp_update(self.kcp.as_ptr(), now_ms) }
    }

    /// [`update`](Self::update), handing each output datagram to `sink` as `ikcp.c`
    /// writes it, in its own reused buffer, instead of collecting it: what an
    /// application whose output callback calls `sendto` does. This is the C engine's
    /// cheapest way out (no copy); the benchmarks use it.
    pub fn update_with(&mut self, now_ms: u32, mut sink: impl FnMut(&[u8])) {
        let mut sink: Sink<'_> = &mut sink;
        self.output.sink = (&mut sink as *mut Sink<'_>).cast();
        // SAFETY: live control block; the callback calls `sink` through the pointer
        // just set, which stays valid until it is reset below, after ikcp_update.
        unsafe { sys::ikcp_update(self.kcp.as_ptr(), now_ms) }
        self.output.sink = std::ptr::null_mut();
    }

    /// Flushes now, at the clock of the last `update` (`ikcp_flush`).
    pub fn flush(&mut self) {
        // SAFETY: live control block; output goes to our callback.
        unsafe { sys::ikcp_flush(self.kcp.as_ptr()) }
    }

    /// When `update` should next be called (`ikcp_check`).
    pub fn check(&self, now_ms: u32) -> u32 {
        // SAFETY: read-only call on a live control block.
        unsafe { sys::ikcp_check(self.kcp.as_ptr(), now_ms) }
    }

    /// Segments queued or in flight (`ikcp_waitsnd`).
    pub fn wait_send(&self) -> usize {
        // SAFETY: read-only call on a live control block.
        unsafe { sys::ikcp_waitsnd(self.kcp.as_ptr()) }.max(0) as usize
    }

    /// Whether the engine has declared the link dead (a segment hit `dead_link`).
    pub fn is_dead(&self) -> bool {
        self.raw().state == u32::MAX
    }

    /// Takes the oldest collected output datagram.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        let (start, len) = self.output.datagrams.pop_front()?;
        Some(self.output.bytes[start..start + len].to_vec())
    }

    /// Hands every collected output datagram to `each`, oldest first, without allocating.
    pub fn drain_output(&mut self, mut each: impl FnMut(&[u8])) {
        let queue = &mut *self.output;
        for (start, len) in queue.datagrams.drain(..) {
            each(&queue.bytes[start..start + len]);
        }
        queue.bytes.clear();
    }

    /// The C control block, read-only (RTT, RTO, cwnd, counters).
    pub fn raw(&self) -> &sys::IKCPCB {
        // SAFETY: `kcp` is live for as long as `self`.
        unsafe { self.kcp.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut sys::IKCPCB {
        // SAFETY: `kcp` is live for as long as `self`, and `&mut self` is unique.
        unsafe { self.kcp.as_mut() }
    }
}

impl Drop for CKcp {
    fn drop(&mut self) {
        // SAFETY: the control block was created by ikcp_create and is released once.
        unsafe { sys::ikcp_release(self.kcp.as_ptr()) }
    }
}

fn check(code: c_int) -> Result<c_int, CKcpError> {
    if code < 0 {
        Err(CKcpError(code))
    } else {
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves every datagram of `from` into `to`.
    fn deliver(from: &mut CKcp, to: &mut CKcp) {
        while let Some(datagram) = from.poll_output() {
            to.input(&datagram).expect("valid KCP datagram");
        }
    }

    #[test]
    fn two_c_engines_transfer_fragmented_messages() {
        let config = CKcpConfig::fast();
        let mut a = CKcp::new(7, &config).unwrap();
        let mut b = CKcp::new(7, &config).unwrap();
        let messages: Vec<Vec<u8>> = (0..50u32)
            .map(|i| {
                (0..(i * 997 % 5000) as usize)
                    .map(|j| (i as usize + j) as u8)
                    .collect()
            })
            .collect();
        for m in &messages {
            if !m.is_empty() {
                a.send(m).unwrap();
            }
        }
        let mut received = Vec::new();
        for now in (0..5_000).step_by(10) {
            a.update(now);
            b.update(now);
            deliver(&mut a, &mut b);
            deliver(&mut b, &mut a);
            while let Some(m) = b.recv() {
                received.push(m);
            }
        }
        let expected: Vec<_> = messages.into_iter().filter(|m| !m.is_empty()).collect();
        assert_eq!(received, expected);
        assert_eq!(a.wait_send(), 0);
    }

    #[test]
    fn oversized_message_is_refused_by_max_frag() {
        let mut a = CKcp::new(1, &CKcpConfig::default()).unwrap();
        assert_eq!(a.send(&vec![0; 1376 * 128]), Err(CKcpError(-2)));
        assert!(a.send(&vec![0; 1376 * 127]).is_ok());
    }

    #[test]
    fn update_with_hands_datagrams_to_the_sink_instead_of_collecting_them() {
        let mut a = CKcp::new(9, &CKcpConfig::fast()).unwrap();
        let mut b = CKcp::new(9, &CKcpConfig::fast()).unwrap();
        let message = vec![5u8; 3000];
        a.send(&message).unwrap();
        let mut datagrams = 0;
        a.update_with(0, |datagram| {
            datagrams += 1;
            b.input(datagram).expect("valid KCP datagram");
        });
        assert_eq!(datagrams, 3, "3000 bytes at MTU 1400");
        assert_eq!(a.poll_output(), None, "nothing collected");
        assert_eq!(b.recv(), Some(message));
        a.send(b"later").unwrap();
        a.update(100);
        assert!(
            a.poll_output().is_some(),
            "collected again after update_with"
        );
    }

    #[test]
    fn output_is_collected_in_order() {
        let mut a = CKcp::new(9, &CKcpConfig::default()).unwrap();
        a.send(b"one").unwrap();
        a.update(0);
        a.flush();
        let first = a.poll_output().expect("a datagram");
        assert_eq!(&first[..4], &9u32.to_le_bytes());
        assert_eq!(first[4], 81);
        assert_eq!(&first[24..], b"one");
    }
}
