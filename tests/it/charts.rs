//! Charts: every kind renders for an empty client, a one-day client and the demo set
//! (SVG parses, PNG decodes to the size asked for); the gallery in charts/ is the golden
//! set, compared by structure (texts and element counts, not pixels or glyph positions).

use super::{batch, coachd, hour_run, TestStore};
use chrono::{DateTime, Duration, TimeZone, Utc};
use coachd::charts::data::{build, Judging, Request};
use coachd::charts::{self, render, Chart, Format, Kind};
use coachd::store::Store;
use quick_xml::events::Event;
use std::collections::BTreeMap;
use std::path::Path;

fn judging(ts: &TestStore) -> Judging {
    Judging { cfg: ts.config.homework.judge_config(), attention_drop: ts.config.homework.attention_drop_points / 100.0 }
}

/// The gallery's moment (a Friday evening in Europe).
fn gallery_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 19, 0, 0).single().expect("valid time")
}

/// Element counts per tag and every text, sorted: what a chart shows, without where
/// the font put it.
#[derive(Debug, PartialEq)]
struct Shape {
    tags: BTreeMap<String, usize>,
    texts: Vec<String>,
    size: (String, String),
}

fn shape(svg: &[u8]) -> Shape {
    let mut reader = quick_xml::Reader::from_reader(svg);
    let mut tags = BTreeMap::new();
    let mut texts = Vec::new();
    let mut size = (String::new(), String::new());
    let mut buf = Vec::new();
    // The text of the <text> element being read, entities resolved.
    let mut current: Option<String> = None;
    loop {
        match reader.read_event_into(&mut buf).expect("the SVG parses") {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if name == "svg" {
                    for a in e.attributes() {
                        let a = a.expect("attribute parses");
                        let v = String::from_utf8_lossy(&a.value).into_owned();
                        match a.key.as_ref() {
                            b"width" => size.0 = v,
                            b"height" => size.1 = v,
                            _ => {}
                        }
                    }
                }
                if name == "text" {
                    current = Some(String::new());
                }
                *tags.entry(name).or_insert(0) += 1;
            }
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&String::from_utf8_lossy(t.as_ref()));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(c) = current.as_mut() {
                    let entity = match &*r {
                        b"amp" => "&",
                        b"lt" => "<",
                        b"gt" => ">",
                        b"apos" => "'",
                        b"quot" => "\"",
                        other => panic!("unexpected entity {:?}", String::from_utf8_lossy(other)),
                    };
                    c.push_str(entity);
                }
            }
            Event::End(e) if e.name().as_ref() == b"text" => {
                if let Some(c) = current.take().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()) {
                    texts.push(c);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    texts.sort();
    Shape { tags, texts, size }
}

fn check_renders(chart: &Chart, what: &str) {
    let svg = render(chart, Format::Svg).unwrap_or_else(|e| panic!("{what}: SVG: {e}"));
    let s = shape(&svg);
    assert_eq!(s.size.0, "1000", "{what}: SVG width");
    assert_eq!(s.size.1, charts::render::height(chart).to_string(), "{what}: SVG height");
    assert!(s.texts.iter().any(|t| t.contains(chart.title.split(':').next().unwrap_or_default())), "{what}: title");
    let png = render(chart, Format::Png).unwrap_or_else(|e| panic!("{what}: PNG: {e}"));
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("{what}: PNG decodes: {e}"));
    let mut pixels = vec![0; reader.output_buffer_size().expect("a frame size")];
    let info = reader.next_frame(&mut pixels).unwrap_or_else(|e| panic!("{what}: PNG frame: {e}"));
    assert_eq!((info.width, info.height), (1000, charts::render::height(chart)), "{what}: PNG size");
    // Not a blank picture: some pixels are neither white nor near-white.
    assert!(pixels.chunks(3).any(|p| p.iter().all(|c| *c < 100)), "{what}: PNG has ink");
}

