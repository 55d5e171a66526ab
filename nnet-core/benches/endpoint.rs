//! Endpoint scale: heap bytes per idle session and the cost of one datagram, with 1k,
//! 100k and 1M sessions on one [`Endpoint`], and the reference C KCP's bytes per
//! control block for comparison.
//!
//! Memory: a counting global allocator (a wrapper around `System` that keeps the live
//! requested bytes) measures the heap. The C engine's `malloc`s are routed through it
//! with `ikcp_allocator`, so both are counted the same way (requested bytes, not the
//! allocator's own overhead). For `N` sessions the endpoint is created, then each
//! session is started like a client starts it: an empty NEW sn = 0 (the hello) from its
//! own source address, then a PING from the same address, which confirms it; the
//! answers and events are drained as they come. Then the clock moves past one flush,
//! every session sends its ACK and gives its buffers back. Bytes per session =
//! (live bytes now - live bytes of the empty endpoint) / `N`, which includes the
//! endpoint's tables (conv map, slab, timer heap, queues) amortized over the sessions.
//! The C figure is 100k `ikcp_create`s, each fed a first PUSH sn = 0 and flushed once
//! (so it has sent its ACK), counted the same way.
//!
//! Datagrams: with `N` confirmed sessions, one iteration is one datagram from a random
//! session's own address: a PUSH with the next sequence number and 32 bytes (`push`),
//! or a PING (`ping`), handled, its events taken, then the clock moved one flush
//! interval and the timers run (the PUSH's ACK goes out) and every output drained. This
//! is what a server does when each session gets less than one datagram per interval.
//! The datagrams are built outside the timed region, 10k at a time.
//!
//! Batches (`push_batch`, `ping_batch`): the same datagrams, handed over 32 at a time
//! with `handle_datagrams` (as a `recvmmsg`-fed server would), then the events taken,
//! the clock moved one flush interval, the timers run and the outputs drained; the
//! figure is per datagram.
//!
//! Run: `cargo bench -p nnet-core --bench endpoint` (about 3 minutes on 2 cores; the 1M
//! endpoint takes about 0.85 GB). `NNET_BENCH_SESSIONS=1000,100000` builds and runs only
//! those session counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::raw::c_void;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion};
use nnet_ckcp::{CKcp, CKcpConfig};
use nnet_core::config::{EndpointConfig, SessionConfig};
use nnet_core::endpoint::Endpoint;
use nnet_core::wire::{self, Cmd, Header, PathBlock};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Live requested heap bytes of the whole process (Rust and, once hooked, C).
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Live bytes the C engine requested (also counted in `LIVE`).
static C_LIVE: AtomicIsize = AtomicIsize::new(0);

/// `System`, counting the bytes it hands out.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

// The C engine's allocator hook (ikcp.c); the library is linked through nnet-ckcp.
extern "C" {
    fn ikcp_allocator(
        new_malloc: unsafe extern "C" fn(usize) -> *mut c_void,
        new_free: unsafe extern "C" fn(*mut c_void),
    );
}

/// Bytes in front of each C allocation, holding its size (keeps 16-byte alignment).
const C_HEADER: usize = 16;

fn c_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(C_HEADER)?, C_HEADER).ok()
}

