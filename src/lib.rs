//! coachd: a home-server daemon that judges clients' training homework from the data
//! their wearables already record.
//!
//! # Map
//!
//! ```text
//!  sources ─Batch─► store::ingest ─► store (SQLite or PostgreSQL) ─► status (engine + verdict cache) ─► charts
//!  (ble, files,                                              ▲
//!   inbox, cloud)                      app: every use case ──┘◄── cli (clap)  ◄── a person at a shell
//!                                                            ◄── web (axum)   ◄── a browser, an app, a webhook
//! ```
//!
//! A source turns the outside world into a [`model::Batch`] and hands it to ingest
//! through its [`source::SourceContext`]; ingest writes it and its cursor in one
//! transaction. In collector mode (`coachd collect`) the context's sink is an outbox
//! instead, which the forwarder sends to a hub's web server, where the batch goes
//! through the same ingest. The pure [`engine`] judges homework from the evidence [`store`] reads;
//! [`status`] caches final verdicts. [`app`] owns every use case; [`cli`] and [`web`]
//! are two thin front ends over it and never import each other. ARCHITECTURE.md at the
//! root says which module may call which and where new things go.
//!
//! Layers, from the outside in:
//! - [`cli`]: the command line (clap): flags in, [`app`] calls, text or JSON and exit codes out.
//! - [`web`]: the HTTP side (axum): dashboard pages, the client's private link, the JSON
//!   API, Health Auto Export pushes, OAuth callbacks and webhooks, `/healthz`, `/metrics`.
//! - [`homeassistant`]: Home Assistant over MQTT: each client a device (adherence, today's
//!   homework, data age, needs attention) through discovery; a daemon source.
//! - [`notifier`]: the daemon's reminder beat: [`app::App::notify_round`] every `notify.interval_s`
//!   (the schedule from [`engine::nudge`], the outbox in [`store`], the sends through [`notify`]).
//! - [`daemon`]: `coachd run`: runs the sources it is given and the web server; SIGTERM drain, sd_notify.
//! - [`collect`]: `coachd collect`, collector mode on a box by the equipment: only the
//!   Bluetooth collector (the same recorder), if asked an inbox folder, and the
//!   [`forward`]er, batches into the outbox ([`store::outbox`]), no database, no web server.
//! - [`sources`]: the one place that assembles the daemon's sources from the configuration.
//! - [`app`]: the application layer: typed use cases and [`app::AppError`].
//! - [`status`]: verdicts and adherence for a span, with the verdict cache.
//! - [`charts`]: chart data from the store and verdicts, drawn with plotters to SVG/PNG.
//! - [`demo`]: the deterministic demo data set, written through ingest.
//! - [`source`]: the [`source::Source`] trait, its context and the supervisor.
//! - [`live`]: what is being recorded right now (in memory), fed by the Bluetooth
//!   collector and the simulated strap, read by the trainer's live page.
//! - [`ble`]: Bluetooth sensors: GATT decoders, session recorder, btleplug collector, simulated strap.
//! - [`providers`]: cloud providers (Strava, Polar, intervals.icu, Oura, WHOOP, Withings)
//!   behind one `Provider` trait and one list: manifests, OAuth, rate limits, the shared
//!   reconcile, webhooks.
//! - [`files`]: FIT, TCX, GPX, Apple Health, Health Auto Export and Gadgetbridge readers;
//!   account exports (Strava, Garmin Connect) and gzip; file import.
//! - [`inbox`]: the watched inbox folder source: the hub's (imported), and a collector's
//!   (committed to its outbox as file batches, imported at the hub).
//! - [`forward`]: collector mode's forwarder: the outbox to the hub's
//!   `/collector/v1/batches` in order (gzip JSON, capped jittered backoff), the pairing
//!   list back, the collector's state reported.
//! - [`notify`]: channels that reach a person (ntfy, Gotify, SMTP e-mail with lettre), each one URL.
//! - [`store`]: every SQL statement, behind a small API with [`store::StoreError`], on
//!   SQLite (the data dir's file) or a PostgreSQL server, one statement for both (and the
//!   read-only reader of a Gadgetbridge database, the one foreign database coachd reads;
//!   and a collector's own outbox file, [`store::outbox`]). Remote collectors' batches
//!   are applied once each, with their cursor, by [`store::collectors`].
//! - [`engine`]: pure: homework phrases and rules, evidence, verdicts, adherence, when to nudge.
//! - [`model`]: the normalized shapes every source produces.
//! - [`activity_types`]: coachd's activity types, their families and categories.
//! - [`sleep`]: nights from stretches asleep, dated by the wake-up day, with bed and wake times.
//! - [`config`]: defaults → `coachd.toml` → `COACHD__SECTION__KEY`, typed, every problem located;
//!   [`config_file`]: the file edited in place (`coachd setup`), comments kept.
//! - [`crypto`]: the data dir's key, sealed secrets, [`crypto::Secret`], digests, tokens, password hashes.
//! - [`time`]: local dates in a client's zone, DST-aware day bounds, `parse_day`.
//! - [`init`] and [`paths`]: the data dir and its first use (a packaged install's
//!   `/var/lib/coachd` and `/etc/coachd`, and running as its owner under `sudo`).

pub mod activity_types;
pub mod app;
pub mod ble;
pub mod charts;
pub mod cli;
pub mod collect;
pub mod config;
pub mod config_file;
pub mod crypto;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod files;
pub mod forward;
pub mod homeassistant;
pub mod inbox;
pub mod init;
pub mod live;
pub mod model;
pub mod notifier;
pub mod notify;
pub mod paths;
pub mod providers;
pub mod sleep;
pub mod source;
pub mod sources;
pub mod status;
pub mod store;
pub mod time;
pub mod web;
