//! The report of one run: its metrics as JSON and its timeline as an SVG picture.
//!
//! [`record`] runs a scenario in steps of [`SAMPLE_EVERY`] (stepping gives exactly the
//! run [`scenario::run`] gives) and samples every line of the first [`MAX_CLIENTS`]
//! clients: the line's probe RTT, the session's RTT, congestion window and bytes in
//! flight while the line carries the session, and the datagrams its links lost. Line
//! switches, closes and faults become markers. [`Metrics`] serializes to JSON with
//! [`Metrics::to_json`]; [`timeline_svg`] draws one client's timeline.

use std::time::Duration;

use plotters::prelude::*;
use serde::Serialize;

use crate::scenario::{self, RunReport, Scenario};
use crate::world::{Fault, World};

/// Time between two samples.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Clients sampled (the first ones); every client is in the totals.
pub const MAX_CLIENTS: usize = 4;

/// A report could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The client asked for was not sampled.
    #[error("client {0} was not sampled (only the first {MAX_CLIENTS} are)")]
    NoSuchClient(usize),
    /// Drawing failed.
    #[error("drawing the timeline: {0}")]
    Draw(String),
}

/// One line of one client at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct LineSample {
    /// Time since the start, ms.
    pub at_ms: u64,
    /// Client index.
    pub client: usize,
    /// Line index.
    pub line: usize,
    /// Its role (`Current`, `Suspect`, `Standby`, `Silent`).
    pub state: String,
    /// Smoothed PING round-trip time of the line, if it ever answered.
    pub probe_rtt_ms: Option<f64>,
    /// The session's smoothed RTT, while the line carries it.
    pub session_rtt_ms: Option<u32>,
    /// The session's congestion window in segments, while the line carries it.
    pub cwnd: Option<u32>,
    /// Payload bytes sent and not acknowledged, while the line carries the session
    /// (else 0).
    pub in_flight_bytes: usize,
    /// Datagrams dropped so far (loss, down, queue, MTU) on the line's path: its two
    /// links and its gateway's two upstream links (which other clients share).
    pub lost: u64,
}

/// Something that happened, drawn as a vertical mark.
#[derive(Clone, Debug, Serialize)]
pub struct Marker {
    /// Time since the start, ms.
    pub at_ms: u64,
    /// The client it concerns (`None`: the whole world, e.g. a server restart).
    pub client: Option<usize>,
    /// What happened.
    pub what: String,
}

/// Totals of one client.
#[derive(Clone, Debug, Serialize)]
pub struct ClientMetrics {
    /// Client index.
    pub client: usize,
    /// Its conv at the end.
    pub conv: Option<u32>,
    /// Messages it sent.
    pub sent: usize,
    /// Messages it received.
    pub received: usize,
    /// Line switches (the first choice not counted).
    pub switches: usize,
    /// When it closed (ms) and why.
    pub closed: Option<(u64, String)>,
    /// Data segments it sent, retransmissions included.
    pub data_segments_out: u64,
    /// Its retransmissions (timeout, fast, and resends after a switch).
    pub retransmissions: u64,
}

/// Totals of one server.
#[derive(Clone, Debug, Serialize)]
pub struct ServerMetrics {
    /// Server index.
    pub server: usize,
    /// Restarts during the run.
    pub restarts: u32,
    /// Sessions at the end.
    pub sessions_at_end: usize,
    /// Sessions accepted (since the last restart).
    pub accepted: u64,
    /// Datagrams received and sent (since the last restart).
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// FIN(reset) answers.
    pub resets: u64,
    /// FIN(collision) answers.
    pub collisions: u64,
}

/// Everything a report says about one run.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Whether every invariant held.
    pub passed: bool,
    /// The invariants that did not.
    pub violations: Vec<String>,
    /// Length of the run, ms.
    pub duration_ms: u64,
    /// Most sessions a server held at once.
    pub peak_sessions: usize,
    /// Most datagrams in flight in the network at once.
    pub peak_in_flight_datagrams: usize,
    /// Per client.
    pub clients: Vec<ClientMetrics>,
    /// Per server.
    pub servers: Vec<ServerMetrics>,
    /// The sampled timeline.
    pub samples: Vec<LineSample>,
    /// Switches, closes and faults.
    pub markers: Vec<Marker>,
}

impl Metrics {
    /// The metrics as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("metrics are plain data")
    }
}

/// A recorded run: the checked run and its metrics.
#[derive(Debug)]
pub struct Recording {
    /// The run, checked.
    pub report: RunReport,
    /// What the report shows.
    pub metrics: Metrics,
}

