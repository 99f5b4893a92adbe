//! One workout of a client (`/clients/{id}/workouts/{aid}`): the evidence behind a
//! verdict, with every source's record of it.

use super::page::{html, Page};
use super::session::LoggedIn;
use super::WebState;
use askama::Template;
use axum::extract::{Path, State};

struct PartLine {
    source: String,
    start: String,
    minutes: String,
    avg_hr: String,
    samples: u32,
    sets: String,
}

#[derive(Template)]
#[template(path = "workout.html")]
struct WorkoutPage {
    message: String,
    error: String,
    trainer: String,
    csrf: String,
    client_id: i64,
    client_name: String,
    id: i64,
    title: String,
    parts: Vec<PartLine>,
}

pub async fn page(State(state): State<WebState>, me: LoggedIn, Path((id, aid)): Path<(i64, i64)>) -> Page {
    let client = state.app.client_of(me.session.trainer.id, id).await?;
    let w = state.app.workout(&client, aid).await?;
    let tz = client.tz;
    let parts = w
        .parts
        .iter()
        .map(|p| PartLine {
            source: p.source.clone(),
            start: p.start.with_timezone(&tz).format("%H:%M:%S").to_string(),
            minutes: format!("{:.1}", p.duration_s / 60.0),
            avg_hr: p.avg_hr.map(|h| format!("{h:.0}")).unwrap_or_else(|| "–".into()),
            samples: p.hr_samples,
            sets: p.sets.iter().map(|s| format!("{} × {}", s.reps, s.exercise)).collect::<Vec<_>>().join(", "),
        })
        .collect();
    let title = format!(
        "{} · {} · {:.0} min",
        w.start.with_timezone(&tz).format("%a %b %-d, %H:%M"),
        w.activity_type,
        w.duration_s / 60.0
    );
    Ok(html(WorkoutPage {
        message: String::new(),
        error: String::new(),
        trainer: me.session.trainer.name,
        csrf: me.session.csrf,
        client_id: client.id,
        client_name: client.name,
        id: w.id,
        title,
        parts,
    }))
}