unsafe extern "C" fn c_malloc(size: usize) -> *mut c_void {
    let Some(layout) = c_layout(size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size.
    let base = unsafe { System.alloc(layout) };
    if base.is_null() {
        return std::ptr::null_mut();
    }
    LIVE.fetch_add(size as isize, Ordering::Relaxed);
    C_LIVE.fetch_add(size as isize, Ordering::Relaxed);
    // SAFETY: `base` holds at least C_HEADER bytes, aligned for a usize.
    unsafe {
        base.cast::<usize>().write(size);
        base.add(C_HEADER).cast()
    }
}

unsafe extern "C" fn c_free(ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` came from `c_malloc`, which put the size C_HEADER bytes before it.
    unsafe {
        let base = ptr.cast::<u8>().sub(C_HEADER);
        let size = base.cast::<usize>().read();
        LIVE.fetch_sub(size as isize, Ordering::Relaxed);
        C_LIVE.fetch_sub(size as isize, Ordering::Relaxed);
        System.dealloc(base, c_layout(size).expect("layout of a live block"));
    }
}

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];

/// The session counts to run: `NNET_BENCH_SESSIONS` (comma-separated) or [`SIZES`].
fn sizes() -> Vec<usize> {
    match std::env::var("NNET_BENCH_SESSIONS") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("NNET_BENCH_SESSIONS: a list of numbers")
            })
            .collect(),
        Err(_) => SIZES.to_vec(),
    }
}
const C_SESSIONS: usize = 100_000;
/// Datagrams built at a time, outside the timed region.
const BATCH: usize = 10_000;
/// Datagrams per `handle_datagrams` call in the `_batch` rows (what one `recvmmsg`
/// might return).
const RECV_BATCH: usize = 32;
const PAYLOAD: [u8; 32] = [0x5a; 32];

fn session_config() -> SessionConfig {
    SessionConfig {
        // Nothing may time out while the benchmark moves the clock (10 ms a datagram).
        idle_timeout: Duration::from_secs(365 * 24 * 3600),
        ..SessionConfig::fast()
    }
}

fn endpoint_config(sessions: usize) -> EndpointConfig {
    EndpointConfig {
        session: session_config(),
        max_sessions: sessions.max(1),
        max_new_per_source_per_sec: u32::MAX,
        ..EndpointConfig::default()
    }
}

/// Session `i`'s client address: its own IP (10.0.0.0/8), one port.
fn source(i: usize) -> SocketAddr {
    let i = i as u32 + 1;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
        40_000,
    )
}

fn conv(i: usize) -> u32 {
    i as u32 + 1
}

fn header(conv: u32, cmd: Cmd, sn: u32, ts: u32, len: usize) -> Header {
    Header {
        conv,
        cmd,
        frg: 0,
        wnd: 128,
        ts,
        sn,
        una: 0,
        len: len as u32,
    }
}

/// The client's hello: an empty NEW sn = 0 with an empty path block and a token.
fn hello(conv: u32) -> Bytes {
    let mut out = BytesMut::with_capacity(52);
    header(conv, Cmd::New, 0, 0, 0).encode(&mut out);
    out.put_slice(&PathBlock::Empty.to_bytes());
    out.put_slice(&conv.to_le_bytes());
    out.put_slice(&conv.to_le_bytes());
    out.freeze()
}

fn push(conv: u32, sn: u32, ts: u32) -> Bytes {
    let mut out = BytesMut::with_capacity(24 + PAYLOAD.len());
    header(conv, Cmd::Push, sn, ts, PAYLOAD.len()).encode(&mut out);
    out.put_slice(&PAYLOAD);
    out.freeze()
}

fn drain(server: &mut Endpoint) -> usize {
    let mut n = 0;
    while let Some(t) = server.poll_transmit() {
        black_box(t);
        n += 1;
    }
    while let Some(e) = server.poll_event() {
        black_box(e);
    }
    n
}

/// An endpoint with `n` confirmed, idle sessions, its clock and flush interval.
struct Loaded {
    server: Endpoint,
    now: Instant,
    interval: Duration,
    /// The next PUSH sequence number of each session.
    next_sn: Vec<u32>,
    /// Live bytes of the empty endpoint and with the sessions.
    empty_bytes: isize,
    loaded_bytes: isize,
}

fn load(n: usize) -> Loaded {
    let start = Instant::now();
    let config = endpoint_config(n);
    let interval = Duration::from_millis(u64::from(config.session.arq.interval_ms));
    let before = live();
    let mut server = Endpoint::new(config, start).expect("config");
    let empty_bytes = live() - before;
    let now = start;
    for i in 0..n {
        server.handle_datagram(now, source(i), hello(conv(i)));
        server.handle_datagram(now, source(i), wire::ping(conv(i), 0, 1));
        drain(&mut server);
    }
    assert_eq!((server.len(), server.unconfirmed()), (n, 0));
    // The first flush sends the ACKs; the next one finds the sessions quiet and gives
    // their buffers back.
    let now = now + interval;
    server.handle_timeout(now);
    let acks = drain(&mut server);
    assert_eq!(acks, n, "every session acknowledged its hello");
    let now = now + interval;
    server.handle_timeout(now);
    assert_eq!(drain(&mut server), 0);
    assert_eq!(
        server.poll_timeout(),
        Some(start + session_config().idle_timeout),
        "every session is idle: only the idle timers are left"
    );
    Loaded {
        server,
        now,
        interval,
        next_sn: vec![1; n],
        empty_bytes,
        loaded_bytes: live() - before,
    }
}

/// Heap of `n` C control blocks, each fed a first segment and flushed once.
fn c_kcp_bytes(n: usize) -> (f64, f64) {
    let config = CKcpConfig::fast();
    let first = push(0, 0, 0);
    let (before, c_before) = (live(), C_LIVE.load(Ordering::Relaxed));
    let mut all = Vec::with_capacity(n);
    let vec_bytes = live() - before;
    for i in 0..n {
        let mut kcp = CKcp::new(conv(i), &config).expect("ikcp_create");
        let mut datagram = first.to_vec();
        datagram[..4].copy_from_slice(&conv(i).to_le_bytes());
        kcp.input(&datagram).expect("input");
        assert!(kcp.recv().is_some());
        kcp.update(0);
        kcp.update(config.interval);
        let mut acks = 0;
        kcp.drain_output(|_| acks += 1);
        assert_eq!(acks, 1);
        all.push(kcp);
    }
    let total = (live() - before - vec_bytes) as f64 / n as f64;
    let c_only = (C_LIVE.load(Ordering::Relaxed) - c_before) as f64 / n as f64;
    drop(all);
    (c_only, total)
}

fn bench_datagrams(c: &mut Criterion, n: usize, loaded: &mut Loaded, rng: &mut SmallRng) {
    let mut group = c.benchmark_group("endpoint_datagram");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (kind, per_call) in [
        ("push", 1),
        ("ping", 1),
        ("push_batch", RECV_BATCH),
        ("ping_batch", RECV_BATCH),
    ] {
        let push_kind = kind.starts_with("push");
        group.bench_function(BenchmarkId::new(kind, n), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters as usize;
                let mut batch = Vec::with_capacity(BATCH);
                while left > 0 {
                    let k = left.min(BATCH);
                    left -= k;
                    let ts = (loaded.now.elapsed().as_millis() as u32).wrapping_add(1);
                    batch.clear();
                    for _ in 0..k {
                        let i = rng.random_range(0..n);
                        let datagram = if push_kind {
                            let sn = loaded.next_sn[i];
                            loaded.next_sn[i] += 1;
                            push(conv(i), sn, ts)
                        } else {
                            wire::ping(conv(i), ts, 7)
                        };
                        batch.push((source(i), datagram));
                    }
                    let server = &mut loaded.server;
                    let mut now = loaded.now;
                    let timer = Instant::now();
                    // Taken from the front in order without moving the rest
                    // (draining a prefix of the `Vec` would shift the remainder,
                    // hundreds of KB, on every call).
                    let mut datagrams = batch.drain(..).peekable();
                    while datagrams.peek().is_some() {
                        if per_call == 1 {
                            if let Some((from, datagram)) = datagrams.next() {
                                server.handle_datagram(now, from, datagram);
                            }
                        } else {
                            server.handle_datagrams(now, datagrams.by_ref().take(per_call));
                        }
                        while let Some(e) = server.poll_event() {
                            black_box(e);
                        }
                        now += loaded.interval;
                        server.handle_timeout(now);
                        while let Some(t) = server.poll_transmit() {
                            black_box(t);
                        }
                    }
                    elapsed += timer.elapsed();
                    loaded.now = now;
                }
                elapsed
            })
        });
    }
    group.finish();
}

fn main() {
    // SAFETY: set before any C engine exists, so every block it frees came from
    // `c_malloc`.
    unsafe { ikcp_allocator(c_malloc, c_free) };
    let mut criterion = Criterion::default().configure_from_args();
    let mut rng = SmallRng::seed_from_u64(0x656e_6470);
    let mut rows = Vec::new();
    for n in sizes() {
        let building = Instant::now();
        let mut loaded = load(n);
        let built_in = building.elapsed();
        let per_session = (loaded.loaded_bytes - loaded.empty_bytes) as f64 / n as f64;
        println!(
            "endpoint with {n} idle sessions: {per_session:.0} bytes/session \
             (empty endpoint {} bytes, loaded {} bytes, built in {built_in:.1?})",
            loaded.empty_bytes, loaded.loaded_bytes
        );
        rows.push((n, per_session));
        bench_datagrams(&mut criterion, n, &mut loaded, &mut rng);
        let stats = *loaded.server.stats();
        assert_eq!(stats.sessions_closed, 0, "no session closed during the run");
        assert_eq!(
            stats.drops,
            Default::default(),
            "every datagram was taken by its session"
        );
        let before_drop = live();
        drop(loaded);
        println!("  dropped: {} bytes freed", before_drop - live());
    }
    let (c_only, c_total) = c_kcp_bytes(C_SESSIONS);
    println!(
        "C KCP, {C_SESSIONS} control blocks: {c_only:.0} bytes/session allocated by ikcp.c \
         ({c_total:.0} with the nnet-ckcp wrapper)"
    );
    println!();
    println!("| sessions | nnet bytes/session |");
    println!("|---|---|");
    for (n, bytes) in rows {
        println!("| {n} | {bytes:.0} |");
    }
    println!("| C KCP, {C_SESSIONS} | {c_only:.0} (ikcp.c), {c_total:.0} with wrapper |");
    criterion.final_summary();
}
