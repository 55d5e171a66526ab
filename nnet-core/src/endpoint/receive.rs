//! What the endpoint does with one datagram: the tables of PROTOCOL.md sections 3, 4
//! and 6, row by row.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, trace};

use super::entry::{confirm_if_second, Entry, Head};
use super::Endpoint;
use crate::arq::Arq;
use crate::clock::is_newer;
use crate::event::{RemoteChange, ServerEvent};
use crate::session::Session;
use crate::transmit::Transmit;
use crate::wire::{self, Cmd, Datagram, FinReason, Header, PathBlock};

impl Endpoint {
    pub(super) fn receive(&mut self, now: Instant, from: SocketAddr, payload: Bytes) {
        let datagram = match Datagram::parse(payload) {
            Ok(datagram) => datagram,
            Err(error) => {
                trace!(%from, %error, "malformed datagram");
                self.stats.drops.malformed += 1;
                return;
            }
        };
        let first = *datagram.first();
        if first.cmd == Cmd::Ping {
            self.answer_ping(now, from, &first);
            return;
        }
        match self.by_conv.get(first.conv) {
            Some(slot) => self.receive_known(now, from, slot, &datagram),
            None => self.receive_unknown(now, from, &datagram),
        }
    }

    /// PING: one PONG of the same size, saying whether the conv is live (section 6).
    /// From the session's own remote it also counts as a keepalive.
    fn answer_ping(&mut self, now: Instant, from: SocketAddr, ping: &Header) {
        let slot = self.by_conv.get(ping.conv);
        if let Some(slot) = slot {
            self.note_keepalive(now, from, slot);
        }
        self.stats.pongs += 1;
        self.push_response(Transmit {
            to: from,
            payload: wire::pong(ping, slot.is_some()),
        });
    }

    /// A PING for the session in `slot`: from its remote, a keepalive and one more
    /// datagram of the session. Touches the session's head only, unless the session is
    /// not yet confirmed (then its record too).
    fn note_keepalive(&mut self, now: Instant, from: SocketAddr, slot: u32) {
        let Some(head) = self.slots.head_mut(slot) else {
            return;
        };
        if head.remote != from {
            return;
        }
        head.keepalive = Some(now);
        head.pings += 1;
        if head.confirmed {
            return;
        }
        if let Some((head, entry)) = self.slots.parts_mut(slot) {
            if confirm_if_second(head, entry) {
                self.unconfirmed -= 1;
            }
        }
    }

    /// Section 3 (NEW rows for an unknown conv) and section 4 (plain KCP, stale).
    fn receive_unknown(&mut self, now: Instant, from: SocketAddr, datagram: &Datagram) {
        let first = *datagram.first();
        match first.cmd {
            Cmd::New if first.sn == 0 => self.accept(now, from, datagram),
            Cmd::New if first.una == 0 => self.stats.drops.overtaken_first += 1,
            Cmd::Push if first.sn == 0 && first.una == 0 && self.config.accept_plain_kcp => {
                self.accept(now, from, datagram)
            }
            Cmd::New | Cmd::Push | Cmd::Ack | Cmd::Wask | Cmd::Wins => {
                self.stats.drops.stale += 1;
                if self.answer_allowed(now, from) {
                    self.stats.resets += 1;
                    self.push_response(Transmit {
                        to: from,
                        payload: wire::fin(first.conv, FinReason::Reset),
                    });
                }
            }
            Cmd::Fin | Cmd::Kick | Cmd::Pong | Cmd::Ping => {
                self.stats.drops.unknown_control += 1;
            }
        }
    }

    /// Both rate limits of section 4: per source and for the whole endpoint.
    fn answer_allowed(&mut self, now: Instant, to: SocketAddr) -> bool {
        let allowed = self.answers_per_source.allow(to, now) && self.answers_global.allow(now);
        if !allowed {
            self.stats.drops.answer_rate += 1;
        }
        allowed
    }

    /// Starts a session for a valid first segment, within the limits of section 8.
    fn accept(&mut self, now: Instant, from: SocketAddr, datagram: &Datagram) {
        let trusted = self.config.trusted_gateways.contains(&from);
        if self.by_conv.len() >= self.config.max_sessions {
            self.stats.drops.max_sessions += 1;
            return;
        }
        if self.unconfirmed >= self.config.max_unconfirmed {
            self.stats.drops.max_unconfirmed += 1;
            return;
        }
        if !trusted && !self.new_per_source.allow(from.ip(), now) {
            self.stats.drops.source_rate += 1;
            return;
        }
        let first = *datagram.first();
        let Ok(arq) = Arq::new_shared(first.conv, &self.arq_config) else {
            return; // unreachable: the config was validated in Endpoint::new
        };
        let announce = datagram.segments().next().and_then(|s| s.announce);
        let mut real_ip = from;
        if let Some(PathBlock::Filled(addr)) = announce.map(|a| a.path) {
            if trusted {
                real_ip = addr;
            } else {
                self.stats.drops.untrusted_path_block += 1;
            }
        }
        let token = announce.map(|a| a.token);
        let session = Session::new(arq, now);
        let entry = Entry::new(session, first.conv, first.ts, from, real_ip, token, now);
        let plain_kcp = token.is_none();
        let slot = self.insert(Head::new(from), entry);
        let conn = self.conn_id(slot);
        debug!(conv = first.conv, %from, %real_ip, plain_kcp, "session accepted");
        self.events.push_back(ServerEvent::Accepted {
            conn,
            conv: first.conv,
            remote: from,
            real_ip,
            plain_kcp,
        });
        self.deliver(now, from, slot, datagram);
    }

