//! A client's sources as both client pages show them: every provider with its state
//! (connect, disconnect), the Health Auto Export push, paired sensors, files; and what a
//! client does with them from their own page: connect and disconnect their accounts,
//! upload an activity file from a phone.
//!
//! Disconnecting ends coachd's access at the provider where its API allows
//! ([`crate::providers::Provider::revoke`]), forgets the tokens and stops the sync; the
//! data stays until the trainer removes it.

use super::{App, AppError, AppResult};
use crate::providers::{AuthKind, Connection};
use crate::store::providers::{state, Account};
use crate::store::Client;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One provider as a client's pages show it.
#[derive(Clone, Debug, Serialize)]
pub struct ProviderLine {
    pub name: &'static str,
    pub display: String,
    /// not_connected, or the account's state: active, needs_reauth, insufficient_scope,
    /// revoked, disconnected.
    pub state: String,
    /// Why it is in that state (a refusal, a disconnect), or what the provider cannot give.
    pub detail: String,
    /// Connected with the client's API key rather than through the provider's login.
    pub api_key: bool,
    pub key_help: String,
    /// The newest data it delivered for this client.
    pub last_data: Option<DateTime<Utc>>,
    pub last_sync: Option<DateTime<Utc>>,
}

impl ProviderLine {
    /// Whether coachd holds a usable or renewable authorization (Disconnect is offered).
    pub fn connected(&self) -> bool {
        matches!(self.state.as_str(), state::ACTIVE | state::NEEDS_REAUTH | state::INSUFFICIENT_SCOPE)
    }

    /// Whether the client should (re)connect: never connected, or the connection is broken.
    pub fn wants_connect(&self) -> bool {
        self.state != state::ACTIVE
    }
}

/// A source that is not a cloud account: a paired sensor, files, the phone's push.
#[derive(Clone, Debug, Serialize)]
pub struct OtherSource {
    /// The source's name as activities list it: ble, fit, tcx, gpx, apple_health, hae, ...
    pub source: String,
    pub display: String,
    pub last_data: Option<DateTime<Utc>>,
}

/// Every source of a client: the providers (connected or not) and the others with data.
#[derive(Clone, Debug, Serialize)]
pub struct Sources {
    pub providers: Vec<ProviderLine>,
    pub others: Vec<OtherSource>,
    /// Paired sensors' addresses.
    pub sensors: Vec<String>,
    /// Whether the client has a live Health Auto Export token.
    pub push_token: bool,
}

/// What a disconnect did.
#[derive(Clone, Debug, Serialize)]
pub struct Disconnected {
    pub provider: String,
    /// Whether the provider itself ended the authorization.
    pub revoked: bool,
    /// What happened at the provider, in words.
    pub note: String,
}

/// A name for data that did not come from a provider.
fn other_display(source: &str) -> String {
    match source {
        "ble" => "Bluetooth sensors".into(),
        "hae" => "Health Auto Export (iPhone)".into(),
        "apple_health" => "Apple Health export".into(),
        "gadgetbridge" => "Gadgetbridge".into(),
        "fit" | "tcx" | "gpx" => format!("{} files", source.to_ascii_uppercase()),
        other => other.to_string(),
    }
}

impl App {
    /// Every source of the client, for the client's own page and the trainer's.
    pub async fn sources(&self, client: &Client) -> AppResult<Sources> {
        let fresh = self.data_freshness(client).await?;
        let newest = |source: &str| fresh.iter().find(|f| f.source == source).map(|f| f.newest);
        let accounts: Vec<Account> =
            self.store.accounts().await?.into_iter().filter(|a| a.client_id == client.id).collect();
        let mut providers = Vec::new();
        for name in crate::providers::names() {
            let account = accounts.iter().find(|a| a.provider == name);
            // A provider that is not enabled is offered to nobody; an account at one
            // still shows (its data is there).
            let api = self.providers.api(name).ok();
            if api.is_none() && account.is_none() {
                continue;
            }
            let manifest = api.map(|a| &a.manifest);
            let display = manifest.map_or_else(|| name.to_string(), |m| m.display.clone());
            let (state, detail) = match account {
                None => ("not_connected".to_string(), manifest.map(|m| m.connect_note.clone()).unwrap_or_default()),
                Some(a) => (a.state.clone(), a.last_error.clone().unwrap_or_default()),
            };
            providers.push(ProviderLine {
                name,
                display,
                state,
                detail,
                api_key: manifest.is_some_and(|m| m.auth == AuthKind::ApiKey),
                key_help: manifest.map(|m| m.key_help.clone()).unwrap_or_default(),
                last_data: newest(name),
                last_sync: account.and_then(|a| a.last_sync),
            });
        }
        let others = fresh
            .iter()
            .filter(|f| crate::providers::provider(&f.source).is_err())
            .map(|f| OtherSource {
                source: f.source.clone(),
                display: other_display(&f.source),
                last_data: Some(f.newest),
            })
            .collect();
        Ok(Sources {
            providers,
            others,
            sensors: self.devices_of(client).await?,
            push_token: self.store.live_push_tokens(client.id).await? > 0,
        })
    }

