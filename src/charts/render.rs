//! Drawing: every chart kind from its plain data ([`super::Chart`]), to SVG or PNG, with
//! one look. Text uses the embedded DejaVu Sans (registered as `sans-serif`), so PNGs
//! need no system font; SVGs name the generic `sans-serif` family. Verdict states differ
//! by shape as well as colour (Okabe-Ito palette): done is a full cell, partial a half
//! cell, missed a cross, excused a dash, pending an outline, no data a faint dot.

use super::{Body, Chart, Format, RosterRow};
use crate::engine::judge::Verdict;
use chrono::{Datelike, NaiveDate};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::error::Error;

type Draw = Result<(), Box<dyn Error>>;

pub const WIDTH: u32 = 1000;

const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
const FAINT: RGBColor = RGBColor(0xAA, 0xAA, 0xAA);
const DONE: RGBColor = RGBColor(0x00, 0x9E, 0x73);
const PARTIAL: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
const MISSED: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
const EXCUSED: RGBColor = RGBColor(0x56, 0xB4, 0xE9);
const ACCENT: RGBColor = RGBColor(0x00, 0x72, 0xB2);
/// Zone 1-5 and "no HR" (sequential, light to dark, readable in grey print).
const ZONES: [RGBColor; 6] = [
    RGBColor(0xBB, 0xBB, 0xBB),
    RGBColor(0xC6, 0xDB, 0xEF),
    RGBColor(0x6B, 0xAE, 0xD6),
    RGBColor(0x21, 0x71, 0xB5),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0xD5, 0x5E, 0x00),
];
pub const ZONE_NAMES: [&str; 6] = ["no HR", "zone 1 or below", "zone 2", "zone 3", "zone 4", "zone 5"];

fn fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let regular: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        let bold: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");
        for (style, bytes) in [(FontStyle::Normal, regular), (FontStyle::Bold, bold)] {
            if plotters::style::register_font("sans-serif", style, bytes).is_err() {
                tracing::error!("the embedded chart font did not load");
            }
        }
    });
}

fn text(size: u32) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size).into_font()).color(&INK)
}

fn bold(size: u32) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size, FontStyle::Bold).into_font()).color(&INK)
}

/// The chart's height for its data at [`WIDTH`].
pub fn height(chart: &Chart) -> u32 {
    match &chart.body {
        Body::Adherence(d) => adherence_height(d),
        Body::Roster(d) => 110 + 30 * d.rows.len().max(1) as u32,
        Body::Progress(d) => (100 + PANEL_H * d.tests.len() as u32).max(480),
        Body::Session(d) => 480 + SERIES_H * d.extra.len() as u32,
        _ => 480,
    }
}

/// Render to SVG text or PNG bytes.
pub fn render(chart: &Chart, format: Format) -> anyhow::Result<Vec<u8>> {
    fonts();
    let size = (WIDTH, height(chart));
    match format {
        Format::Svg => {
            let mut out = String::new();
            {
                let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
                draw(&root, chart).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
                root.present().map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
            }
            Ok(out.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                draw(&root, chart).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
                root.present().map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
            }
            let mut png = Vec::new();
            let mut encoder = png::Encoder::new(&mut png, size.0, size.1);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            // Flat colours compress well even at the fast setting (fdeflate).
            encoder.set_compression(png::Compression::Fast);
            let mut writer = encoder.write_header()?;
            writer.write_image_data(&rgb)?;
            writer.finish()?;
            Ok(png)
        }
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Draw
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    root.draw(&Text::new(chart.title.as_str(), (24, 16), bold(22)))?;
    root.draw(&Text::new(chart.subtitle.as_str(), (24, 46), text(14).color(&FAINT.mix(1.0))))?;
    let body = root.margin(72, 16, 16, 24);
    match &chart.body {
        Body::Adherence(d) => adherence(&body, d),
        Body::Trend(d) => trend(&body, d),
        Body::Cardio(d) => cardio(&body, d),
        Body::Reps(d) => reps(&body, d),
        Body::Roster(d) => roster(&body, d),
        Body::Session(d) => session(&body, d),
        Body::Progress(d) => progress(&body, d),
    }
}

fn empty<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, what: &str) -> Draw
where
    DB::ErrorType: 'static,
{
    area.draw(&Text::new(what.to_string(), (8, 40), text(16)))?;
    Ok(())
}

