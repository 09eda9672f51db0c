//! The bar plots by kind (`plots/by_variant_*.svg`), where one configuration was measured with
//! several librqbit variants or seeders.

use super::*;

/// The configurations ([`Condition`]: segment length, viewers, caps, network) measured with more
/// than one swarm kind (`swarm` and `swarm-<variant>`), with all their runs (HTTP's too). Plots by
/// kind are written for these; a sweep of one librqbit variant has none.
pub(super) fn variant_configs(runs: &[RunSummary]) -> BTreeMap<Condition, Vec<&RunSummary>> {
    let mut m: BTreeMap<Condition, Vec<&RunSummary>> = BTreeMap::new();
    for r in runs {
        m.entry(condition(r)).or_default().push(r);
    }
    m.retain(|_, rs| {
        let swarm_kinds: std::collections::BTreeSet<&str> = rs
            .iter()
            .filter(|r| r.transport == Transport::Swarm)
            .map(|r| r.kind.as_str())
            .collect();
        swarm_kinds.len() > 1
    });
    m
}

/// Values of one figure with the run kind as a category: one bar group per kind, one bar per
/// configuration in each group.
pub(super) struct Bars {
    /// The kinds on the x axis: `swarm`, then `swarm-<variant>` by name, then the others (`http`).
    pub(super) kinds: Vec<String>,
    /// Per configuration: its name, and per kind (as in `kinds`) every run's value.
    pub(super) series: Vec<(String, Vec<Vec<f64>>)>,
}

pub(super) fn bars_by_kind(
    configs: &BTreeMap<Condition, Vec<&RunSummary>>,
    filter: impl Fn(&RunSummary) -> bool,
    y: impl Fn(&RunSummary) -> f64,
) -> Bars {
    let mut kinds: Vec<String> = configs
        .values()
        .flatten()
        .filter(|r| filter(r))
        .map(|r| r.kind.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    kinds.sort_by_key(|k| {
        let rank = match k.as_str() {
            "swarm" => 0,
            k if k.starts_with("swarm-") => 1,
            _ => 2,
        };
        (rank, k.clone())
    });
    // Configurations are named by cap and network where they differ in them.
    let varies = Varies::of(configs.values().flatten().copied());
    let series = configs
        .iter()
        .map(|(c, rs)| {
            let name = format!(
                "{}s x {}{}",
                c.segment_ms as f64 / 1000.0,
                c.viewers,
                varies.suffix(rs[0])
            );
            let values = kinds
                .iter()
                .map(|k| {
                    rs.iter()
                        .filter(|r| filter(r) && &r.kind == k)
                        .map(|r| y(r))
                        .filter(|v| v.is_finite())
                        .collect()
                })
                .collect();
            (name, values)
        })
        .collect();
    Bars { kinds, series }
}

/// A bar chart with the run kind on the x axis.
pub(super) struct KindChart<'a> {
    pub(super) file: &'a str,
    pub(super) title: &'a str,
    pub(super) y_desc: &'a str,
    pub(super) log_y: bool,
    /// The figure's target, drawn as a dashed line, and its legend entry.
    pub(super) target: Option<(f64, &'a str)>,
    /// Digits of the mean written above each bar.
    pub(super) digits: usize,
    pub(super) legend: SeriesLabelPosition,
}

/// A categorical x axis: kind `i` is centred on `i`, the axis runs from -0.5 to kinds - 0.5, and
/// each kind's tick is labelled with its name.
pub(super) struct KindAxis<'a> {
    kinds: &'a [String],
}

impl KindAxis<'_> {
    fn end(&self) -> f64 {
        self.kinds.len().max(1) as f64 - 0.5
    }
}

impl Ranged for KindAxis<'_> {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value + 0.5) / (self.end() + 0.5);
        limit.0 + ((limit.1 - limit.0) as f64 * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.kinds.len()).map(|i| i as f64).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        -0.5..self.end()
    }
}

impl ValueFormatter<f64> for KindAxis<'_> {
    fn format_ext(&self, value: &f64) -> String {
        let i = value.round();
        match i >= 0.0 {
            true => self.kinds.get(i as usize).cloned().unwrap_or_default(),
            false => String::new(),
        }
    }
}