    /// Section 3 (NEW rows for a known conv), rebinding, and the session's own traffic.
    fn receive_known(&mut self, now: Instant, from: SocketAddr, slot: u32, datagram: &Datagram) {
        let first = *datagram.first();
        let conn = self.conn_id(slot);
        let Some((head, entry)) = self.slots.parts_mut(slot) else {
            return;
        };
        let mut moved = None;
        if first.cmd == Cmd::New {
            let announce = datagram.segments().next().and_then(|s| s.announce);
            let Some(announce) = announce.filter(|a| Some(a.token) == entry.token) else {
                // Another token: a collision if it starts a conversation, else forged.
                if first.sn == 0 {
                    self.answer_collision(now, from, first.conv);
                } else {
                    entry.stats.drops += 1;
                    self.stats.drops.forged_new += 1;
                }
                return;
            };
            if from != entry.remote && is_newer(first.ts, entry.fresh_ts) {
                moved = Some(RemoteChange::LineSwitch);
            }
            if from == entry.remote || moved.is_some() {
                if let PathBlock::Filled(addr) = announce.path {
                    if self.config.trusted_gateways.contains(&from) {
                        if entry.real_ip != addr {
                            entry.real_ip = addr;
                            self.events.push_back(ServerEvent::RealIpChanged {
                                conn,
                                real_ip: addr,
                            });
                        }
                    } else {
                        self.stats.drops.untrusted_path_block += 1;
                    }
                }
            }
        } else if from != entry.remote {
            let newest_push = newest_ts(datagram, |cmd| cmd == Cmd::Push);
            let rebinding = from.ip() == entry.remote.ip()
                && newest_push.is_some_and(|ts| is_newer(ts, entry.fresh_ts));
            if !rebinding {
                entry.stats.drops += 1;
                self.stats.drops.wrong_remote += 1;
                return;
            }
            moved = Some(RemoteChange::Rebinding);
        }
        if let Some(cause) = moved {
            let previous = entry.remote;
            entry.remote = from;
            head.remote = from;
            // What is in flight went to the old remote: send it again now, from a
            // fresh RTO, rather than after the old path's backed-off timeouts.
            entry.session.arq_mut().on_path_change(None);
            entry.stats.remote_changes += 1;
            self.stats.remote_changes += 1;
            debug!(conv = first.conv, %previous, %from, ?cause, "remote changed");
            self.events.push_back(ServerEvent::RemoteChanged {
                conn,
                from: previous,
                to: from,
                cause,
            });
        }
        self.deliver(now, from, slot, datagram);
    }

    /// FIN(collision) to a NEW sn = 0 with another token (rate-limited like resets).
    fn answer_collision(&mut self, now: Instant, to: SocketAddr, conv: u32) {
        if self.answer_allowed(now, to) {
            self.stats.collisions += 1;
            self.push_response(Transmit {
                to,
                payload: wire::fin(conv, FinReason::Collision),
            });
        }
    }

    /// Hands a datagram the session accepted to it: data and ACKs to the engine, FIN
    /// to the session, freshness of the remote, confirmation.
    fn deliver(&mut self, now: Instant, from: SocketAddr, slot: u32, datagram: &Datagram) {
        let now_ms = self.clock.ms(now);
        let Some((head, entry)) = self.slots.parts_mut(slot) else {
            return;
        };
        // Only the current remote may end the session (a late datagram from a line
        // the client has left is taken as data, nothing more).
        let from_remote = entry.remote == from;
        let mut fin = None;
        let mut unexpected = false;
        let mut newest_data = None;
        for (header, _) in datagram.headers() {
            match header.cmd {
                Cmd::Fin if from_remote => fin = Some(FinReason::from_u8(header.frg)),
                Cmd::Kick | Cmd::Pong => unexpected = true,
                cmd if cmd.carries_data() => newest_data = Some(newer(newest_data, header.ts)),
                _ => {}
            }
        }
        if newest_data.is_some() {
            // Data to store and acknowledge: buffers from the pool, not from malloc.
            entry.adopt_pooled_buffers(&mut self.pool);
        }
        if entry.session.input(now, now_ms, datagram).is_err() {
            entry.stats.drops += 1;
            self.stats.drops.refused_by_session += 1;
            return;
        }
        if let Some(ts) = newest_data {
            entry.fresh_ts = newer(Some(entry.fresh_ts), ts);
        }
        let confirms = confirm_if_second(head, entry);
        if let Some(reason) = fin {
            entry.session.on_fin(reason);
        }
        if confirms {
            self.unconfirmed -= 1;
        }
        if unexpected {
            self.stats.drops.unexpected_command += 1;
        }
        self.after_activity(slot);
    }
}

/// The newest (wrapping) `ts` among the datagram's segments whose command `keep`s.
fn newest_ts(datagram: &Datagram, keep: impl Fn(Cmd) -> bool) -> Option<u32> {
    datagram
        .headers()
        .filter(|(header, _)| keep(header.cmd))
        .fold(None, |newest, (header, _)| Some(newer(newest, header.ts)))
}

/// The newer (wrapping) of `ts` and `than`, if any.
fn newer(than: Option<u32>, ts: u32) -> u32 {
    match than {
        Some(old) if !is_newer(ts, old) => old,
        _ => ts,
    }
}
