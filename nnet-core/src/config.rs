//! Settings, with documented defaults. Plain data: building one costs nothing, checking
//! it is [`EndpointConfig::validate`] / [`ClientConfig::validate`].

use std::time::Duration;

use crate::arq::ArqConfig;
use crate::endpoint::trust::TrustedGateways;

/// Settings of one conversation, the same on both sides.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The KCP engine's settings. The session layer sets `empty_message_hello` itself
    /// (empty messages are reserved for the NEW hello) and, on a client,
    /// `announce_room` (every data segment may have to go out as NEW). Default: the
    /// reference's defaults plus nnet's loss recovery (`recent_ack` and `ack_repeat`,
    /// invisible on the wire; BENCHMARKS.md shows what they gain under loss).
    pub arq: ArqConfig,
    /// A client PINGs its line after this long without receiving anything. Default 2 s.
    pub keepalive: Duration,
    /// A session that receives nothing for this long is closed with
    /// [`Timeout`](crate::event::CloseReason::Timeout). Default 30 s.
    pub idle_timeout: Duration,
    /// How long `close()` waits for sent data to be acknowledged before it sends the FIN
    /// anyway. Default 5 s.
    pub linger: Duration,
    /// FIN transmissions when closing (the first one and its repeats, one per RTO) unless
    /// the peer answers with its own FIN first. Default 4: the FIN and up to 3 repeats
    /// (PROTOCOL.md section 5).
    pub fin_sends: u8,
    /// KICK transmissions (one per RTO) before the server frees a kicked session that
    /// never answered. Default 6: the KICK and up to 5 repeats (PROTOCOL.md section 5).
    pub kick_sends: u8,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            arq: with_loss_recovery(ArqConfig::default()),
            keepalive: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(5),
            fin_sends: 4,
            kick_sends: 6,
        }
    }
}

/// `arq` with nnet's loss recovery on: time-based loss detection and repeated ACKs
/// while ACKs are being lost.
fn with_loss_recovery(arq: ArqConfig) -> ArqConfig {
    ArqConfig {
        recent_ack: true,
        ack_repeat: true,
        ..arq
    }
}

impl SessionConfig {
    /// Settings for low latency: the KCP engine in fast mode (nodelay 1, interval 10 ms,
    /// fast resend 2, no congestion window) with nnet's loss recovery, other settings
    /// default.
    pub fn fast() -> Self {
        SessionConfig {
            arq: with_loss_recovery(ArqConfig::fast()),
            ..SessionConfig::default()
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.arq.validate().map_err(ConfigError::Arq)?;
        if self.fin_sends == 0 || self.kick_sends == 0 {
            return Err(ConfigError::Invalid(
                "fin_sends and kick_sends must be at least 1",
            ));
        }
        if self.keepalive.is_zero() || self.idle_timeout <= self.keepalive {
            return Err(ConfigError::Invalid(
                "keepalive must be non-zero and shorter than idle_timeout",
            ));
        }
        Ok(())
    }
}

/// Settings of a server [`Endpoint`](crate::endpoint::Endpoint).
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Settings every session of this endpoint uses.
    pub session: SessionConfig,
    /// Sessions held at once; a new one beyond this is refused. Default 1,000,000.
    pub max_sessions: usize,
    /// Sessions that have not yet received a second datagram. Default 4096.
    pub max_unconfirmed: usize,
    /// How long an unconfirmed session may wait for its second datagram before it is
    /// freed. Default 10 s (longer than a client's keepalive, so an idle client's PING
    /// confirms it in time).
    pub handshake_timeout: Duration,
    /// New sessions accepted per source IP per second. Default 64.
    pub max_new_per_source_per_sec: u32,
    /// FIN(reset) and FIN(collision) answers per second for the whole endpoint.
    /// Default 1000.
    pub max_resets_per_sec: u32,
    /// Shortest gap between two resets to one source. Default 100 ms.
    pub reset_interval_per_source: Duration,
    /// Capacity of each table keyed by source address (rate limits). Default 16384.
    pub source_table_capacity: usize,
    /// Accept plain KCP clients (a PUSH with sn = 0 and una = 0 for an unknown conv
    /// starts a session bound to its source). Default `true`.
    pub accept_plain_kcp: bool,
    /// Sources whose filled path blocks are believed. Default: none.
    pub trusted_gateways: TrustedGateways,
    /// Seed of the endpoint's keyed hashing; give each endpoint a random one in
    /// production (the adapters do). Default 0.
    pub seed: u64,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            session: SessionConfig::default(),
            max_sessions: 1_000_000,
            max_unconfirmed: 4096,
            handshake_timeout: Duration::from_secs(10),
            max_new_per_source_per_sec: 64,
            max_resets_per_sec: 1000,
            reset_interval_per_source: Duration::from_millis(100),
            source_table_capacity: 16384,
            accept_plain_kcp: true,
            trusted_gateways: TrustedGateways::default(),
            seed: 0,
        }
    }
}

