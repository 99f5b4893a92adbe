//! The one place that assembles the daemon's sources from the configuration: the
//! inbox, the Bluetooth collector, the cloud sync, Home Assistant over MQTT, the notifier
//! (nudges and the outbox) and, for
//! `run --demo` or `--simulate-strap`, the simulated strap. `daemon::run` runs whatever it is given.

use crate::app::App;
use crate::inbox::Inbox;
use crate::paths::DataDir;
use crate::source::Source;
use std::sync::Arc;
use std::time::Duration;

/// Every source the configuration enables; `strap` adds a simulated heart-rate strap
/// worn by that client, one simulated second per `tick`.
pub fn build(app: &App, data: &DataDir, strap: Option<(Vec<String>, Duration)>) -> Vec<Arc<dyn Source>> {
    let config = &app.config;
    let mut sources: Vec<Arc<dyn Source>> = Vec::new();
    if config.inbox.enabled {
        sources.push(Arc::new(Inbox::new(data.root(), Duration::from_millis(config.inbox.poll_ms))));
    }
    #[cfg(feature = "ble")]
    if config.ble.enabled {
        sources.push(Arc::new(crate::ble::collector::Collector::new(config.ble.clone())));
    }
    #[cfg(not(feature = "ble"))]
    if config.ble.enabled {
        tracing::warn!("[ble] is enabled, but this build has no Bluetooth support (cargo feature `ble`)");
    }
    // One source per cloud provider, each supervised on its own; each idles while no
    // account of it is connected, and stops at once when the provider is disabled.
    sources.extend(crate::providers::sync::CloudSource::all(app.providers.clone()));
    if config.mqtt.enabled {
        sources.push(Arc::new(crate::homeassistant::HomeAssistant::new(app.clone())));
    }
    if config.notify.enabled {
        sources.push(Arc::new(crate::notifier::Notifier::new(app.clone())));
    }
    if let Some((clients, tick)) = strap {
        for (n, client) in clients.into_iter().enumerate() {
            let cfg = crate::ble::session::SessionConfig::from_config(&config.ble);
            let strap = crate::ble::simulated::SimulatedStrap::new(client, tick, cfg);
            sources.push(Arc::new(strap.nth(u8::try_from(n).unwrap_or(u8::MAX))));
        }
    }
    sources
}
