//! coachd: a home-server daemon that judges clients' training homework from the data
//! their wearables already record.
//!
//! # Map
//!
//! ```text
//!  sources ──Batch──► store::ingest ──► SQLite (store) ──► homework engine, charts, web
//! ```
//!
//! - [`model`]: the normalized shapes every source produces (a [`model::Batch`] of
//!   activities with sample series and strength sets, daily metrics and a cursor).
//! - [`source`]: the [`source::Source`] trait, its [`source::SourceContext`] and the
//!   supervisor that runs each source as a task and restarts failing ones with backoff.
//! - [`store`]: every SQL statement; ingest writes a batch and its cursor in one
//!   transaction, sample series are kept as compact chunks ([`store::codec`]).
//! - [`config`]: defaults → `coachd.toml` → `COACHD__SECTION__KEY`, typed and validated.
//! - [`crypto`]: the data dir's key, sealing of tokens at rest, [`crypto::Secret`].
//! - [`daemon`]: `coachd run`: supervisor + web server, SIGTERM drain, sd_notify.
//! - [`web`]: the axum router (`/healthz`).
//! - [`cli`]: the command line; [`init`] and [`paths`]: the data dir.

pub mod activity_types;
pub mod app;
pub mod ble;
pub mod charts;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod files;
pub mod inbox;
pub mod init;
pub mod model;
pub mod paths;
pub mod providers;
pub mod source;
pub mod sources;
pub mod status;
pub mod store;
pub mod time;
pub mod web;