async fn all_kinds(store: &Store, judging: &Judging, client: &str, now: DateTime<Utc>) -> Vec<(Kind, Chart)> {
    let clients = store.list_clients().await.expect("clients");
    let c = clients.iter().find(|c| c.name == client).expect("client").clone();
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let req = Request {
            kind,
            client: Some(&c),
            clients: std::slice::from_ref(&c),
            from: None,
            to: None,
            activity: None,
            now,
        };
        out.push((kind, build(store, judging, &req).await.unwrap_or_else(|e| panic!("{client} {kind:?}: {e}"))));
    }
    out
}

#[tokio::test]
async fn every_kind_renders_for_an_empty_client_one_day_and_the_demo() {
    let ts = TestStore::new().await;
    let j = judging(&ts);
    let now = gallery_now();
    ts.client("empty").await;
    // One day: homework from today, one run today with heart rate.
    let one = ts.client("oneday").await;
    let row = ts.store.list_clients().await.expect("clients").into_iter().find(|c| c.id == one).expect("client");
    let today = now.with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    let rule = coachd::engine::phrase::parse("15 minutes of cardio").expect("phrase");
    ts.store.add_homework(row.id, &rule, today, None).await.expect("homework");
    let rule = coachd::engine::phrase::parse("10 push-ups every night").expect("phrase");
    ts.store.add_homework(row.id, &rule, today, None).await.expect("homework");
    let run = hour_run(one, "one-day", now - Duration::hours(3));
    ts.store.ingest(&batch("fit", vec![run], None)).await.expect("ingest");
    coachd::demo::create(&ts.store, now).await.expect("demo");

    for (kind, chart) in all_kinds(&ts.store, &j, "empty", now).await {
        check_renders(&chart, &format!("empty {kind:?}"));
        let texts = shape(&render(&chart, Format::Svg).expect("svg")).texts;
        assert!(texts.iter().any(|t| t.starts_with("no ")), "empty {kind:?} says there is nothing: {texts:?}");
    }
    for (kind, chart) in all_kinds(&ts.store, &j, "oneday", now).await {
        check_renders(&chart, &format!("one day {kind:?}"));
        match (&kind, &chart.body) {
            (Kind::Adherence, charts::Body::Adherence(d)) => {
                assert_eq!(d.rows.len(), 2);
                let cells: Vec<_> = d.rows[0].cells.iter().flatten().collect();
                assert_eq!(cells.len(), 1, "one day, one cell");
                assert_eq!(cells[0].verdict, coachd::engine::judge::Verdict::Done, "the hour run does the cardio");
            }
            (Kind::Session, charts::Body::Session(d)) => {
                assert_eq!(d.samples.len(), 3600);
                assert_eq!(d.sources, vec!["fit".to_string()]);
            }
            (Kind::Cardio, charts::Body::Cardio(d)) => {
                let total: f64 = d.minutes.iter().flatten().sum();
                assert!((total - 60.0).abs() < 0.5, "one hour of cardio: {total}");
                assert_eq!(d.target, Some(15.0));
            }
            _ => {}
        }
    }
    for client in ["alex", "sam", "jordan", "riley"] {
        for (kind, chart) in all_kinds(&ts.store, &j, client, now).await {
            check_renders(&chart, &format!("{client} {kind:?}"));
        }
    }
}

/// The demo holds every verdict state, self-reported cells, and workouts from several
/// sources merged into one.
#[tokio::test]
async fn the_demo_has_every_verdict_state_and_merged_sources() {
    use coachd::engine::judge::Verdict;
    let ts = TestStore::new().await;
    let now = gallery_now();
    let report = coachd::demo::create(&ts.store, now).await.expect("demo");
    assert_eq!(report.clients, 4);
    assert!(coachd::demo::create(&ts.store, now).await.is_err(), "a second demo is refused");
    let clients = ts.store.list_clients().await.expect("clients");
    let j = judging(&ts);
    let (status, _) = coachd::status::status(
        &ts.store,
        &j.cfg,
        j.attention_drop,
        &clients,
        now.date_naive() - Duration::days(89),
        now.date_naive(),
        now,
    )
    .await
    .expect("status");
    for v in [Verdict::Done, Verdict::Partial, Verdict::Missed, Verdict::NoData, Verdict::Pending, Verdict::Excused] {
        assert!(status.occurrences.iter().any(|o| o.verdict == v), "the demo shows {v:?}");
    }
    assert!(status.occurrences.iter().any(|o| o.self_reported), "self-reported occurrences");
    assert!(status.adherence.iter().any(|a| a.needs_attention), "someone needs attention");
    assert!(status.adherence.iter().any(|a| !a.needs_attention), "someone does not");
    let sam = clients.iter().find(|c| c.name == "sam").expect("sam");
    let tz = sam.tz;
    let ev =
        ts.store.evidence(sam.id, tz, now.date_naive() - Duration::days(14), now.date_naive()).await.expect("evidence");
    let merged =
        ev.workouts.iter().find(|w| w.sources.len() == 3).expect("a ride seen by strap, bike computer and Strava");
    assert_eq!(merged.parts.len(), 3);
    assert!(merged.duration_s < 3600.0, "counted once, not three times");
}

