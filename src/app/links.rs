//! A client's private links: the page link (`/c/TOKEN`) and the Health Auto Export
//! push token. Both are random 256-bit tokens, stored only as hashes and shown once.

use super::{App, AppResult};
use crate::store::Client;

impl App {
    /// A new private page link for the client; the full URL.
    pub async fn new_share_link(&self, client: &Client) -> AppResult<String> {
        let token = self.store.new_share_link(client.id).await?;
        Ok(format!("{}/c/{token}", self.base_url()))
    }

    /// End every page link of the client; how many there were.
    pub async fn revoke_share_links(&self, client: &Client) -> AppResult<u64> {
        Ok(self.store.revoke_share_links(client.id).await?)
    }

    pub async fn live_share_links(&self, client: &Client) -> AppResult<u64> {
        Ok(self.store.live_share_links(client.id).await?)
    }

    /// The client a page link names, if it is live. A token of the wrong shape is
    /// refused without a database lookup.
    pub async fn client_for_share(&self, token: &str) -> AppResult<Option<Client>> {
        if !crate::crypto::is_token(token) {
            return Ok(None);
        }
        match self.store.client_for_share(token).await? {
            Some(id) => Ok(Some(self.store.client_by_id(id).await?)),
            None => Ok(None),
        }
    }

    /// A new push token; earlier ones of the client stop working.
    pub async fn new_push_token(&self, client: &Client) -> AppResult<String> {
        Ok(self.store.new_push_token(client.id).await?)
    }

    pub async fn revoke_push_tokens(&self, client: &Client) -> AppResult<u64> {
        Ok(self.store.revoke_push_tokens(client.id).await?)
    }

    /// Where the client's Health Auto Export app sends its data.
    pub fn push_url(&self) -> String {
        format!("{}/ingest/health-auto-export", self.base_url())
    }
}