    /// End a client's connection to a provider: revoked at the provider where its API
    /// allows, the tokens forgotten, the sync stopped. The data stays.
    pub async fn disconnect(&self, client: &Client, provider: &str, by: &str) -> AppResult<Disconnected> {
        let p = crate::providers::provider(provider.trim().to_ascii_lowercase().as_str())?;
        let account = match self.store.account(client.id, p.name()).await {
            Ok(a) => a,
            Err(crate::store::StoreError::NotFound(_)) => {
                return Err(AppError::input(format!("{} has no {} account connected", client.name, p.name())))
            }
            Err(e) => return Err(e.into()),
        };
        if account.state == state::DISCONNECTED {
            return Err(AppError::input(format!("{}'s {} account is already disconnected", client.name, p.name())));
        }
        let (revoked, note) = self.revoke_at_provider(&account).await;
        let why = format!("disconnected by {by} on {}; {note}", Utc::now().format("%Y-%m-%d"));
        self.store.forget_tokens(account.id, &why).await?;
        tracing::info!(client = %client.name, provider = p.name(), revoked, by, "account disconnected");
        Ok(Disconnected { provider: self.display_of(p.name()), revoked, note })
    }

    fn display_of(&self, provider: &str) -> String {
        self.providers.api(provider).map_or_else(|_| provider.to_string(), |a| a.manifest.display.clone())
    }

    /// Ask the provider to end coachd's authorization of `account`: (revoked, what happened).
    /// Never an error: whatever the provider answers, coachd forgets the tokens after.
    pub(crate) async fn revoke_at_provider(&self, account: &Account) -> (bool, String) {
        let display = self.display_of(&account.provider);
        let settings = format!("the client can remove coachd in their {display} settings");
        if account.state == state::DISCONNECTED || account.state == state::REVOKED {
            return (false, "the authorization had already ended".into());
        }
        let reg = &self.providers;
        let Ok(p) = crate::providers::provider(&account.provider) else {
            return (false, format!("coachd no longer knows this provider; {settings}"));
        };
        if reg.api(&account.provider).is_err() {
            return (false, format!("{display} is not enabled here, so coachd could not ask it; {settings}"));
        }
        let access = match reg.tokens.auth(reg, &self.store, account, false).await {
            Ok(a) => a,
            Err(e) => return (false, format!("no usable token to revoke with ({e}); {settings}")),
        };
        let c = Connection { reg, store: &self.store, account, access };
        match p.revoke(c).await {
            Ok(true) => (true, format!("{display} ended coachd's access")),
            Ok(false) => (false, format!("{display}'s API cannot revoke an authorization; {settings}")),
            Err(e) => {
                tracing::warn!(provider = %account.provider, error = %e, "revoking at the provider failed");
                (false, format!("{display} did not take the revocation ({e}); {settings}"))
            }
        }
    }

    /// Import an activity file the client sent from their page: kept in their archive when
    /// imported, in their quarantine with the reason when refused (like the inbox). `temp`
    /// is the upload as received, a file of [`App::upload_path`]; it is moved or removed.
    pub async fn import_upload(
        &self,
        client: &Client,
        temp: &Path,
        given_name: &str,
    ) -> AppResult<crate::files::Outcome> {
        let outcome = self.import_file(client, temp, crate::files::quiet()).await;
        let name = crate::paths::safe_name(given_name);
        let kept = match (&outcome, &self.files) {
            (Ok(o), Some(files)) => {
                let [_, archive, quarantine] = files.data.client_folders(&client.name);
                match o {
                    crate::files::Outcome::Rejected(why) => {
                        crate::paths::move_into(temp, &quarantine, &name).and_then(|target| {
                            let mut reason = target.into_os_string();
                            reason.push(".reason");
                            std::fs::write(reason, format!("{why}\n"))
                        })
                    }
                    _ => crate::paths::move_into(temp, &archive, &name).map(drop),
                }
            }
            _ => std::fs::remove_file(temp),
        };
        if let Err(e) = kept {
            tracing::warn!(client = %client.name, error = %e, "keeping an uploaded file failed");
            let _ = std::fs::remove_file(temp);
        }
        let outcome = outcome?;
        tracing::info!(client = %client.name, file = %name, outcome = ?outcome, "file uploaded from the client's page");
        Ok(outcome)
    }

    /// Where an upload of the client is written while it arrives: a hidden file in their
    /// inbox folder (which the inbox skips), on the same disk as the archive.
    pub fn upload_path(&self, client: &Client) -> AppResult<PathBuf> {
        let token = crate::crypto::random_token().map_err(|e| AppError::Runtime(e.into()))?;
        let dir = match &self.files {
            Some(files) => files.data.client_folders(&client.name)[0].clone(),
            None => std::env::temp_dir(),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| AppError::Runtime(anyhow::anyhow!("creating {}: {e}", dir.display())))?;
        Ok(dir.join(format!(".upload-{}.part", &token[..16])))
    }
}

#[cfg(test)]
mod tests {
    use crate::paths::safe_name;

    #[test]
    fn uploaded_names_keep_only_their_last_part_and_plain_characters() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\Users\\me\\Morning Run.fit"), "Morning_Run.fit");
        assert_eq!(safe_name(".hidden.gpx"), "hidden.gpx");
        assert_eq!(safe_name(""), "upload");
        assert_eq!(safe_name("..."), "upload");
        assert_eq!(safe_name(&"a".repeat(500)).len(), 100);
    }
}