/// Draws each configuration's mean per kind as a bar, labelled with its value, every run as a dot
/// where a kind has more than one run, and the target as a dashed line.
pub(super) fn draw_bars(
    dir: &Path,
    chart: &KindChart<'_>,
    bars: &Bars,
) -> Result<PathBuf, ResultsError> {
    let path = dir.join(chart.file);
    let err = |e: &dyn std::fmt::Display| ResultsError::Plot {
        path: path.clone(),
        reason: e.to_string(),
    };
    let shown = |v: &f64| v.is_finite() && (!chart.log_y || *v > 0.0);
    let (lo, hi) = bars
        .series
        .iter()
        .flat_map(|(_, per_kind)| per_kind.iter().flatten().copied())
        .chain(chart.target.map(|t| t.0))
        .filter(shown)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let (y0, y1) = match (chart.log_y, hi.is_finite()) {
        (true, true) => (lo / 2.0, hi * 10.0),
        (true, false) => (1.0, 10.0),
        (false, true) if hi > 0.0 => (0.0, hi * 1.35),
        (false, _) => (0.0, 1.0),
    };
    let k = bars.kinds.len().max(1);
    let x_range = KindAxis { kinds: &bars.kinds };
    {
        let width = (120 + 180 * k).clamp(900, 4000) as u32;
        let root = SVGBackend::new(&path, (width, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut builder = ChartBuilder::on(&root);
        frame(&mut builder, chart.title);
        if chart.log_y {
            let ctx = builder
                .build_cartesian_2d(x_range, (y0..y1).log_scale())
                .map_err(|e| err(&e))?;
            draw_bar_series(ctx, chart, bars, y0, &err)?;
        } else {
            let ctx = builder
                .build_cartesian_2d(x_range, y0..y1)
                .map_err(|e| err(&e))?;
            draw_bar_series(ctx, chart, bars, y0, &err)?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(path)
}

/// The mesh, the bars (a mean per kind and series, its values as dots when there are several,
/// the mean written above), the target line and the legend, on either y axis.
fn draw_bar_series<'a, Y>(
    mut ctx: ChartContext<'a, SVGBackend<'a>, Cartesian2d<KindAxis<'a>, Y>>,
    chart: &KindChart<'_>,
    bars: &Bars,
    y0: f64,
    err: &dyn Fn(&dyn std::fmt::Display) -> ResultsError,
) -> Result<(), ResultsError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let shown = |v: &f64| v.is_finite() && (!chart.log_y || *v > 0.0);
    let k = bars.kinds.len().max(1);
    let slot = 0.8 / bars.series.len().max(1) as f64;
    let value_style = TextStyle::from(("sans-serif", 12).into_font()).pos(text_anchor::Pos::new(
        text_anchor::HPos::Center,
        text_anchor::VPos::Bottom,
    ));
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_desc("kind: swarm (the default), swarm-<variant> (librqbit changes off, or another seeder), http")
        .y_desc(chart.y_desc)
        .draw()
        .map_err(|e| err(&e))?;
    for (j, (name, per_kind)) in bars.series.iter().enumerate() {
        let color = Palette99::pick(j).to_rgba();
        // (bar centre, mean, values) per kind with a value to show.
        let shown_bars: Vec<(f64, f64, Vec<f64>)> = per_kind
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let v: Vec<f64> = v.iter().copied().filter(shown).collect();
                if v.is_empty() {
                    return None;
                }
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                Some((i as f64 - 0.4 + slot * (j as f64 + 0.5), mean, v))
            })
            .collect();
        ctx.draw_series(shown_bars.iter().map(|(c, mean, _)| {
            Rectangle::new(
                [(c - slot * 0.45, y0), (c + slot * 0.45, *mean)],
                color.filled(),
            )
        }))
        .map_err(|e| err(&e))?
        .label(name.as_str())
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        ctx.draw_series(
            shown_bars
                .iter()
                .filter(|(_, _, v)| v.len() > 1)
                .flat_map(|(c, _, v)| v.iter().map(move |&v| (*c, v)))
                .map(|p| Circle::new(p, 3, BLACK.filled())),
        )
        .map_err(|e| err(&e))?;
        // The mean above the bar and above every dot.
        ctx.draw_series(shown_bars.iter().map(|(c, mean, v)| {
            let top = v.iter().fold(*mean, |a, &b| a.max(b));
            Text::new(num(*mean, chart.digits), (*c, top), value_style.clone())
        }))
        .map_err(|e| err(&e))?;
    }
    if let Some((t, name)) = chart.target {
        ctx.draw_series(DashedLineSeries::new(
            [(-0.5, t), (k as f64 - 0.5, t)],
            8,
            5,
            RED.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label(name)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
    }
    legend(&mut ctx, chart.legend.clone(), err)
}

/// The plots by kind (`by_variant_*.svg`), for results with more than one swarm kind at one
/// configuration; none otherwise.
pub(super) fn write_variant_plots(
    dir: &Path,
    runs: &[RunSummary],
) -> Result<Vec<PathBuf>, ResultsError> {
    let configs = variant_configs(runs);
    if configs.is_empty() {
        return Ok(Vec::new());
    }
    let swarm = |r: &RunSummary| r.transport == Transport::Swarm;
    let any = |_: &RunSummary| true;
    let charts: Vec<(KindChart<'_>, Bars)> = vec![
        (
            KindChart {
                file: "by_variant_publisher_upload.svg",
                title: "Publisher upload per segment / segment size, by variant",
                y_desc: "copies of each segment the publisher sent",
                log_y: false,
                target: Some((1.1, "target: 1.1 copies or fewer")),
                digits: 2,
                legend: SeriesLabelPosition::UpperLeft,
            },
            bars_by_kind(&configs, any, |r| r.publisher_copies),
        ),
        (
            KindChart {
                file: "by_variant_peer_share.svg",
                title: "Share of payload bytes from other viewers, by variant",
                y_desc: "% of bytes received",
                log_y: false,
                target: Some((90.0, "target: 90% or more")),
                digits: 1,
                legend: SeriesLabelPosition::UpperRight,
            },
            bars_by_kind(&configs, swarm, |r| 100.0 * r.peer_share),
        ),
        (
            KindChart {
                file: "by_variant_stalls.svg",
                title: "Playback stalls (late segments over all viewers), by variant",
                y_desc: "stalls per run (target: 0)",
                log_y: false,
                target: None,
                digits: 1,
                legend: SeriesLabelPosition::UpperLeft,
            },
            bars_by_kind(&configs, any, |r| r.stalls as f64),
        ),
        (
            KindChart {
                file: "by_variant_duplicate_ratio.svg",
                title: "Payload received / bytes of the segments completed, by variant",
                y_desc: "fetched / needed",
                log_y: false,
                target: Some((1.05, "target: 1.05 or less")),
                digits: 3,
                legend: SeriesLabelPosition::UpperLeft,
            },
            bars_by_kind(&configs, any, |r| r.duplicate_ratio),
        ),
        (
            KindChart {
                file: "by_variant_setup_median.svg",
                title: "Setup per segment (median added -> first verified piece), by variant",
                y_desc: "ms (log)",
                log_y: true,
                target: Some((100.0, "target: 100 ms or less")),
                digits: 1,
                legend: SeriesLabelPosition::UpperLeft,
            },
            bars_by_kind(&configs, any, |r| r.setup_median_ms),
        ),
    ];
    charts
        .iter()
        .map(|(chart, bars)| draw_bars(dir, chart, bars))
        .collect()
}

/// The configurations whose runs have the figures every transport shares, with those runs.
pub(super) fn transport_configs(runs: &[RunSummary]) -> BTreeMap<Condition, Vec<&RunSummary>> {
    let mut m: BTreeMap<Condition, Vec<&RunSummary>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.playout_buffer_secs > 0.0) {
        m.entry(condition(r)).or_default().push(r);
    }
    m
}

/// The plots of the figures every transport shares, the transport on the x axis
/// (`by_transport_*.svg`): publisher upload, share from peers, stalls, bytes lost, startup, glass
/// to glass and protocol overhead. None for results without them.
pub(super) fn write_transport_plots(
    dir: &Path,
    runs: &[RunSummary],
) -> Result<Vec<PathBuf>, ResultsError> {
    let configs = transport_configs(runs);
    if configs.is_empty() {
        return Ok(Vec::new());
    }
    let any = |_: &RunSummary| true;
    let chart = |file, title, y_desc, digits, target| KindChart {
        file,
        title,
        y_desc,
        log_y: false,
        target,
        digits,
        legend: SeriesLabelPosition::UpperLeft,
    };
    let charts: Vec<(KindChart<'_>, Bars)> = vec![
        (
            chart(
                "by_transport_publisher_upload.svg",
                "Publisher's host upload (IP bytes) / bytes of the stream, by transport",
                "copies of the stream",
                2,
                None,
            ),
            bars_by_kind(&configs, any, |r| r.publisher_upload_per_stream),
        ),
        (
            chart(
                "by_transport_peer_share.svg",
                "Share of payload from other nodes, by transport",
                "% of payload received",
                1,
                None,
            ),
            bars_by_kind(&configs, any, |r| 100.0 * r.share_from_peers),
        ),
        (
            chart(
                "by_transport_stalls.svg",
                "Stall time of the simulated player / media played, by transport",
                "% of media time",
                2,
                None,
            ),
            bars_by_kind(&configs, any, |r| 100.0 * r.playout_stall_share),
        ),
        (
            chart(
                "by_transport_lost.svg",
                "Bytes never played / bytes in the nodes' ranges, by transport",
                "% of published bytes",
                3,
                None,
            ),
            bars_by_kind(&configs, any, |r| 100.0 * r.lost_share),
        ),
        (
            chart(
                "by_transport_startup.svg",
                "Startup (node start -> simulated playout), median, by transport",
                "ms",
                0,
                None,
            ),
            bars_by_kind(&configs, any, |r| r.playout_startup_median_ms),
        ),
        (
            chart(
                "by_transport_glass.svg",
                "Glass to glass (publisher input -> simulated player), median, by transport",
                "ms",
                0,
                None,
            ),
            bars_by_kind(&configs, any, |r| r.glass_median_ms),
        ),
        (
            chart(
                "by_transport_overhead.svg",
                "Protocol overhead: IP bytes every host sent / payload received, by transport",
                "wire bytes per payload byte",
                3,
                None,
            ),
            bars_by_kind(&configs, any, |r| r.wire_per_payload),
        ),
    ];
    charts
        .iter()
        .map(|(chart, bars)| draw_bars(dir, chart, bars))
        .collect()
}
