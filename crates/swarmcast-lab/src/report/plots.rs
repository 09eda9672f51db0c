//! The SVG line plots by audience size (`plots/*.svg`) and the CDF of setup times.

use super::*;

/// A named line of points.
pub(super) struct Series {
    name: String,
    /// Every run's value (drawn as dots) ...
    points: Vec<(f64, f64)>,
    /// ... and the line through the means at each x.
    line: Vec<(f64, f64)>,
}

pub(super) fn series_by(
    runs: &[RunSummary],
    filter: impl Fn(&RunSummary) -> bool,
    name: impl Fn(&RunSummary) -> String,
    x: impl Fn(&RunSummary) -> f64,
    y: impl Fn(&RunSummary) -> f64,
) -> Vec<Series> {
    let mut by_name: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in runs.iter().filter(|r| filter(r)) {
        let (x, y) = (x(r), y(r));
        if x.is_finite() && y.is_finite() {
            by_name.entry(name(r)).or_default().push((x, y));
        }
    }
    by_name
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let mut line: Vec<(f64, f64)> = Vec::new();
            let mut i = 0;
            while i < points.len() {
                let j = points[i..]
                    .iter()
                    .position(|p| p.0 != points[i].0)
                    .map_or(points.len(), |k| i + k);
                let mean = points[i..j].iter().map(|p| p.1).sum::<f64>() / (j - i) as f64;
                line.push((points[i].0, mean));
                i = j;
            }
            Series { name, points, line }
        })
        .collect()
}

pub(super) struct Chart<'a> {
    file: &'a str,
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    log_x: bool,
    legend: SeriesLabelPosition,
}