/// Runs `scenario` with `seed`, sampling every [`SAMPLE_EVERY`], and checks it.
pub fn record(scenario: &Scenario, seed: u64) -> Recording {
    let mut samples = Vec::new();
    let report = scenario::run_with(scenario, seed, |world| {
        let duration = world.spec.duration;
        let mut at = Duration::ZERO;
        while at < duration && world.stalled.is_none() {
            at = (at + SAMPLE_EVERY).min(duration);
            world.run_until(at);
            sample(world, &mut samples);
        }
    });
    let metrics = metrics(&report, samples);
    Recording { report, metrics }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Samples every line of the first clients.
fn sample(world: &World, out: &mut Vec<LineSample>) {
    let at_ms = ms(world.elapsed());
    for (client, host) in world.clients.iter().enumerate().take(MAX_CLIENTS) {
        let Some(conn) = &host.conn else {
            continue;
        };
        let current = conn.current_line();
        for (line, info) in conn.lines().iter().enumerate() {
            let carries = current == Some(info.line) && !conn.is_closed();
            let arq = conn.arq();
            let lost = world
                .line_links(client, line)
                .iter()
                .map(|link| {
                    let s = link.stats();
                    s.lost + s.down + s.queue_full + s.too_big
                })
                .sum();
            out.push(LineSample {
                at_ms,
                client,
                line,
                state: format!("{:?}", info.state),
                probe_rtt_ms: info.stats.srtt.map(|d| d.as_secs_f64() * 1000.0),
                session_rtt_ms: carries.then(|| arq.srtt_ms()),
                cwnd: carries.then(|| arq.cwnd()),
                in_flight_bytes: if carries { arq.in_flight_bytes() } else { 0 },
                lost,
            });
        }
    }
}

fn metrics(report: &RunReport, samples: Vec<LineSample>) -> Metrics {
    let world = &report.world;
    let mut markers = Vec::new();
    for (at, fault) in &world.spec.faults {
        let client = match fault {
            Fault::LineDown { client, .. }
            | Fault::LineUp { client, .. }
            | Fault::Kick { client, .. }
            | Fault::Forge { client, .. } => Some(*client),
            Fault::UpstreamDown(_)
            | Fault::UpstreamUp(_)
            | Fault::GatewayRestart(_)
            | Fault::ServerRestart(_) => None,
        };
        markers.push(Marker {
            at_ms: ms(*at),
            client,
            what: format!("{fault:?}"),
        });
    }
    let clients = world
        .clients
        .iter()
        .enumerate()
        .map(|(i, host)| {
            for (at, from, to, reason) in &host.switches {
                markers.push(Marker {
                    at_ms: ms(*at),
                    client: Some(i),
                    what: format!("switch {from:?} -> {to} ({reason:?})"),
                });
            }
            if let Some((at, reason)) = host.closed {
                markers.push(Marker {
                    at_ms: ms(at),
                    client: Some(i),
                    what: format!("closed ({reason:?})"),
                });
            }
            let arq = host.conn.as_ref().map(|c| c.arq().stats());
            ClientMetrics {
                client: i,
                conv: host.conv,
                sent: host.sent.len(),
                received: host.received.len(),
                switches: host.switches.len().saturating_sub(1),
                closed: host.closed.map(|(at, r)| (ms(at), format!("{r:?}"))),
                data_segments_out: arq.map_or(0, |a| a.data_segments_out),
                retransmissions: arq.map_or(0, |a| {
                    a.timeout_retransmits + a.fast_retransmits + a.path_resends
                }),
            }
        })
        .collect();
    markers.sort_by_key(|m| m.at_ms);
    let servers = world
        .servers
        .iter()
        .enumerate()
        .map(|(s, host)| {
            let stats = host.endpoint.stats();
            ServerMetrics {
                server: s,
                restarts: host.restarts,
                sessions_at_end: host.endpoint.len(),
                accepted: stats.sessions_accepted,
                datagrams_in: stats.datagrams_in,
                datagrams_out: stats.datagrams_out,
                resets: stats.resets,
                collisions: stats.collisions,
            }
        })
        .collect();
    Metrics {
        scenario: report.scenario.to_string(),
        seed: report.seed,
        passed: report.passed(),
        violations: report.violations.clone(),
        duration_ms: ms(world.spec.duration),
        peak_sessions: world.peak_sessions,
        peak_in_flight_datagrams: world.peak_in_flight,
        clients,
        servers,
        samples,
        markers,
    }
}

/// Colours of lines 0, 1, 2, ... (cycled).
const LINE_COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Draws `client`'s timeline as an SVG picture: four panels over time (RTT, congestion
/// window, bytes in flight, datagrams lost), one colour per line, grey marks at the
/// client's switches and closes and at the world's faults.
pub fn timeline_svg(metrics: &Metrics, client: usize) -> Result<String, ReportError> {
    let samples: Vec<&LineSample> = metrics
        .samples
        .iter()
        .filter(|s| s.client == client)
        .collect();
    if samples.is_empty() {
        return Err(ReportError::NoSuchClient(client));
    }
    let lines = samples.iter().map(|s| s.line).max().unwrap_or(0) + 1;
    let marks: Vec<f64> = metrics
        .markers
        .iter()
        .filter(|m| m.client.is_none_or(|c| c == client))
        .map(|m| m.at_ms as f64 / 1000.0)
        .collect();
    let end = metrics.duration_ms as f64 / 1000.0;
    type Pick = fn(&LineSample) -> Option<f64>;
    let panels: [(&str, Pick); 4] = [
        ("RTT, ms (solid: session, dotted: probes)", |s| {
            s.session_rtt_ms.map(f64::from)
        }),
        ("congestion window, segments", |s| s.cwnd.map(f64::from)),
        ("bytes in flight", |s| Some(s.in_flight_bytes as f64)),
        (
            "datagrams lost on the line's path (both ways, total)",
            |s| Some(s.lost as f64),
        ),
    ];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 1000)).into_drawing_area();
        root.fill(&WHITE).map_err(draw)?;
        let title = format!(
            "{} seed {}: client {client} ({})",
            metrics.scenario,
            metrics.seed,
            if metrics.passed { "passed" } else { "FAILED" }
        );
        let root = root.titled(&title, ("sans-serif", 20)).map_err(draw)?;
        for ((caption, pick), area) in panels.iter().zip(root.split_evenly((4, 1))) {
            let series = per_line(&samples, lines, *pick);
            let probes = if caption.starts_with("RTT") {
                per_line(&samples, lines, |s| s.probe_rtt_ms)
            } else {
                Vec::new()
            };
            let top = series
                .iter()
                .chain(&probes)
                .flatten()
                .map(|p| p.1)
                .fold(1.0f64, f64::max)
                * 1.1;
            let mut chart = ChartBuilder::on(&area)
                .caption(*caption, ("sans-serif", 14))
                .margin(8)
                .x_label_area_size(24)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..end, 0.0..top)
                .map_err(draw)?;
            chart
                .configure_mesh()
                .x_desc("s")
                .light_line_style(WHITE)
                .draw()
                .map_err(draw)?;
            chart
                .draw_series(
                    marks.iter().map(|&t| {
                        PathElement::new(vec![(t, 0.0), (t, top)], RGBColor(170, 170, 170))
                    }),
                )
                .map_err(draw)?;
            for (line, points) in series.into_iter().enumerate() {
                let colour = LINE_COLOURS[line % LINE_COLOURS.len()];
                chart
                    .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                    .map_err(draw)?
                    .label(format!("line {line}"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
            }
            for (line, points) in probes.into_iter().enumerate() {
                let colour = LINE_COLOURS[line % LINE_COLOURS.len()];
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| Circle::new(p, 1, colour.filled())),
                    )
                    .map_err(draw)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(draw)?;
        }
        root.present().map_err(draw)?;
    }
    Ok(svg)
}