/// One verdict cell, its state told by shape as well as colour.
fn cell<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, x: i32, y: i32, s: i32, v: Verdict, self_rep: bool) -> Draw
where
    DB::ErrorType: 'static,
{
    let (x1, y1) = (x + s, y + s);
    match v {
        Verdict::Done => area.draw(&Rectangle::new([(x, y), (x1, y1)], DONE.filled()))?,
        Verdict::Partial => {
            area.draw(&Rectangle::new([(x, y), (x1, y1)], PARTIAL.stroke_width(1)))?;
            area.draw(&Rectangle::new([(x, y + s / 2), (x1, y1)], PARTIAL.filled()))?;
        }
        Verdict::Missed => {
            area.draw(&Rectangle::new([(x, y), (x1, y1)], MISSED.mix(0.25).filled()))?;
            area.draw(&PathElement::new(vec![(x + 2, y + 2), (x1 - 2, y1 - 2)], MISSED.stroke_width(2)))?;
            area.draw(&PathElement::new(vec![(x + 2, y1 - 2), (x1 - 2, y + 2)], MISSED.stroke_width(2)))?;
        }
        Verdict::Excused => {
            area.draw(&Rectangle::new([(x, y), (x1, y1)], EXCUSED.mix(0.35).filled()))?;
            area.draw(&PathElement::new(vec![(x + 3, y + s / 2), (x1 - 3, y + s / 2)], EXCUSED.stroke_width(2)))?;
        }
        Verdict::Pending => area.draw(&Rectangle::new([(x + 1, y + 1), (x1 - 1, y1 - 1)], FAINT.stroke_width(1)))?,
        Verdict::NoData => area.draw(&Circle::new((x + s / 2, y + s / 2), 2, FAINT.filled()))?,
    }
    if self_rep {
        // A self-reported cell gets a black corner mark.
        area.draw(&Polygon::new(vec![(x1 - s / 3, y), (x1, y), (x1, y + s / 3)], INK.filled()))?;
    }
    Ok(())
}

const LEGEND: [(Verdict, &str); 6] = [
    (Verdict::Done, "done"),
    (Verdict::Partial, "partial"),
    (Verdict::Missed, "missed"),
    (Verdict::Excused, "excused"),
    (Verdict::Pending, "pending"),
    (Verdict::NoData, "no data"),
];

/// Days per band of the adherence calendar: six weeks, so cells stay large enough to
/// read on a phone; longer spans stack bands.
const BAND_DAYS: usize = 42;
const ROW_H: i32 = 46;

fn bands(days: usize) -> usize {
    days.div_ceil(BAND_DAYS).max(1)
}

fn adherence_height(d: &super::AdherenceData) -> u32 {
    let per_band = 22 + ROW_H * d.rows.len().max(1) as i32 + 10;
    (72 + bands(d.days.len()) as i32 * per_band + 60) as u32
}

