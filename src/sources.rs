//! The one place that turns configuration into the daemon's sources.

use crate::config::Config;
use crate::inbox::Inbox;
use crate::paths::DataDir;
use crate::source::Source;
use std::sync::Arc;
use std::time::Duration;

/// Every source the configuration enables. The cloud providers add their arms here
/// when they land.
pub fn build(config: &Config, data: &DataDir) -> Vec<Arc<dyn Source>> {
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
    sources
}