/// charts/ is the golden set: regenerate with charts/regenerate after a deliberate change.
#[tokio::test]
async fn the_gallery_matches_charts_dir_by_structure() {
    let ts = TestStore::new().await;
    let now = gallery_now();
    coachd::demo::create(&ts.store, now).await.expect("demo");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts");
    let gallery = charts::gallery(&ts.store, &judging(&ts), now).await.expect("gallery");
    assert_eq!(gallery.len(), Kind::ALL.len(), "one chart per kind");
    for (stem, chart) in gallery {
        let golden_path = dir.join(format!("{stem}.svg"));
        let golden = std::fs::read(&golden_path).unwrap_or_else(|e| panic!("{}: {e}", golden_path.display()));
        let now_svg = render(&chart, Format::Svg).expect("svg");
        let (want, got) = (shape(&golden), shape(&now_svg));
        assert_eq!(got.size, want.size, "{stem}: size");
        assert_eq!(got.texts, want.texts, "{stem}: texts differ from {}", golden_path.display());
        assert_eq!(got.tags, want.tags, "{stem}: element counts differ from {}", golden_path.display());
        assert!(dir.join(format!("{stem}.png")).exists(), "{stem}.png is in the gallery too");
    }
}

/// A removed series is caught by the structural comparison.
#[test]
fn a_missing_series_changes_the_shape() {
    let days: Vec<_> =
        (0..14).map(|i| chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("date") + Duration::days(i)).collect();
    let series = |n: usize| charts::TrendData {
        weeks: vec![days[0], days[7]],
        series: (0..n).map(|i| (format!("#{i} homework"), vec![Some(0.5), Some(0.9)])).collect(),
    };
    let chart = |n| Chart { title: "t".into(), subtitle: "s".into(), body: charts::Body::Trend(series(n)) };
    let (two, one) =
        (shape(&render(&chart(2), Format::Svg).expect("svg")), shape(&render(&chart(1), Format::Svg).expect("svg")));
    assert_ne!(two.texts, one.texts);
    assert_ne!(two.tags, one.tags);
}

#[test]
fn chart_command_writes_files_and_rejects_bad_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    coachd(&data).args(["demo", "--now", "2026-11-20T19:00:00Z"]).assert().success();
    let out = dir.path().join("alex.png");
    coachd(&data).args(["chart", "adherence", "alex", "--out"]).arg(&out).assert().success();
    assert!(std::fs::read(&out).expect("png").starts_with(b"\x89PNG"));
    let out = dir.path().join("roster.svg");
    coachd(&data).args(["chart", "roster", "--out"]).arg(&out).assert().success();
    assert!(String::from_utf8(std::fs::read(&out).expect("svg")).expect("utf8").contains("jordan"));
    // Bad extension, a missing client, an unknown kind, an unknown activity: exit 2.
    coachd(&data).args(["chart", "trend", "alex", "--out", "x.jpg"]).assert().code(2);
    coachd(&data).args(["chart", "trend", "--out", "x.svg"]).assert().code(2);
    coachd(&data).args(["chart", "pie", "alex", "--out", "x.svg"]).assert().code(2);
    coachd(&data).args(["chart", "session", "alex", "--activity", "999999", "--out", "x.svg"]).assert().code(2);
    coachd(&data).args(["chart", "trend", "nobody", "--out", "x.svg"]).assert().code(2);
    coachd(&data).args(["demo"]).assert().code(2);
}