fn adherence<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &super::AdherenceData) -> Draw
where
    DB::ErrorType: 'static,
{
    if d.rows.is_empty() || d.days.is_empty() {
        return empty(area, "no homework in this period");
    }
    let (w, _) = area.dim_in_pixel();
    let s = ((w as i32 - 10) / BAND_DAYS.min(d.days.len()) as i32).clamp(8, 28);
    let per_band = 22 + ROW_H * d.rows.len() as i32 + 10;
    for (b, days) in d.days.chunks(BAND_DAYS).enumerate() {
        let top = b as i32 * per_band;
        let offset = b * BAND_DAYS;
        // Month labels and week lines (weeks start on Monday).
        for (i, day) in days.iter().enumerate() {
            let x = i as i32 * s;
            let month_start = day.day() == 1;
            let first_label = i == 0 && days.iter().take(6).all(|d| d.day() != 1);
            if month_start || first_label {
                area.draw(&Text::new(day.format("%b %-d").to_string(), (x, top), text(12)))?;
            }
            if day.weekday() == chrono::Weekday::Mon {
                let bottom = top + 18 + ROW_H * d.rows.len() as i32;
                area.draw(&PathElement::new(vec![(x - 1, top + 16), (x - 1, bottom)], GRID))?;
            }
        }
        for (r, row) in d.rows.iter().enumerate() {
            let y = top + 18 + r as i32 * ROW_H;
            area.draw(&Text::new(short(&row.label, 90), (0, y), text(13)))?;
            for (i, c) in row.cells[offset..offset + days.len()].iter().enumerate() {
                if let Some(c) = c {
                    cell(area, i as i32 * s, y + 18, s - 3, c.verdict, c.self_reported)?;
                }
            }
        }
    }
    // Legend under the last band.
    let y = bands(d.days.len()) as i32 * per_band + 4;
    let mut x = 0;
    for (v, name) in LEGEND {
        cell(area, x, y, 16, v, false)?;
        area.draw(&Text::new(name, (x + 22, y + 1), text(13)))?;
        x += 112;
    }
    cell(area, x, y, 16, Verdict::Done, true)?;
    area.draw(&Text::new("self-reported", (x + 22, y + 1), text(13)))?;
    Ok(())
}

fn week_label(d: &NaiveDate) -> String {
    d.format("%b %-d").to_string()
}

fn trend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &super::TrendData) -> Draw
where
    DB::ErrorType: 'static,
{
    if d.series.is_empty() || d.weeks.is_empty() {
        return empty(area, "no homework in this period");
    }
    let n = d.weeks.len();
    let mut chart = ChartBuilder::on(area)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .margin_right(170)
        .build_cartesian_2d(0f64..(n.max(2) - 1) as f64, 0f64..100f64)?;
    let weeks = d.weeks.clone();
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_labels(n.min(12))
        .x_label_formatter(&|x| weeks.get(x.round() as usize).map(week_label).unwrap_or_default())
        .y_label_formatter(&|y| format!("{y:.0} %"))
        .y_desc("adherence, % of the week")
        .label_style(text(12))
        .axis_desc_style(text(13))
        .draw()?;
    chart.draw_series(DashedLineSeries::new(
        [(0.0, 80.0), ((n.max(2) - 1) as f64, 80.0)],
        6,
        4,
        INK.stroke_width(1),
    ))?;
    let palette = [ACCENT, PARTIAL, DONE, MISSED, EXCUSED, INK];
    let (w, _) = area.dim_in_pixel();
    let lx = w as i32 - 160;
    area.draw(&PathElement::new(vec![(lx, 8), (lx + 22, 8)], INK))?;
    area.draw(&Text::new("80 % line", (lx + 30, 1), text(12)))?;
    for (i, (name, values)) in d.series.iter().enumerate() {
        let color = palette[i % palette.len()];
        let points: Vec<(f64, f64)> =
            values.iter().enumerate().filter_map(|(w, v)| v.map(|v| (w as f64, v * 100.0))).collect();
        chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
        // A distinct marker per series, so lines are told apart in grey too.
        let ly = 30 + i as i32 * 40;
        area.draw(&PathElement::new(vec![(lx, ly + 7), (lx + 22, ly + 7)], color.stroke_width(2)))?;
        marker(area, i, (lx + 11, ly + 7), color)?;
        for (k, line) in wrap(name, 22).into_iter().take(2).enumerate() {
            area.draw(&Text::new(line, (lx + 30, ly + k as i32 * 15), text(12)))?;
        }
        for p in &points {
            let at = chart.backend_coord(p);
            let base = area.get_base_pixel();
            marker(area, i, (at.0 - base.0, at.1 - base.1), color)?;
        }
    }
    Ok(())
}