/// For each line, the (seconds, value) points of the samples where `pick` has a value.
fn per_line(
    samples: &[&LineSample],
    lines: usize,
    pick: impl Fn(&LineSample) -> Option<f64>,
) -> Vec<Vec<(f64, f64)>> {
    (0..lines)
        .map(|line| {
            samples
                .iter()
                .filter(|s| s.line == line)
                .filter_map(|s| pick(s).map(|v| (s.at_ms as f64 / 1000.0, v)))
                .collect()
        })
        .collect()
}

fn draw(e: impl std::fmt::Display) -> ReportError {
    ReportError::Draw(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_death_shows_in_samples_markers_and_picture() {
        let scenario = scenario::find("line-death-2").expect("scenario");
        let recording = record(scenario, 1);
        let m = &recording.metrics;
        assert!(m.passed, "{:?}", m.violations);
        // Line 0 carries the session before the death at 3 s, line 1 after it.
        let carrying = |at_ms: u64| {
            m.samples
                .iter()
                .find(|s| s.at_ms == at_ms && s.client == 0 && s.cwnd.is_some())
                .map(|s| s.line)
        };
        assert_eq!(carrying(2000), Some(0));
        assert_eq!(carrying(5000), Some(1));
        let lost_line_0 = m
            .samples
            .iter()
            .filter(|s| s.line == 0)
            .map(|s| s.lost)
            .max();
        assert!(
            lost_line_0 > Some(0),
            "the dead line drops what is sent on it"
        );
        assert!(m
            .markers
            .iter()
            .any(|mk| mk.what.contains("switch Some(0) -> 1")));
        let json: serde_json::Value = serde_json::from_str(&m.to_json()).expect("JSON");
        assert_eq!(json["scenario"], "line-death-2");
        assert_eq!(
            json["samples"].as_array().map(Vec::len),
            Some(m.samples.len())
        );
        let svg = timeline_svg(m, 0).expect("picture");
        assert!(svg.starts_with("<svg") && svg.contains("congestion window"));
        assert!(matches!(
            timeline_svg(m, 9),
            Err(ReportError::NoSuchClient(9))
        ));
    }

    #[test]
    fn recording_in_steps_gives_the_same_run() {
        let scenario = scenario::find("loss-10").expect("scenario");
        let stepped = record(scenario, 3).report;
        let whole = scenario::run(scenario, 3);
        assert_eq!(stepped.trace, whole.trace);
        assert_eq!(
            stepped.world.clients[0].received,
            whole.world.clients[0].received
        );
    }
}