pub(super) fn draw(
    dir: &Path,
    chart: &Chart<'_>,
    series: &[Series],
) -> Result<PathBuf, ResultsError> {
    let path = dir.join(chart.file);
    let err = |e: &dyn std::fmt::Display| ResultsError::Plot {
        path: path.clone(),
        reason: e.to_string(),
    };
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().chain(&s.line).copied())
        .collect();
    let (mut x0, mut x1, mut y1) = all.iter().fold(
        (f64::INFINITY, f64::NEG_INFINITY, 0.0f64),
        |(a, b, c), &(x, y)| (a.min(x), b.max(x), c.max(y)),
    );
    if all.is_empty() {
        (x0, x1, y1) = (1.0, 2.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if chart.log_x {
        x0 = (x0 * 0.8).max(1e-3);
        x1 *= 1.25;
    } else {
        let pad = (x1 - x0) * 0.05;
        x0 -= pad;
        x1 += pad;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.1 };
    {
        let root = SVGBackend::new(&path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut builder = ChartBuilder::on(&root);
        frame(&mut builder, chart.title);
        if chart.log_x {
            let ctx = builder
                .build_cartesian_2d((x0..x1).log_scale(), 0.0..y1)
                .map_err(|e| err(&e))?;
            draw_lines(ctx, chart, series, &err)?;
        } else {
            let ctx = builder
                .build_cartesian_2d(x0..x1, 0.0..y1)
                .map_err(|e| err(&e))?;
            draw_lines(ctx, chart, series, &err)?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(path)
}

/// The mesh, one line and its points per series, and the legend, on either x axis (linear or
/// logarithmic).
fn draw_lines<'a, X>(
    mut ctx: ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
    >,
    chart: &Chart<'_>,
    series: &[Series],
    err: &dyn Fn(&dyn std::fmt::Display) -> ResultsError,
) -> Result<(), ResultsError>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    ctx.configure_mesh()
        .x_desc(chart.x_desc)
        .y_desc(chart.y_desc)
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        ctx.draw_series(LineSeries::new(
            s.line.iter().copied(),
            color.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label(s.name.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    if !series.is_empty() {
        legend(&mut ctx, chart.legend.clone(), err)?;
    }
    Ok(())
}

/// The legend box every plot draws, at `position`.
pub(super) fn legend<'a, CT: CoordTranslate>(
    ctx: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
    err: &dyn Fn(&dyn std::fmt::Display) -> ResultsError,
) -> Result<(), ResultsError> {
    ctx.configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))
}

/// Every plot of the report: the setup CDF, the line plots, and the plots by variant; the files
/// written.
pub(super) fn write_plots(dir: &Path, runs: &[RunSummary]) -> Result<Vec<PathBuf>, ResultsError> {
    let varies = Varies::of(runs);
    let mut files = vec![draw_cdf(dir, &setup_cdf(runs, &varies))?];
    let mut charts = vec![setup_fraction(runs, &varies)];
    charts.extend(by_audience(runs, &varies));
    for (chart, series) in &charts {
        files.push(draw(dir, chart, series)?);
    }
    files.extend(write_variant_plots(dir, runs)?);
    files.extend(write_transport_plots(dir, runs)?);
    Ok(files)
}

/// Whether `r` ran over the swarm.
fn swarm(r: &RunSummary) -> bool {
    r.transport == Transport::Swarm
}

/// The setup distribution: a CDF per swarm configuration (all repeats pooled).
fn setup_cdf(runs: &[RunSummary], varies: &Varies) -> Vec<Series> {
    let mut cdf: BTreeMap<Condition, (String, Vec<f64>)> = BTreeMap::new();
    for r in runs.iter().filter(|r| swarm(r)) {
        cdf.entry(condition(r))
            .or_insert_with(|| (varies.suffix(r), Vec::new()))
            .1
            .extend(r.setup_ms.iter().copied());
    }
    cdf.into_iter()
        .filter(|(_, (_, v))| !v.is_empty())
        .map(|(c, (suffix, mut v))| {
            v.sort_by(f64::total_cmp);
            let len = v.len() as f64;
            let line: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .map(|(i, &ms)| (ms, (i + 1) as f64 / len))
                .collect();
            Series {
                name: format!("{}s x {}{suffix}", c.segment_ms as f64 / 1000.0, c.viewers),
                points: Vec::new(),
                line,
            }
        })
        .collect()
}

/// The swarm's setup as a share of the segment, by segment length: a line per audience size.
fn setup_fraction(runs: &[RunSummary], varies: &Varies) -> (Chart<'static>, Vec<Series>) {
    (
        Chart {
            file: "setup_fraction.svg",
            title: "Swarm setup as a share of the segment (median added -> first piece)",
            x_desc: "segment length, s (log)",
            y_desc: "setup / segment duration, %",
            log_x: true,
            legend: SeriesLabelPosition::UpperRight,
        },
        series_by(
            runs,
            swarm,
            |r| format!("{:>3} viewers{}", r.viewers, varies.suffix(r)),
            |r| r.segment_secs,
            |r| 100.0 * r.setup_fraction,
        ),
    )
}

/// The plots by audience size: a line per kind and segment length, and per cap and network
/// where runs differ in them.
fn by_audience(runs: &[RunSummary], varies: &Varies) -> Vec<(Chart<'static>, Vec<Series>)> {
    let any = |_: &RunSummary| true;
    let n = |r: &RunSummary| r.viewers as f64;
    let label = |r: &RunSummary| format!("{} {}s{}", r.kind, r.segment_secs, varies.suffix(r));
    let chart = |file, title, y_desc| Chart {
        file,
        title,
        x_desc: "viewers",
        y_desc,
        log_x: false,
        legend: SeriesLabelPosition::UpperLeft,
    };
    vec![
        (
            chart(
                "publisher_upload.svg",
                "Publisher upload per segment / segment size",
                "copies of each segment the publisher sent",
            ),
            series_by(runs, any, label, n, |r| r.publisher_copies),
        ),
        (
            chart(
                "peer_share.svg",
                "Share of payload bytes from other viewers (swarm)",
                "% of bytes received",
            ),
            series_by(runs, swarm, label, n, |r| 100.0 * r.peer_share),
        ),
        (
            chart("stalls.svg", "Playback stalls", "stall time per viewer, ms"),
            series_by(runs, any, label, n, |r| r.stall_ms / r.viewers as f64),
        ),
        (
            chart(
                "startup.svg",
                "Startup (first manifest -> first byte played, median)",
                "ms",
            ),
            series_by(runs, any, label, n, |r| r.startup_median_ms),
        ),
        (
            chart(
                "behind_live.svg",
                "Latency behind live (published -> played, median)",
                "ms",
            ),
            series_by(runs, any, label, n, |r| r.behind_live_median_ms),
        ),
        (
            chart(
                "setup_median.svg",
                "Setup per segment (median added -> first verified piece)",
                "ms",
            ),
            series_by(runs, any, label, n, |r| r.setup_median_ms),
        ),
    ]
}

pub(super) fn draw_cdf(dir: &Path, series: &[Series]) -> Result<PathBuf, ResultsError> {
    draw(
        dir,
        &Chart {
            file: "setup_cdf.svg",
            title: "Swarm setup per segment: distribution (added -> first verified piece)",
            x_desc: "ms (log)",
            y_desc: "fraction of segments",
            log_x: true,
            legend: SeriesLabelPosition::LowerRight,
        },
        series,
    )
}

/// Every plot's caption, margin and axis label areas.
pub(super) fn frame<DB: DrawingBackend>(builder: &mut ChartBuilder<'_, '_, DB>, title: &str) {
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70);
}
