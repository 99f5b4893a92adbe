//! Charts as images: a client's (`/clients/{id}/charts/KIND.svg|png`, and the same
//! through the private link) and the roster's (`/charts/roster.svg|png`).

use super::page::{error_page, Page, WebError};
use super::session::LoggedIn;
use super::WebState;
use crate::charts::{self, Format, Kind};
use crate::store::Client;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct ChartQuery {
    from: Option<String>,
    to: Option<String>,
    activity: Option<i64>,
}

/// `kind.svg` or `kind.png`.
pub fn chart_file(file: &str) -> Option<(Kind, Format)> {
    let (kind, ext) = file.rsplit_once('.')?;
    let format = match ext {
        "svg" => Format::Svg,
        "png" => Format::Png,
        _ => return None,
    };
    Some((Kind::parse(kind)?, format))
}

pub fn chart_response(chart: &charts::Chart, format: Format) -> Response {
    match charts::render(chart, format) {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, format.content_type()), (header::CACHE_CONTROL, "private, max-age=60")], bytes)
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "drawing a chart failed");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "Chart failed", "the error is in the server's log")
        }
    }
}

/// Draw one client's chart (the client page and the private link share this).
pub async fn client_chart(state: &WebState, client: &Client, file: &str, q: &ChartQuery) -> Page {
    let (kind, format) = chart_file(file).filter(|(k, _)| k.per_client()).ok_or(WebError::NotFound)?;
    let day = |s: &Option<String>, what: &str| {
        s.as_deref()
            .map(|s| crate::time::parse_day(s, client.tz, Utc::now(), what))
            .transpose()
            .map_err(WebError::input)
    };
    let span = (day(&q.from, "the first day")?, day(&q.to, "the last day")?);
    let chart = state.app.chart(kind, Some(client), std::slice::from_ref(client), span, q.activity).await?;
    Ok(chart_response(&chart, format))
}

pub async fn client(
    State(state): State<WebState>,
    me: LoggedIn,
    Path((id, file)): Path<(i64, String)>,
    Query(q): Query<ChartQuery>,
) -> Page {
    let client = state.app.client_of(me.session.trainer.id, id).await?;
    client_chart(&state, &client, &file, &q).await
}

pub async fn roster(State(state): State<WebState>, me: LoggedIn, Path(file): Path<String>) -> Page {
    let (kind, format) = chart_file(&file).ok_or(WebError::NotFound)?;
    if kind != Kind::Roster {
        return Err(WebError::NotFound);
    }
    let roster = state.roster.get(&state, me.session.trainer.id).await?;
    let rows = roster.rows.iter().filter_map(|r| r.row.clone()).collect();
    Ok(chart_response(&state.app.roster_chart(rows, roster.computed.date_naive()), format))
}