fn marker<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, i: usize, at: (i32, i32), color: RGBColor) -> Draw
where
    DB::ErrorType: 'static,
{
    match i % 4 {
        0 => area.draw(&Circle::new(at, 4, color.filled()))?,
        1 => area.draw(&TriangleMarker::new(at, 5, color.filled()))?,
        2 => area.draw(&Cross::new(at, 4, color.stroke_width(2)))?,
        _ => area.draw(&Circle::new(at, 4, color.stroke_width(2)))?,
    }
    Ok(())
}

/// Split a label into lines of at most `n` characters at spaces, the last line shortened.
fn wrap(s: &str, n: usize) -> Vec<String> {
    let mut lines: Vec<String> = vec![String::new()];
    for word in s.split_whitespace() {
        let last = lines.last_mut().map(|l| l.chars().count()).unwrap_or(0);
        if last > 0 && last + 1 + word.chars().count() > n {
            lines.push(String::new());
        }
        if let Some(l) = lines.last_mut() {
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(word);
        }
    }
    if lines.len() > 2 {
        let rest = lines[1..].join(" ");
        lines.truncate(1);
        lines.push(short(&rest, n));
    }
    lines.into_iter().map(|l| short(&l, n)).collect()
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        s.chars().take(n - 1).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

fn cardio<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &super::CardioData) -> Draw
where
    DB::ErrorType: 'static,
{
    if d.days.is_empty() {
        return empty(area, "no days in this period");
    }
    let n = d.days.len();
    let max = d.minutes.iter().map(|z| z.iter().sum::<f64>()).fold(d.target.unwrap_or(0.0), f64::max).max(10.0);
    let mut chart = ChartBuilder::on(area)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..n as f64, 0f64..(max * 1.15).ceil())?;
    let days = d.days.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_labels(n.min(10))
        .x_label_formatter(&|x| {
            days.get(x.floor() as usize).map(|d| d.format("%b %-d").to_string()).unwrap_or_default()
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("minutes")
        .label_style(text(12))
        .axis_desc_style(text(13))
        .draw()?;
    for z in 0..ZONES.len() {
        let color = ZONES[z];
        chart
            .draw_series(d.minutes.iter().enumerate().filter(|(_, m)| m[z] > 0.0).map(|(i, m)| {
                let below: f64 = m[..z].iter().sum();
                let x = i as f64;
                Rectangle::new([(x + 0.12, below), (x + 0.88, below + m[z])], color.filled())
            }))?
            .label(ZONE_NAMES[z])
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    if let Some(t) = d.target {
        chart
            .draw_series(DashedLineSeries::new([(0.0, t), (n as f64, t)], 6, 4, INK.stroke_width(2)))?
            .label(format!("target {t:.0} min"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], INK.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

fn reps<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &super::RepsData) -> Draw
where
    DB::ErrorType: 'static,
{
    if d.points.is_empty() {
        return empty(area, "no repetitions recorded in this period");
    }
    let first = d.points[0].0;
    let span = (d.points[d.points.len() - 1].0 - first).num_days().max(1) as f64;
    let highest_target = d.targets.iter().map(|t| t.1).fold(d.target.unwrap_or(0.0), f64::max);
    let max = d.points.iter().map(|p| p.1).fold(highest_target, f64::max).max(5.0);
    let mut chart = ChartBuilder::on(area)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(-0.5f64..span + 0.5, 0f64..(max * 1.2).ceil())?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_labels(8)
        .x_label_formatter(&|x| (first + chrono::Duration::days(x.round() as i64)).format("%b %-d").to_string())
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("reps")
        .label_style(text(12))
        .axis_desc_style(text(13))
        .draw()?;
    let xs: Vec<(f64, f64, bool)> =
        d.points.iter().map(|(day, r, s)| ((*day - first).num_days() as f64, *r, *s)).collect();
    chart
        .draw_series(xs.iter().filter(|p| !p.2).map(|p| Circle::new((p.0, p.1), 4, ACCENT.filled())))?
        .label("recorded")
        .legend(|(x, y)| Circle::new((x + 6, y), 4, ACCENT.filled()));
    chart
        .draw_series(xs.iter().filter(|p| p.2).map(|p| TriangleMarker::new((p.0, p.1), 5, PARTIAL.filled())))?
        .label("self-reported")
        .legend(|(x, y)| TriangleMarker::new((x + 6, y), 5, PARTIAL.filled()));
    // Least-squares trend line.
    if xs.len() >= 2 {
        let n = xs.len() as f64;
        let (sx, sy) = (xs.iter().map(|p| p.0).sum::<f64>(), xs.iter().map(|p| p.1).sum::<f64>());
        let sxx = xs.iter().map(|p| p.0 * p.0).sum::<f64>();
        let sxy = xs.iter().map(|p| p.0 * p.1).sum::<f64>();
        let den = n * sxx - sx * sx;
        if den.abs() > f64::EPSILON {
            let slope = (n * sxy - sx * sy) / den;
            let icpt = (sy - slope * sx) / n;
            chart
                .draw_series(LineSeries::new([(0.0, icpt), (span, icpt + slope * span)], INK.stroke_width(2)))?
                .label(format!("trend {:+.1} reps/week", slope * 7.0))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], INK.stroke_width(2)));
        }
    }
    let last_day = d.points[d.points.len() - 1].0;
    let shown: Vec<&(NaiveDate, f64)> = d.targets.iter().filter(|t| t.0 >= first && t.0 <= last_day).collect();
    if shown.len() >= 2 {
        // A progression: the target as steps, one per occurrence.
        let mut steps = Vec::with_capacity(shown.len() * 2);
        for (i, (day, t)) in shown.iter().map(|t| (t.0, t.1)).enumerate() {
            let x = (day - first).num_days() as f64;
            if i > 0 {
                steps.push((x - 0.5, steps.last().map_or(t, |p: &(f64, f64)| p.1)));
            }
            steps.push((x - 0.5, t));
        }
        if let Some(last) = shown.last() {
            steps.push(((last.0 - first).num_days() as f64 + 0.5, last.1));
        }
        let (lo, hi) = (shown[0].1, shown[shown.len() - 1].1);
        chart
            .draw_series(DashedLineSeries::new(steps, 6, 4, DONE.stroke_width(2)))?
            .label(format!("target {lo:.0} → {hi:.0}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], DONE.stroke_width(2)));
    } else if let Some(t) = d.target {
        chart
            .draw_series(DashedLineSeries::new([(-0.5, t), (span + 0.5, t)], 6, 4, DONE.stroke_width(2)))?
            .label(format!("target {t:.0}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], DONE.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// The series legend, the same on every chart.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> Draw
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(at)
        .margin(4)
        .legend_area_size(20)
        .label_font(text(12))
        .background_style(WHITE.mix(0.9))
        .border_style(GRID)
        .draw()?;
    Ok(())
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.0} %", v * 100.0)).unwrap_or_else(|| "–".into())
}

fn roster<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &super::RosterData) -> Draw
where
    DB::ErrorType: 'static,
{
    if d.rows.is_empty() {
        return empty(area, "no clients with homework yet");
    }
    let (name_w, col_w, bar_w) = (220, 200, 150);
    for (i, head) in ["7 days", "30 days", "90 days"].iter().enumerate() {
        area.draw(&Text::new(*head, (name_w + i as i32 * col_w, 0), bold(13)))?;
    }
    for (r, RosterRow { client, days7, days30, days90, needs_attention }) in d.rows.iter().enumerate() {
        let y = 26 + r as i32 * 30;
        if *needs_attention {
            area.draw(&Rectangle::new([(-8, y - 4), (name_w + 3 * col_w, y + 22)], MISSED.mix(0.12).filled()))?;
            area.draw(&Text::new("▲", (-4, y), bold(13).color(&MISSED)))?;
        }
        let label = if *needs_attention { format!("{client} (needs attention)") } else { client.clone() };
        area.draw(&Text::new(short(&label, 30), (14, y), text(14)))?;
        for (i, v) in [days7, days30, days90].iter().enumerate() {
            let x = name_w + i as i32 * col_w;
            area.draw(&Rectangle::new([(x, y + 2), (x + bar_w, y + 16)], GRID.filled()))?;
            if let Some(v) = v {
                let color = if *v >= 0.8 {
                    DONE
                } else if *v >= 0.5 {
                    PARTIAL
                } else {
                    MISSED
                };
                let w = (bar_w as f64 * v.clamp(0.0, 1.0)).round() as i32;
                area.draw(&Rectangle::new([(x, y + 2), (x + w, y + 16)], color.filled()))?;
            }
            // The 80 % mark.
            let m = x + (bar_w as f64 * 0.8) as i32;
            area.draw(&PathElement::new(vec![(m, y), (m, y + 18)], INK))?;
            area.draw(&Text::new(pct(**v), (x + bar_w + 6, y + 1), text(13)))?;
        }
    }
    Ok(())
}

/// A session's time axis label: whole minutes, tenths for a session under ten minutes
/// (whose whole-minute labels would repeat).
fn minutes(x: f64, end: f64) -> String {
    if end < 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// The height of one machine series' panel under a session's heart rate.
const SERIES_H: u32 = 150;

fn session<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &super::SessionData) -> Draw
where
    DB::ErrorType: 'static,
{
    // Every panel shares the time axis.
    let end = d.samples.iter().chain(d.extra.iter().flat_map(|s| &s.points)).map(|s| s.0).fold(1.0, f64::max);
    let (w, h) = area.dim_in_pixel();
    let hr_h = h.saturating_sub(SERIES_H * d.extra.len() as u32);
    for (i, series) in d.extra.iter().enumerate() {
        let panel = area.clone().shrink((0, hr_h + SERIES_H * i as u32), (w, SERIES_H));
        session_series(&panel, series, end)?;
    }
    let area = &area.clone().shrink((0, 0), (w, hr_h));
    if d.samples.is_empty() {
        return empty(area, "no heart-rate samples for this workout");
    }
    let lo = d.samples.iter().map(|s| s.1).fold(f64::INFINITY, f64::min).min(90.0) - 10.0;
    let hi = d.samples.iter().map(|s| s.1).fold(0.0, f64::max).max(d.hr_max.unwrap_or(0.0)) + 5.0;
    let mut chart = ChartBuilder::on(area)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .margin_right(90)
        .build_cartesian_2d(0f64..end, lo.max(30.0)..hi)?;
    // Zone bands behind the curve, labelled on the right.
    if let Some(max) = d.hr_max {
        for z in 1..=5u8 {
            let (a, b) = (max * (0.4 + 0.1 * f64::from(z)), max * (0.5 + 0.1 * f64::from(z)));
            let color = ZONES[usize::from(z)];
            chart.draw_series([Rectangle::new([(0.0, a), (end, b.min(hi))], color.mix(0.22).filled())])?;
            let y = chart.backend_coord(&(end, (a + b.min(hi)) / 2.0)).1;
            let x = chart.backend_coord(&(end, a)).0 + 6;
            area.draw(&Text::new(
                format!("zone {z}"),
                (x - area.get_base_pixel().0, y - 7 - area.get_base_pixel().1),
                text(12),
            ))?;
        }
    }
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_label_formatter(&|x| minutes(*x, end))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("minutes")
        .y_desc("heart rate, bpm")
        .label_style(text(12))
        .axis_desc_style(text(13))
        .draw()?;
    chart
        .draw_series(LineSeries::new(d.samples.iter().copied(), MISSED.stroke_width(2)))?
        .label("heart rate")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], MISSED.stroke_width(2)));
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// One series of a session (power, cadence, ...) over the heart rate's time axis.
fn session_series<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, s: &super::SessionSeries, end: f64) -> Draw
where
    DB::ErrorType: 'static,
{
    let lo = s.points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = s.points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(1.0);
    let (lo, hi) = if lo.is_finite() { ((lo - pad).max(0.0), hi + pad) } else { (0.0, 1.0) };
    let mut chart = ChartBuilder::on(&area.margin(12, 0, 0, 0))
        .x_label_area_size(24)
        .y_label_area_size(52)
        .margin_right(90)
        .build_cartesian_2d(0f64..end, lo..hi)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_labels(4)
        .x_label_formatter(&|x| minutes(*x, end))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc(s.label.as_str())
        .label_style(text(12))
        .axis_desc_style(text(13))
        .draw()?;
    chart.draw_series(LineSeries::new(s.points.iter().copied(), ACCENT.stroke_width(2)))?;
    Ok(())
}

/// The height of one test's panel in the progress chart.
const PANEL_H: u32 = 250;

fn progress<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &super::ProgressData) -> Draw
where
    DB::ErrorType: 'static,
{
    if d.tests.is_empty() {
        empty(area, &format!("no benchmarks recorded from {} to {}", d.from, d.to))?;
        let how = "record one on the client page, or: coachd benchmark CLIENT \"max push-ups\" 18";
        area.draw(&Text::new(how, (8, 68), text(13).color(&FAINT.mix(1.0))))?;
        return Ok(());
    }
    let (w, h) = area.dim_in_pixel();
    let panel_h = (h / d.tests.len() as u32).min(PANEL_H) as i32;
    for (i, test) in d.tests.iter().enumerate() {
        let top = i as i32 * panel_h;
        let panel = area.clone().shrink((0, top), (w, panel_h as u32));
        progress_panel(&panel, d, test)?;
    }
    Ok(())
}

