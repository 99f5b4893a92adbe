//! The one place that turns configuration into the daemon's sources.

use crate::config::Config;
use crate::inbox::Inbox;
use crate::paths::DataDir;
use crate::source::Source;
use std::sync::Arc;
use std::time::Duration;

/// Every source the configuration enables. The Bluetooth collector and the cloud
/// providers add their arms here when they land.
pub fn build(config: &Config, data: &DataDir) -> Vec<Arc<dyn Source>> {
    let mut sources: Vec<Arc<dyn Source>> = Vec::new();
    if config.inbox.enabled {
        sources.push(Arc::new(Inbox::new(data.root(), Duration::from_millis(config.inbox.poll_ms))));
    }
    sources
}
