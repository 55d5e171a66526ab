//! A client's lines (PROTOCOL.md section 6): the ways it can reach the server, what
//! each has shown, and the probe rounds that choose among them.
//!
//! Pure bookkeeping: the [`Connection`](crate::client::Connection) sends the PINGs
//! these types ask for and hands them the PONGs that come back.
//! - `LineSet`: the ordered list, stable ids across `set_lines`,
//!   per-line stats and rebinding requests;
//! - `ProbeRound`: one round of PINGs over every line, and its
//!   outcome (the fastest line, no answer, or nobody knows the session).

pub(crate) mod probe;
pub(crate) mod set;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Most lines a client takes (a limit on what one probe round costs).
pub const MAX_LINES: usize = 64;

/// A line list the client cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinesError {
    /// The list is empty: a client needs at least one line.
    #[error("the line list is empty: a client needs at least one line")]
    Empty,
    /// More lines than [`MAX_LINES`].
    #[error("{count} lines given, at most {MAX_LINES} are taken")]
    TooMany {
        /// Lines given.
        count: usize,
    },
}

/// How datagrams travel on a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One datagram per UDP packet.
    Udp,
    /// One datagram per frame (2-byte big-endian length, then the datagram) on a TCP
    /// stream, where UDP is blocked.
    Tcp,
}

/// One way to reach the server: usually a proxy or gateway in front of it. Two lines
/// are the same line when transport and address are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Line {
    /// UDP or TCP.
    pub transport: Transport,
    /// The proxy's (or server's) address.
    pub addr: SocketAddr,
}

impl Line {
    /// A UDP line to `addr`.
    pub fn udp(addr: SocketAddr) -> Line {
        Line {
            transport: Transport::Udp,
            addr,
        }
    }

    /// A TCP line to `addr` (datagrams framed with a 2-byte length).
    pub fn tcp(addr: SocketAddr) -> Line {
        Line {
            transport: Transport::Tcp,
            addr,
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        write!(f, "{transport}://{}", self.addr)
    }
}

/// The role a line plays right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineState {
    /// The session runs on it.
    Current,
    /// The session ran on it and it stopped answering (or said the server lost the
    /// session); it is being probed again.
    Suspect,
    /// Answered its last probe; a candidate for a switch.
    Standby,
    /// Has not answered its last probe (or was never probed).
    Silent,
}

/// What one line has shown so far; readable from
/// [`Connection::lines`](crate::client::Connection::lines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    /// PINGs sent on the line (probes and keepalives).
    pub pings: u64,
    /// PONGs received on the line.
    pub pongs: u64,
    /// Datagrams received on the line (PONGs included).
    pub datagrams_in: u64,
    /// Datagrams sent on the line.
    pub datagrams_out: u64,
    /// Smoothed PING round-trip time, if the line ever answered.
    pub srtt: Option<Duration>,
    /// Last PING round-trip time.
    pub last_rtt: Option<Duration>,
    /// Times the session moved onto this line.
    pub chosen: u64,
    /// Times the line became suspect while current.
    pub failures: u64,
    /// Fresh sockets asked for on this line.
    pub rebinds: u64,
}

impl LineStats {
    /// Folds one RTT sample in (weight 1/8, like TCP's SRTT).
    pub(crate) fn on_rtt(&mut self, rtt: Duration) {
        self.pongs += 1;
        self.last_rtt = Some(rtt);
        self.srtt = Some(match self.srtt {
            None => rtt,
            Some(srtt) => (srtt * 7 + rtt) / 8,
        });
    }

    /// Share of PINGs that went unanswered, 0.0 to 1.0.
    pub fn loss(&self) -> f64 {
        if self.pings == 0 {
            0.0
        } else {
            1.0 - (self.pongs.min(self.pings) as f64 / self.pings as f64)
        }
    }
}

/// A line with its role and history, as [`Connection::lines`](crate::client::Connection::lines)
/// reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineInfo {
    /// The line.
    pub line: Line,
    /// Its role now.
    pub state: LineState,
    /// Its counters and RTT.
    pub stats: LineStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_stats_smooth_rtt_and_count_loss() {
        let mut stats = LineStats {
            pings: 4,
            ..LineStats::default()
        };
        stats.on_rtt(Duration::from_millis(80));
        stats.on_rtt(Duration::from_millis(160));
        assert_eq!(stats.srtt, Some(Duration::from_millis(90)));
        assert_eq!(stats.loss(), 0.5);
    }

    #[test]
    fn lines_display_with_their_transport() {
        let addr: SocketAddr = "192.0.2.1:7000".parse().expect("addr");
        assert_eq!(Line::udp(addr).to_string(), "udp://192.0.2.1:7000");
        assert_eq!(Line::tcp(addr).to_string(), "tcp://192.0.2.1:7000");
        assert_ne!(Line::udp(addr), Line::tcp(addr));
    }
}