impl EndpointConfig {
    /// Checks the settings; [`Endpoint::new`](crate::endpoint::Endpoint::new) calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.session.validate()?;
        if self.max_sessions == 0 || self.max_unconfirmed == 0 {
            return Err(ConfigError::Invalid(
                "max_sessions and max_unconfirmed must be at least 1",
            ));
        }
        if self.max_sessions > u32::MAX as usize / 2 {
            return Err(ConfigError::Invalid("max_sessions must be below 2^31"));
        }
        if self.source_table_capacity == 0 {
            return Err(ConfigError::Invalid(
                "source_table_capacity must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Settings of a client [`Connection`](crate::client::Connection).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Settings of the session.
    pub session: SessionConfig,
    /// How many times a conv collision (FIN collision) is retried with a fresh conv
    /// before the connection gives up with
    /// [`Collision`](crate::event::CloseReason::Collision). Default 3.
    pub max_collision_retries: u8,
    /// The conv of the first attempt. `None` (the default) draws a random one from
    /// `seed`; an application that numbers its conversations itself sets it. A collision
    /// still retries with random convs. Must not be 0.
    pub conv: Option<u32>,
    /// Seed of the connection's random choices (conv, session token). The adapters draw
    /// it from the operating system; a fixed seed makes a run repeatable.
    pub seed: u64,
    /// The current line becomes suspect when nothing came back from it for this long
    /// while something is unacknowledged or a keepalive PING is unanswered (never less
    /// than twice the session's RTO, so a slow line is not suspected for being slow).
    /// Default 500 ms.
    pub line_timeout: Duration,
    /// A probe round PINGs every line again after this long. Default 250 ms.
    pub probe_interval: Duration,
    /// A probe round without any answer ends after this long: one failed attempt.
    /// Default 4 s.
    pub probe_timeout: Duration,
    /// After the first answer of a round, wait this long for faster lines' answers
    /// (the round ends earlier once every line answered). Default 50 ms.
    pub probe_grace: Duration,
    /// Failed probe rounds in a row before the connection closes with
    /// [`Unreachable`](crate::event::CloseReason::Unreachable). Default 10.
    pub max_retries: u32,
    /// Move to a line that stays clearly faster than the current one. Default `None`
    /// (off): the client leaves a line only when it fails.
    pub faster_line: Option<FasterLine>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            session: SessionConfig::default(),
            max_collision_retries: 3,
            conv: None,
            seed: 0,
            line_timeout: Duration::from_millis(500),
            probe_interval: Duration::from_millis(250),
            probe_timeout: Duration::from_secs(4),
            probe_grace: Duration::from_millis(50),
            max_retries: 10,
            faster_line: None,
        }
    }
}

impl ClientConfig {
    /// Checks the settings; [`Connection::connect`](crate::client::Connection::connect) calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.session.validate()?;
        if self.conv == Some(0) {
            return Err(ConfigError::Invalid("conv must not be 0 (probes use it)"));
        }
        if self.line_timeout.is_zero() {
            return Err(ConfigError::Invalid("line_timeout must be above zero"));
        }
        if self.probe_interval.is_zero() || self.probe_interval > self.probe_timeout {
            return Err(ConfigError::Invalid(
                "probe_interval must be above zero and at most probe_timeout",
            ));
        }
        if self.probe_grace >= self.probe_timeout {
            return Err(ConfigError::Invalid(
                "probe_grace must be shorter than probe_timeout",
            ));
        }
        if self.max_retries == 0 {
            return Err(ConfigError::Invalid("max_retries must be at least 1"));
        }
        if let Some(faster) = &self.faster_line {
            faster.validate()?;
        }
        Ok(())
    }
}

/// When a client moves, unasked, to a faster line
/// ([`ClientConfig::faster_line`]). The hysteresis: a candidate must beat the current
/// line by both margins in `confirmations` checks in a row, and a line that failed
/// within `failure_memory` is never a candidate, so a flapping line cannot pull the
/// session back and forth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FasterLine {
    /// How often all lines are probed while the current one is healthy (one PING per
    /// line per check). Default 10 s.
    pub check_interval: Duration,
    /// The candidate's RTT must be at most this percentage of the current line's.
    /// Default 70.
    pub max_rtt_percent: u8,
    /// ... and at least this much lower. Default 20 ms.
    pub min_gain: Duration,
    /// Checks in a row the same candidate must win. Default 3.
    pub confirmations: u8,
    /// A line that failed this recently is not a candidate. Default 60 s.
    pub failure_memory: Duration,
}

impl Default for FasterLine {
    fn default() -> Self {
        FasterLine {
            check_interval: Duration::from_secs(10),
            max_rtt_percent: 70,
            min_gain: Duration::from_millis(20),
            confirmations: 3,
            failure_memory: Duration::from_secs(60),
        }
    }
}

impl FasterLine {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.check_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "faster_line.check_interval must be above zero",
            ));
        }
        if self.max_rtt_percent == 0 || self.max_rtt_percent >= 100 {
            return Err(ConfigError::Invalid(
                "faster_line.max_rtt_percent must be within 1..=99",
            ));
        }
        if self.confirmations == 0 {
            return Err(ConfigError::Invalid(
                "faster_line.confirmations must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A setting that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The KCP engine refused its settings.
    #[error("KCP engine settings: {0}")]
    Arq(crate::arq::ArqConfigError),
    /// The client's line list cannot be used.
    #[error("lines: {0}")]
    Lines(#[from] crate::line::LinesError),
    /// A session or endpoint setting is out of range.
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
}
