//! Bluetooth sensors: find them, bind them to clients, list them.

use super::{App, AppError, AppResult};
use crate::store::collectors::Heard;
use crate::store::devices::{parse_address, Device};
use crate::store::web::TrainerId;
use crate::store::Client;

/// A sensor heard during a scan, with the client it is paired with.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeenDevice {
    pub address: String,
    pub name: Option<String>,
    pub services: Vec<String>,
    pub rssi: Option<i16>,
    pub client: Option<String>,
    /// The remote collector that heard it (`devices scan --collector NAME`); absent for
    /// the local adapter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collector: Option<String>,
}

impl App {
    /// Bind a sensor to a client; from then on the running daemon records it for them.
    /// `trainer`: the dashboard's trainer, who may not take a sensor from another
    /// trainer's client (the command line, run by the admin, may).
    pub async fn pair_device(&self, address: &str, client: &Client, trainer: Option<TrainerId>) -> AppResult<Device> {
        let address = parse_address(address).map_err(AppError::Input)?;
        if let Some(trainer) = trainer {
            if let Ok(d) = self.store.device(&address).await {
                if let Some(owner) = d.client_id.filter(|c| *c != client.id) {
                    if self.store.client_of(trainer, owner).await.is_err() {
                        return Err(AppError::input("that sensor is paired with someone else"));
                    }
                }
            }
        }
        Ok(self.store.pair_device(&address, client.id).await?)
    }

    /// Stop recording a sensor; what it recorded stays. Returns the normalised address.
    pub async fn unpair_device(&self, address: &str) -> AppResult<String> {
        let address = parse_address(address).map_err(AppError::Input)?;
        self.store.unpair_device(&address).await?;
        Ok(address)
    }

    pub async fn devices(&self) -> AppResult<Vec<Device>> {
        Ok(self.store.devices().await?)
    }

    /// The addresses of the sensors paired with this client.
    pub async fn devices_of(&self, client: &Client) -> AppResult<Vec<String>> {
        Ok(self.store.pairings().await?.into_iter().filter(|p| p.client_id == client.id).map(|p| p.address).collect())
    }

    /// Listen for fitness sensors through BlueZ; remember what was heard.
    #[cfg(feature = "ble")]
    pub async fn scan_devices(&self, listen: std::time::Duration) -> AppResult<Vec<SeenDevice>> {
        let seen = crate::ble::collector::scan(&self.config.ble.adapter, listen)
            .await
            .map_err(|e| e.context("Bluetooth scan failed (is bluetoothd running, and may this user use it?)"))?;
        self.remember_heard(seen.into_iter().map(Into::into).collect(), None).await
    }

    /// Remember sensors a scan heard (for `devices list`), with the client each is
    /// paired with; `collector`: the remote collector that heard them.
    pub(super) async fn remember_heard(
        &self,
        heard: Vec<Heard>,
        collector: Option<&str>,
    ) -> AppResult<Vec<SeenDevice>> {
        for s in &heard {
            self.store.device_seen(&s.address, s.name.as_deref(), &s.services.join(",")).await?;
        }
        let paired = self.store.devices().await?;
        let client_of =
            |a: &str| paired.iter().find(|d| d.address.eq_ignore_ascii_case(a)).and_then(|d| d.client.clone());
        Ok(heard
            .into_iter()
            .map(|s| SeenDevice {
                client: client_of(&s.address),
                services: s.services,
                address: s.address,
                name: s.name,
                rssi: s.rssi,
                collector: collector.map(String::from),
            })
            .collect())
    }

    #[cfg(not(feature = "ble"))]
    pub async fn scan_devices(&self, _listen: std::time::Duration) -> AppResult<Vec<SeenDevice>> {
        Err(AppError::Runtime(anyhow::anyhow!("this coachd was built without Bluetooth support (cargo feature `ble`)")))
    }
}
