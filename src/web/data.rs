//! A client's data from their trainer's page: the export as a download, and the removal
//! behind a typed confirmation of the client's name. Both are CSRF-checked forms of the
//! logged-in trainer, for their own clients only (another trainer's client is a 404).

use super::page::{back, Page};
use super::session::CsrfForm;
use super::WebState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Empty {}

pub async fn export(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<Empty>) -> Page {
    let client = state.app.client_of(f.session.trainer.id, id).await?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    state.app.export_client(&client, &mut bytes).await?;
    let today = crate::time::today(client.tz, chrono::Utc::now());
    // The name is a header value: only the characters a file name safely holds.
    let safe: String =
        client.name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let disposition = format!("attachment; filename=\"{safe}-export-{today}.zip\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes.into_inner(),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    confirm: String,
}

pub async fn remove(State(state): State<WebState>, Path(id): Path<i64>, f: CsrfForm<RemoveForm>) -> Page {
    let trainer = f.session.trainer.id;
    let client = state.app.client_of(trainer, id).await?;
    if !f.form.confirm.trim().eq_ignore_ascii_case(&client.name) {
        let msg = format!("Nothing removed: type {} exactly in the confirmation field to remove them.", client.name);
        return Ok(back(&format!("/clients/{id}"), &msg));
    }
    let done = state.app.remove_client(&client).await?;
    state.roster.clear(&state.app, trainer).await;
    let msg = format!("Removed {} and every row of theirs ({} rows).", client.name, done.removed.total());
    Ok(back("/roster", &msg))
}
