//! `coachd init`: data dir, commented default config, encryption key and database.
//! Idempotent: what exists is left as it is.

use crate::config::{Config, DEFAULT_TOML};
use crate::crypto;
use crate::paths::{write_new_private, DataDir};
use crate::store::Store;
use anyhow::Context;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

#[derive(Debug, Default)]
pub struct InitReport {
    pub created_dir: bool,
    pub wrote_config: bool,
    pub created_key: bool,
    pub created_database: bool,
}

impl InitReport {
    pub fn created_anything(&self) -> bool {
        self.created_dir || self.wrote_config || self.created_key || self.created_database
    }
}

/// Make sure the data dir, config, key and database exist, then open the store.
pub async fn init(data: &DataDir, config_path: &Path, config: &Config) -> anyhow::Result<(Store, InitReport)> {
    let mut report = InitReport::default();
    let root = data.root();
    if !root.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("creating data dir {}", root.display()))?;
        report.created_dir = true;
    }
    if !config_path.exists() {
        report.wrote_config = write_new_private(config_path, DEFAULT_TOML.as_bytes())
            .with_context(|| format!("writing default config {}", config_path.display()))?;
    }
    let (cipher, created_key) = crypto::load_or_create_key(&data.key())?;
    report.created_key = created_key;
    if config.store.is_postgres() {
        let pg = config.store.postgres().map_err(anyhow::Error::msg)?;
        let store = Store::open_postgres(&pg, &config.store.options(), cipher)
            .await
            .with_context(|| format!("opening the PostgreSQL database {}", pg.shown()))?;
        return Ok((store, report));
    }
    let db = data.database();
    report.created_database = !db.exists();
    let store = Store::open(&db, &config.store.options(), cipher)
        .await
        .with_context(|| format!("opening database {}", db.display()))?;
    Ok((store, report))
}