/// A result's axis name: "reps", "seconds", "kg", "km/h", "score (1-5)".
fn unit_desc(u: crate::store::benchmarks::Unit) -> &'static str {
    use crate::store::benchmarks::Unit;
    match u {
        Unit::Reps => "reps",
        Unit::Seconds => "seconds",
        Unit::Kg => "kg",
        Unit::Kmh => "km/h",
        Unit::Score => "score (1-5)",
    }
}

fn progress_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    d: &super::ProgressData,
    t: &super::ProgressTest,
) -> Draw
where
    DB::ErrorType: 'static,
{
    use crate::store::benchmarks::{number, Unit};
    // Room either side, so the first and last results' labels are not cut.
    const PAD: f64 = 2.0;
    let span = (d.to - d.from).num_days().max(1) as f64;
    let x = |day: NaiveDate| (day - d.from).num_days() as f64;
    // The test and how it moved: first result to latest.
    let (first, last) = (t.points[0], t.points[t.points.len() - 1]);
    let change = if t.points.len() > 1 {
        let delta = last.1 - first.1;
        let sign = if delta > 0.0 {
            "+"
        } else if delta < 0.0 {
            "−"
        } else {
            "±"
        };
        format!(
            ": {} → {} ({sign}{}) since {}",
            number(first.1),
            t.unit.show(last.1),
            number(delta.abs()),
            first.0.format("%b %-d")
        )
    } else {
        format!(": {} on {}", t.unit.show(first.1), first.0.format("%b %-d"))
    };
    area.draw(&Text::new(format!("{}{change}", short(&t.name, 40)), (0, 0), bold(14)))?;
    let max = t.points.iter().map(|p| p.1).fold(0.0, f64::max);
    let hi = match t.unit {
        Unit::Score => 5.5,
        _ => (max * 1.25).max(1.0).ceil(),
    };
    let linked = t.homework.as_ref();
    let mut chart = ChartBuilder::on(area)
        .margin_top(24)
        .margin_bottom(6)
        .x_label_area_size(30)
        .y_label_area_size(56)
        // The same on every panel, so their dates line up.
        .right_y_label_area_size(56)
        .build_cartesian_2d(-PAD..span + PAD, 0f64..hi)?
        .set_secondary_coord(-PAD..span + PAD, 0f64..100f64);
    let from = d.from;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_labels(8)
        .y_labels(if t.unit == Unit::Score { 6 } else { 5 })
        .x_label_formatter(&|v| (from + chrono::Duration::days(v.round() as i64)).format("%b %-d").to_string())
        .y_label_formatter(&|y| number(*y))
        .y_desc(unit_desc(t.unit))
        .label_style(text(12))
        .axis_desc_style(text(13))
        .draw()?;
    if let Some(hw) = linked {
        chart
            .configure_secondary_axes()
            .y_labels(5)
            .y_label_formatter(&|y| format!("{y:.0} %"))
            .y_desc("adherence")
            .label_style(text(12))
            .axis_desc_style(text(13))
            .draw()?;
        // A bar per Monday-Sunday week, behind the results, cut to the span.
        let bars = hw.weeks.iter().filter_map(|(monday, v)| {
            let v = (*v)?;
            let (x0, x1) = (x(*monday).max(-PAD), (x(*monday) + 7.0).min(span + PAD));
            Some(Rectangle::new([(x0 + 0.4, 0.0), (x1 - 0.4, (v * 100.0).max(1.0))], EXCUSED.mix(0.45).filled()))
        });
        chart
            .draw_secondary_series(bars)?
            .label(format!("weekly adherence of {}", short(&hw.label, 60)))
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], EXCUSED.mix(0.45).filled()));
    }
    let points: Vec<(f64, f64)> = t.points.iter().map(|(day, v)| (x(*day), *v)).collect();
    chart
        .draw_series(LineSeries::new(points.clone(), ACCENT.stroke_width(2)))?
        .label(format!("{} ({})", short(&t.name, 40), t.unit.as_str()))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], ACCENT.stroke_width(2)));
    chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, ACCENT.filled())))?;
    // Each result's value above its point (the first and latest only when crowded).
    let base = area.get_base_pixel();
    let crowded = points.len() > 12;
    for (i, p) in points.iter().enumerate() {
        if crowded && i != 0 && i != points.len() - 1 {
            continue;
        }
        let at = chart.backend_coord(p);
        area.draw(&Text::new(number(p.1), (at.0 - base.0 - 6, at.1 - base.1 - 20), text(12)))?;
    }
    legend(&mut *chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charts::RepsData;

    #[test]
    fn a_progression_draws_its_target_as_steps() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).expect("date");
        let points: Vec<(NaiveDate, f64, bool)> =
            (2..=22).map(|d| (day(d), 10.0 + f64::from(d) / 3.0, false)).collect();
        let targets: Vec<(NaiveDate, f64)> = (2..=22).map(|d| (day(d), 10.0 + 2.0 * f64::from((d - 2) / 7))).collect();
        let chart = Chart {
            title: "#1 10 push-ups every night, +2 each week".into(),
            subtitle: String::new(),
            body: Body::Reps(RepsData { points: points.clone(), target: Some(14.0), targets }),
        };
        let svg = String::from_utf8(render(&chart, Format::Svg).expect("render")).expect("utf-8");
        assert!(svg.contains("target 10 → 14"), "the progression's legend");
        let flat = Chart { body: Body::Reps(RepsData { points, target: Some(10.0), targets: Vec::new() }), ..chart };
        let svg = String::from_utf8(render(&flat, Format::Svg).expect("render")).expect("utf-8");
        assert!(svg.contains("target 10") && !svg.contains("→"), "a flat target");
    }
}
