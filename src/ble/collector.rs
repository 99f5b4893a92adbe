//! The Bluetooth collector: btleplug over BlueZ (D-Bus).
//!
//! One long-lived adapter event stream. The scan asks BlueZ for the fitness services, but
//! BlueZ merges the filters of all its clients, so every discovery is filtered again here.
//! Each paired device gets its own task for its whole life: one peripheral handle and one
//! notification stream (btleplug/bluez-async can panic when a stream is dropped while
//! signals still arrive, and every stream adds match rules), connect → discover →
//! subscribe → read the body-sensor location, then readings go through
//! [`Decoder`] and [`Recorder`]. A disconnect reconnects with capped backoff and
//! subscribes again; a watchdog reconnects a subscribed device that has gone silent. The
//! session outlives reconnects, so a strap that drops out for a minute gives one session.
//!
//! btleplug reports neither a lost D-Bus connection nor a bluetoothd restart, so a probe
//! asks BlueZ for its adapters every few seconds; when that fails, every task flushes,
//! and the collector waits for BlueZ to come back (logging that once). Batches go through
//! one channel to the source's own task, which commits them in order. btleplug's streams
//! (a device's notifications, the adapter's events) do not end when its D-Bus connection
//! dies: each bluez-async stream holds the sending end of its own channel, so a dead
//! connection is silence and calls that get no answer. The probe's call notices it while
//! BlueZ's owner still answers on the probe's own connection, and the collector starts
//! over with a new Manager, the open sessions parked as for a bluetoothd restart.
//!
//! A device that cannot be connected is never dropped: its task retries with backoff
//! and says why it is waiting (BlueZ refusing a connection more than the adapter holds,
//! the device gone from BlueZ's object tree, the adapter powered off). The probe
//! writes each paired device's link to the store, for `devices list`, and names the
//! waiting ones in `/healthz`. A device seen again, or the adapter powered on again,
//! cuts its backoff short. btleplug reports no InterfacesRemoved, so a device missing
//! from BlueZ's list is noticed by the probe; its task keeps its one notification stream.

use super::reading::{self, Decoder, Reading, BATTERY_LEVEL, BODY_SENSOR_LOCATION, MEASUREMENTS};
use super::session::Recorder;
use crate::config::BleConfig;
use crate::model::{Batch, ClientId};
use crate::source::{Sink, Source, SourceContext, SourceFuture};
use crate::store::devices::{Link, Pairing, StoredSession};
use crate::store::outbox::PushError;
use crate::store::StoreError;
use btleplug::api::bleuuid::{uuid_from_u16, BleUuid};
use btleplug::api::{Central, CentralEvent, CharPropFlags, Manager as _, Peripheral as _, ScanFilter};
use btleplug::platform::{Adapter, Manager, Peripheral, PeripheralId};
use chrono::{Offset, TimeZone, Utc};
use chrono_tz::Tz;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// How often BlueZ is asked whether it is still there, and pairings are re-read.
const PROBE: Duration = Duration::from_secs(5);
/// Discovery is asked for again this often: a bluetoothd restart forgets it silently.
const RESCAN: Duration = Duration::from_secs(60);
/// A device's last-seen time is written at most this often.
const SEEN_EVERY: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Collector {
    cfg: BleConfig,
}

impl Collector {
    pub fn new(cfg: BleConfig) -> Self {
        Self { cfg }
    }
}

/// A device seen nearby, for `devices scan`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Seen {
    pub address: String,
    pub name: Option<String>,
    pub services: Vec<&'static str>,
    pub rssi: Option<i16>,
}

/// What a scan heard, as the hub stores it (the local `devices scan` and a remote
/// collector's answer alike).
impl From<Seen> for crate::store::collectors::Heard {
    fn from(s: Seen) -> Self {
        Self {
            services: s.services.iter().map(|x| x.to_string()).collect(),
            address: s.address,
            name: s.name,
            rssi: s.rssi,
        }
    }
}

async fn timed<T, E: std::fmt::Display>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow::anyhow!("{what}: {e}")),
        Err(_) => Err(anyhow::anyhow!("{what}: no answer within {} s", limit.as_secs())),
    }
}

/// Connect to BlueZ and choose the adapter: by address or name when configured, else the
/// only one (with several, the first by name: btleplug lists them in random order).
pub async fn open_adapter(wanted: &str) -> anyhow::Result<(Manager, Adapter, String)> {
    let manager = timed("connecting to the D-Bus system bus", CALL_TIMEOUT, Manager::new()).await?;
    let adapters = timed("asking BlueZ for adapters", CALL_TIMEOUT, manager.adapters()).await?;
    let mut named = Vec::new();
    for adapter in adapters {
        let info = timed("reading an adapter", CALL_TIMEOUT, adapter.adapter_info()).await?;
        let name = info.split_whitespace().next().unwrap_or_default().to_string();
        let address = adapter.adapter_address().await.ok().flatten().map(|a| a.to_string()).unwrap_or_default();
        named.push((name, address, adapter));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let available = || named.iter().map(|(n, a, _)| format!("{n} ({a})")).collect::<Vec<_>>().join(", ");
    let pick = if wanted.is_empty() {
        named.first().map(|(n, ..)| n.clone())
    } else {
        named.iter().find(|(n, a, _)| n == wanted || a.eq_ignore_ascii_case(wanted)).map(|(n, ..)| n.clone())
    };
    let Some(pick) = pick else {
        anyhow::bail!(if named.is_empty() {
            "BlueZ has no Bluetooth adapter".to_string()
        } else {
            format!("no adapter {wanted:?} (BlueZ has: {})", available())
        });
    };
    let (name, _, adapter) =
        named.into_iter().find(|(n, ..)| *n == pick).ok_or_else(|| anyhow::anyhow!("adapter gone"))?;
    Ok((manager, adapter, name))
}

/// Who owns `org.bluez` on the system bus. btleplug does not notice bluetoothd going
/// away and coming back (a restart keeps the bus name but changes its owner), so the
/// collector compares owners on every probe.
struct BluezOwner(std::sync::Arc<std::sync::Mutex<dbus::blocking::Connection>>);

impl BluezOwner {
    async fn connect() -> anyhow::Result<Self> {
        let conn = tokio::task::spawn_blocking(dbus::blocking::Connection::new_system).await??;
        Ok(Self(std::sync::Arc::new(std::sync::Mutex::new(conn))))
    }

    async fn get(&self) -> anyhow::Result<String> {
        let conn = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(|_| anyhow::anyhow!("D-Bus connection lock poisoned"))?;
            let proxy = conn.with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", CALL_TIMEOUT);
            let (owner,): (String,) = proxy.method_call("org.freedesktop.DBus", "GetNameOwner", ("org.bluez",))?;
            Ok(owner)
        })
        .await?
    }
}

fn scan_filter() -> ScanFilter {
    ScanFilter { services: reading::SERVICES.iter().map(|(n, _)| uuid_from_u16(*n)).collect() }
}

/// The fitness services a peripheral advertises (empty: not a sensor coachd reads).
async fn describe(p: &Peripheral) -> Option<Seen> {
    let props = p.properties().await.ok().flatten()?;
    let services: Vec<&'static str> =
        props.services.iter().filter_map(|u| u.to_ble_u16().and_then(reading::service_name)).collect();
    Some(Seen { address: props.address.to_string(), name: props.local_name, services, rssi: props.rssi })
}

/// Start discovery: true when this call started it. Discovery already running
/// (`org.bluez.Error.InProgress`: started by this connection before, or still held for a
/// process that died a moment ago) is what was asked for, not a failure.
async fn start_discovery(adapter: &Adapter) -> anyhow::Result<bool> {
    match timed("starting discovery", CALL_TIMEOUT, adapter.start_scan(scan_filter())).await {
        Err(e) if format!("{e:#}").contains("InProgress") || format!("{e:#}").contains("already in progress") => {
            tracing::debug!("discovery was already running: {e:#}");
            Ok(false)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(true),
    }
}

/// `devices scan` (local, or a remote collector's for the hub): the fitness sensors
/// nearby after listening for `listen`. Sensors BlueZ already holds are not announced
/// again: the ones it has heard during a discovery still running (a collector recording
/// on this adapter; those with a signal) count too, and discovery this call did not
/// start is left running for its owner.
pub async fn scan(adapter_name: &str, listen: Duration) -> anyhow::Result<Vec<Seen>> {
    let (_manager, adapter, _) = open_adapter(adapter_name).await?;
    let mut events = timed("subscribing to adapter events", CALL_TIMEOUT, adapter.events()).await?;
    let started = start_discovery(&adapter).await?;
    let mut ids = Vec::new();
    for p in timed("listing known devices", CALL_TIMEOUT, adapter.peripherals()).await? {
        if p.properties().await.ok().flatten().is_some_and(|props| props.rssi.is_some()) {
            ids.push(p.id());
        }
    }
    let deadline = tokio::time::Instant::now() + listen;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
        if let CentralEvent::DeviceDiscovered(id)
        | CentralEvent::DeviceUpdated(id)
        | CentralEvent::ServicesAdvertisement { id, .. } = event
        {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if started {
        let _ = adapter.stop_scan().await;
    }
    let mut seen = Vec::new();
    for id in ids {
        if let Ok(p) = adapter.peripheral(&id).await {
            if let Some(s) = describe(&p).await.filter(|s| !s.services.is_empty()) {
                seen.push(s);
            }
        }
    }
    seen.sort_by(|a, b| b.rssi.cmp(&a.rssi).then(a.address.cmp(&b.address)));
    Ok(seen)
}

/// Why the collector stopped talking to this BlueZ.
enum Stop {
    Shutdown,
    Lost(String),
}

impl Source for Collector {
    fn name(&self) -> &str {
        "ble"
    }

    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(async move {
            let retry = Duration::from_secs(self.cfg.bluez_retry_s);
            let mut absent_logged = false;
            // Open sessions outlive a BlueZ restart: the strap comes back into the same one.
            let mut parked: HashMap<String, Recorder> = HashMap::new();
            loop {
                let opened = async {
                    let watch = BluezOwner::connect().await?;
                    let owner =
                        watch.get().await.map_err(|e| anyhow::anyhow!("BlueZ is not on the system bus: {e}"))?;
                    let (manager, adapter, name) = open_adapter(&self.cfg.adapter).await?;
                    anyhow::Ok((watch, owner, manager, adapter, name))
                };
                match opened.await {
                    Ok((watch, owner, manager, adapter, name)) => {
                        let bluez = Bluez { watch, owner, manager, adapter, name };
                        tracing::info!(adapter = %bluez.name, "Bluetooth collector scanning");
                        match collect(ctx, &self.cfg, &bluez, &mut parked).await? {
                            Stop::Shutdown => return Ok(()),
                            Stop::Lost(why) => {
                                tracing::warn!("lost BlueZ ({why}); looking for it every {} s", retry.as_secs());
                                absent_logged = true;
                            }
                        }
                    }
                    Err(e) => {
                        if absent_logged {
                            tracing::debug!("Bluetooth still unavailable: {e:#}");
                        } else {
                            tracing::warn!("Bluetooth unavailable ({e:#}); looking again every {} s", retry.as_secs());
                            absent_logged = true;
                        }
                        ctx.set_detail(format!("waiting for BlueZ: {e:#}"));
                    }
                }
                if !ctx.sleep(retry).await {
                    return Ok(());
                }
            }
        })
    }
}

struct DeviceTask {
    address: String,
    client_id: ClientId,
    cancel: CancellationToken,
    /// Connection changes from the adapter's event stream.
    link: mpsc::UnboundedSender<bool>,
    connected: Arc<AtomicBool>,
    /// Why the last connection attempt failed; None once connected.
    waiting: Arc<Mutex<Option<String>>>,
    /// Try connecting now instead of at the end of the backoff.
    retry: Arc<Notify>,
    join: tokio::task::JoinHandle<Recorder>,
}

impl DeviceTask {
    /// The link as `devices list` and `/healthz` show it.
    fn link(&self, absent: bool, powered_off: bool) -> Link {
        if self.connected.load(Ordering::Relaxed) {
            return Link::Connected;
        }
        let why = self.waiting.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Link::Waiting(if powered_off {
            "the adapter is powered off".into()
        } else if absent {
            "not in BlueZ's device list (out of range?); waiting for it to be seen again".into()
        } else {
            why.unwrap_or_else(|| "connecting".into())
        })
    }
}

/// What a failed connection attempt means, for the trainer.
fn waiting_reason(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    if text.contains("le-connection-abort") {
        "BlueZ refused the connection (le-connection-abort-by-local): the adapter may hold no more connections".into()
    } else if text.contains("NotReady") {
        "BlueZ is not ready (adapter powered off?)".into()
    } else {
        text
    }
}

/// One bluetoothd, as found.
struct Bluez {
    watch: BluezOwner,
    owner: String,
    manager: Manager,
    adapter: Adapter,
    name: String,
}

/// Collect from one adapter until shutdown or until BlueZ goes away.
async fn collect(
    ctx: &SourceContext,
    cfg: &BleConfig,
    bluez: &Bluez,
    parked: &mut HashMap<String, Recorder>,
) -> anyhow::Result<Stop> {
    let Bluez { manager, adapter, name, .. } = bluez;
    let mut events = match adapter.events().await {
        Ok(events) => events,
        Err(e) => return Ok(Stop::Lost(format!("subscribing to adapter events: {e}"))),
    };
    if let Err(e) = start_discovery(adapter).await {
        return Ok(Stop::Lost(format!("{e:#}")));
    }
    let (tx, mut rx) = mpsc::channel::<Batch>(256);
    let mut tasks: HashMap<PeripheralId, DeviceTask> = HashMap::new();
    let mut pairings = ctx.sink.pairings().await?;
    // What an earlier run said of the links no longer holds.
    if let Err(e) = ctx.sink.clear_device_links().await {
        tracing::warn!("cannot clear the devices' links: {e}");
    }
    let mut links: HashMap<String, Link> = HashMap::new();
    let mut powered_off = false;
    // Paired devices the probe did not find in BlueZ's object tree.
    let mut absent: std::collections::HashSet<PeripheralId> = std::collections::HashSet::new();
    let mut seen_at: HashMap<PeripheralId, Instant> = HashMap::new();
    let mut probe = tokio::time::interval(PROBE);
    let mut rescan = tokio::time::interval_at(tokio::time::Instant::now() + RESCAN, RESCAN);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = loop {
        tokio::select! {
            biased;
            () = ctx.shutdown.cancelled() => break Stop::Shutdown,
            Some(batch) = rx.recv() => {
                deliver(ctx, &batch).await?;
            }
            event = events.next() => {
                let Some(event) = event else { break Stop::Lost("the adapter's event stream ended".into()) };
                if let CentralEvent::RssiUpdate { id, rssi } = &event {
                    if let Some(t) = tasks.get(id) {
                        ctx.live.signal(&t.address, *rssi);
                    }
                }
                // Back in BlueZ's tree (InterfacesAdded) after the probe found it gone: its
                // task tries now. Not on every discovery or advertisement, which would
                // defeat the backoff against a BlueZ that refuses it.
                if let CentralEvent::DeviceDiscovered(id) = &event {
                    if absent.remove(id) {
                        if let Some(t) = tasks.get(id) {
                            t.retry.notify_waiters();
                        }
                    }
                }
                let id = match event {
                    CentralEvent::DeviceDisconnected(id) => {
                        if let Some(t) = tasks.get(&id) {
                            let _ = t.link.send(false);
                        }
                        continue;
                    }
                    CentralEvent::DeviceConnected(id) => {
                        if let Some(t) = tasks.get(&id) {
                            let _ = t.link.send(true);
                        }
                        continue;
                    }
                    CentralEvent::StateUpdate(state) => {
                        let on = matches!(state, btleplug::api::CentralState::PoweredOn);
                        if on && powered_off {
                            tracing::info!(adapter = %name, "adapter powered on; discovering and connecting again");
                            if let Err(e) = start_discovery(adapter).await {
                                tracing::warn!("{e:#}");
                            }
                            for t in tasks.values() {
                                t.retry.notify_waiters();
                            }
                        } else if !on && !powered_off {
                            tracing::warn!(adapter = %name, "adapter powered off; waiting for it to be powered on");
                        }
                        powered_off = !on;
                        continue;
                    }
                    CentralEvent::DeviceDiscovered(id)
                    | CentralEvent::DeviceUpdated(id)
                    | CentralEvent::ServicesAdvertisement { id, .. }
                    | CentralEvent::RssiUpdate { id, .. } => id,
                    _ => continue,
                };
                // Advertisements repeat many times a second: look at each device once a minute.
                if seen_at.get(&id).is_some_and(|t| t.elapsed() < SEEN_EVERY) {
                    continue;
                }
                seen_at.insert(id.clone(), Instant::now());
                let Ok(peripheral) = adapter.peripheral(&id).await else { continue };
                let Some(seen) = describe(&peripheral).await else { continue };
                let pairing = pairings.iter().find(|p| p.address.eq_ignore_ascii_case(&seen.address));
                if seen.services.is_empty() && pairing.is_none() {
                    continue; // BlueZ's merged filter let through something that is not ours
                }
                note_seen(ctx, &seen).await;
                if let (Some(pairing), false) = (pairing, tasks.contains_key(&id)) {
                    let task = spawn_device(ctx, cfg, peripheral, pairing, parked, tx.clone());
                    tasks.insert(id, task);
                }
            }
            _ = probe.tick() => {
                match bluez.watch.get().await {
                    Ok(owner) if owner == bluez.owner => {}
                    Ok(_) => break Stop::Lost("bluetoothd restarted".into()),
                    Err(e) => break Stop::Lost(format!("org.bluez left the bus: {e:#}")),
                }
                // The owner answered on the probe's own connection: a call that fails on
                // btleplug's means that connection is dead (or bluetoothd hangs), and only a
                // new Manager hears BlueZ again. Its streams never say so (module docs).
                if let Err(e) = timed("asking BlueZ for adapters", CALL_TIMEOUT, manager.adapters()).await {
                    break Stop::Lost(format!("org.bluez is on the bus but does not answer coachd's connection: {e:#}"));
                }
                pairings = ctx.sink.pairings().await?;
                // Unpaired (or moved to another client) while running: stop, keeping what was recorded.
                tasks.retain(|_, t| {
                    let keep = pairings.iter().any(|p| p.address.eq_ignore_ascii_case(&t.address) && p.client_id == t.client_id);
                    if !keep {
                        t.cancel.cancel();
                    }
                    keep
                });
                // Paired devices BlueZ already knows (bonded, or discovered before pairing).
                let known = adapter.peripherals().await.ok();
                if let Some(known) = known.clone() {
                    for p in known {
                        let id = p.id();
                        let address = p.address().to_string();
                        if tasks.contains_key(&id) {
                            continue;
                        }
                        if let Some(pairing) = pairings.iter().find(|x| x.address.eq_ignore_ascii_case(&address)) {
                            if let Some(seen) = describe(&p).await {
                                note_seen(ctx, &seen).await;
                            }
                            seen_at.insert(id.clone(), Instant::now());
                            let task = spawn_device(ctx, cfg, p, pairing, parked, tx.clone());
                            tasks.insert(id, task);
                        }
                    }
                }
                // A task that ended by itself (its notification stream ended) hands its
                // recorder back: an open session goes on in the next task, not split.
                // btleplug 0.13's BlueZ streams never end (see the module docs); this is
                // for one that does, not a path a lost connection takes.
                let finished: Vec<_> = tasks.iter().filter(|(_, t)| t.join.is_finished()).map(|(id, _)| id.clone()).collect();
                for id in finished {
                    if let Some(t) = tasks.remove(&id) {
                        if let Ok(recorder) = t.join.await {
                            parked.insert(t.address, recorder);
                        }
                    }
                }
                // A connected sensor does not advertise: it is seen while it is connected.
                for (id, t) in &tasks {
                    if t.connected.load(Ordering::Relaxed) && seen_at.get(id).is_none_or(|at| at.elapsed() >= SEEN_EVERY) {
                        seen_at.insert(id.clone(), Instant::now());
                        if let Err(e) = ctx.sink.device_seen(&t.address, None, "").await {
                            tracing::warn!(address = %t.address, "cannot record a device seen: {e}");
                        }
                    }
                }
                // Every paired device's link, for `devices list` and /healthz: none is dropped
                // silently when BlueZ will not connect it.
                let in_tree: Option<Vec<PeripheralId>> = known.map(|k| k.iter().map(|p| p.id()).collect());
                // One snapshot: a task connecting while the links are written is counted once.
                let (mut waiting, mut connected) = (Vec::new(), 0);
                for (id, t) in &tasks {
                    let gone = in_tree.as_ref().is_some_and(|ids| !ids.contains(id));
                    if gone {
                        absent.insert(id.clone());
                    } else {
                        absent.remove(id);
                    }
                    let link = t.link(gone, powered_off);
                    match &link {
                        Link::Waiting(why) => waiting.push(format!("{} ({why})", t.address)),
                        Link::Connected => connected += 1,
                    }
                    if links.get(&t.address) != Some(&link) {
                        match ctx.sink.set_device_link(&t.address, Some(&link)).await {
                            Ok(()) => {
                                links.insert(t.address.clone(), link);
                            }
                            Err(e) => tracing::warn!(address = %t.address, "cannot record a device's link: {e}"),
                        }
                    }
                }
                let gone: Vec<String> =
                    links.keys().filter(|a| !tasks.values().any(|t| &t.address == *a)).cloned().collect();
                for address in gone {
                    if ctx.sink.set_device_link(&address, None).await.is_ok() {
                        links.remove(&address);
                    }
                }
                waiting.sort();
                let unseen = pairings.len().saturating_sub(tasks.len());
                let mut detail = format!(
                    "scanning on {name}{}; {connected} of {} paired sensor(s) connected",
                    if powered_off { " (adapter powered off)" } else { "" },
                    pairings.len()
                );
                if unseen > 0 {
                    detail.push_str(&format!("; {unseen} not found yet"));
                }
                if !waiting.is_empty() {
                    detail.push_str(&format!("; waiting: {}", waiting.join("; ")));
                }
                ctx.set_detail(detail);
            }
            _ = rescan.tick(), if !powered_off => {
                // Not while the adapter is off: starting discovery would power it on against
                // whoever turned it off. Already discovering is an error BlueZ reports; it is
                // the normal case here.
                if let Err(e) = timed("restarting discovery", CALL_TIMEOUT, adapter.start_scan(scan_filter())).await {
                    tracing::debug!("{e:#}");
                }
            }
        }
    };
    // Every device task flushes what its session holds; commit it all before returning.
    for t in tasks.values() {
        t.cancel.cancel();
    }
    drop(tx);
    while let Some(batch) = rx.recv().await {
        deliver(ctx, &batch).await?;
    }
    for (_, t) in tasks {
        if let Ok(recorder) = t.join.await {
            parked.insert(t.address, recorder);
        }
    }
    if matches!(stop, Stop::Shutdown) {
        let _ = tokio::time::timeout(Duration::from_secs(1), adapter.stop_scan()).await;
    }
    if let Err(e) = ctx.sink.clear_device_links().await {
        tracing::warn!("cannot clear the devices' links: {e}");
    }
    Ok(stop)
}

async fn note_seen(ctx: &SourceContext, seen: &Seen) {
    if let Err(e) = ctx.sink.device_seen(&seen.address, seen.name.as_deref(), &seen.services.join(",")).await {
        tracing::warn!(address = %seen.address, "cannot record a device seen nearby: {e}");
    }
}

/// What the collector reads and writes beside its batches: the daemon's database, or in
/// collector mode the outbox (the hub's pairing list as last read, the sessions this box
/// recorded, the sensors in range and their links, which the forwarder reports).
impl Sink {
    async fn pairings(&self) -> Result<Vec<Pairing>, StoreError> {
        match self {
            Sink::Store(s) => s.pairings().await,
            Sink::Outbox(o) => o.pairings().await,
        }
    }

    async fn last_session(&self, client: ClientId, address: &str) -> Result<Option<StoredSession>, StoreError> {
        match self {
            Sink::Store(s) => s.last_session(client, address).await,
            Sink::Outbox(o) => o.last_session(client, address).await,
        }
    }

    async fn device_seen(&self, address: &str, name: Option<&str>, services: &str) -> Result<(), StoreError> {
        match self {
            Sink::Store(s) => s.device_seen(address, name, services).await,
            Sink::Outbox(o) => o.device_seen(address, name, services).await,
        }
    }

    async fn set_device_link(&self, address: &str, link: Option<&Link>) -> Result<(), StoreError> {
        match self {
            Sink::Store(s) => s.set_device_link(address, link).await,
            Sink::Outbox(o) => o.set_device_link(address, link).await,
        }
    }

    async fn clear_device_links(&self) -> Result<(), StoreError> {
        match self {
            Sink::Store(s) => s.clear_device_links().await,
            Sink::Outbox(o) => o.clear_device_links().await,
        }
    }
}

/// Hand a session batch over: ingest it, or commit it to the outbox. A full outbox does
/// not stop the collector (sessions go on being recorded, and the live view shows them);
/// the batch is not stored, which is logged as an error (once a minute) and reported.
async fn deliver(ctx: &SourceContext, batch: &Batch) -> anyhow::Result<()> {
    let Sink::Outbox(outbox) = &ctx.sink else {
        ctx.ingest(batch).await?;
        return Ok(());
    };
    match outbox.push(batch).await {
        Ok(_) => {
            ctx.note_batch();
            Ok(())
        }
        Err(e @ PushError::Full { .. }) => {
            static LOGGED: Mutex<Option<Instant>> = Mutex::new(None);
            let mut logged = LOGGED.lock().unwrap_or_else(|p| p.into_inner());
            if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                *logged = Some(Instant::now());
                tracing::error!("{e}");
            }
            Ok(())
        }
        Err(PushError::Store(e)) => Err(e.into()),
    }
}

fn spawn_device(
    ctx: &SourceContext,
    cfg: &BleConfig,
    peripheral: Peripheral,
    pairing: &Pairing,
    parked: &mut HashMap<String, Recorder>,
    tx: mpsc::Sender<Batch>,
) -> DeviceTask {
    let cancel = ctx.shutdown.child_token();
    let (link, link_rx) = mpsc::unbounded_channel();
    let connected = Arc::new(AtomicBool::new(false));
    let waiting = Arc::new(Mutex::new(None));
    let retry = Arc::new(Notify::new());
    let tz: Tz = pairing.tz;
    let parked_recorder = parked.remove(&pairing.address).filter(|r| r.client() == pairing.client_id);
    let fresh = parked_recorder.is_none();
    let mut device = Device {
        address: pairing.address.clone(),
        peripheral,
        recorder: parked_recorder.unwrap_or_else(|| {
            Recorder::new(
                pairing.address.clone(),
                pairing.client_id,
                offset(tz),
                crate::ble::session::SessionConfig::from_config(cfg),
            )
        }),
        tz,
        decoder: Decoder::default(),
        cfg: cfg.clone(),
        tx,
        cancel: cancel.clone(),
        link: link_rx,
        connected: connected.clone(),
        live: ctx.live.clone(),
        battery: None,
        waiting: waiting.clone(),
        retry: retry.clone(),
    };
    tracing::info!(address = %pairing.address, client = pairing.client_id, "paired sensor found; connecting");
    let sink = ctx.sink.clone();
    let client = pairing.client_id;
    let join = tokio::spawn(async move {
        // A new recorder (coachd started): the device's latest stored session goes on if
        // the device is back within the session gap.
        if fresh {
            match sink.last_session(client, &device.address).await {
                Ok(Some(stored)) => device.recorder.resume(stored),
                Ok(None) => {}
                Err(e) => tracing::warn!(address = %device.address, "cannot read the device's last session: {e}"),
            }
        }
        device.run().await
    });
    DeviceTask {
        address: pairing.address.clone(),
        client_id: pairing.client_id,
        cancel,
        link,
        connected,
        waiting,
        retry,
        join,
    }
}

fn offset(tz: Tz) -> i32 {
    tz.offset_from_utc_datetime(&Utc::now().naive_utc()).fix().local_minus_utc()
}

struct Device {
    address: String,
    peripheral: Peripheral,
    recorder: Recorder,
    tz: Tz,
    decoder: Decoder,
    cfg: BleConfig,
    tx: mpsc::Sender<Batch>,
    cancel: CancellationToken,
    link: mpsc::UnboundedReceiver<bool>,
    connected: Arc<AtomicBool>,
    live: crate::live::Live,
    /// Battery Service level, read at each connect where the device offers it.
    battery: Option<u8>,
    waiting: Arc<Mutex<Option<String>>>,
    retry: Arc<Notify>,
}

impl Device {
    /// Runs until cancelled; hands back the recorder, whose session may still be open.
    async fn run(mut self) -> Recorder {
        // One notification stream for the device's whole life (see the module docs).
        let mut notifications = loop {
            match self.peripheral.notifications().await {
                Ok(stream) => break stream,
                Err(e) => {
                    tracing::warn!(address = %self.address, "cannot listen for notifications: {e}");
                    if !self.pause(Duration::from_secs(self.cfg.bluez_retry_s)).await {
                        return self.recorder;
                    }
                }
            }
        };
        let max_backoff = Duration::from_secs(self.cfg.reconnect_max_s);
        let watchdog = Duration::from_secs(self.cfg.watchdog_s);
        let mut backoff = Duration::from_secs(1);
        let mut failures = 0u32;
        'life: loop {
            let cancel = self.cancel.clone();
            let attempt = tokio::select! {
                r = self.connect() => r,
                () = cancel.cancelled() => break 'life,
            };
            match attempt {
                Ok(types) => {
                    let names: Vec<String> = types.iter().map(|c| format!("{c:#06x}")).collect();
                    tracing::info!(address = %self.address, subscribed = %names.join(","), "sensor connected");
                    failures = 0;
                    backoff = Duration::from_secs(1);
                    *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                Err(e) => {
                    failures += 1;
                    *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = Some(waiting_reason(&e));
                    if failures == 1 {
                        tracing::warn!(address = %self.address, "cannot connect: {e:#}; retrying with backoff");
                    } else {
                        tracing::debug!(address = %self.address, failures, "cannot connect: {e:#}");
                    }
                    if !self.backoff(backoff).await {
                        break 'life;
                    }
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            }
            self.connected.store(true, Ordering::Relaxed);
            while self.link.try_recv().is_ok() {} // changes from before this connection
            let mut last_data = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = self.cancel.cancelled() => break 'life,
                    n = notifications.next() => {
                        let Some(n) = n else {
                            tracing::warn!(address = %self.address, "notification stream ended");
                            self.connected.store(false, Ordering::Relaxed);
                            break 'life;
                        };
                        last_data = Instant::now();
                        let Some(short) = n.uuid.to_ble_u16() else { continue };
                        self.on_notification(short, &n.value).await;
                    }
                    change = self.link.recv() => {
                        if change == Some(false) {
                            tracing::info!(address = %self.address, "sensor disconnected; reconnecting");
                            break;
                        }
                    }
                    _ = tick.tick() => {
                        self.tick().await;
                        if last_data.elapsed() >= watchdog {
                            tracing::warn!(address = %self.address, "sensor silent for {} s; reconnecting", watchdog.as_secs());
                            let _ = tokio::time::timeout(CALL_TIMEOUT, self.peripheral.disconnect()).await;
                            break;
                        }
                    }
                }
            }
            self.connected.store(false, Ordering::Relaxed);
            if !self.pause(Duration::from_millis(200)).await {
                break 'life;
            }
        }
        self.connected.store(false, Ordering::Relaxed);
        if let Some(batch) = self.recorder.flush() {
            let _ = self.tx.send(batch).await;
        }
        self.recorder
    }

    /// Connect, discover, subscribe to every measurement offered, and read where a strap
    /// is worn. Returns the subscribed characteristics.
    async fn connect(&mut self) -> anyhow::Result<Vec<u16>> {
        let p = &self.peripheral;
        if !p.is_connected().await.unwrap_or(false) {
            timed("connecting", CONNECT_TIMEOUT, p.connect()).await?;
        }
        timed("discovering services", CONNECT_TIMEOUT, p.discover_services()).await?;
        let mut subscribed = Vec::new();
        for c in p.characteristics() {
            let Some(short) = c.uuid.to_ble_u16() else { continue };
            if MEASUREMENTS.contains(&short) && c.properties.intersects(CharPropFlags::NOTIFY | CharPropFlags::INDICATE)
            {
                timed("subscribing", CALL_TIMEOUT, p.subscribe(&c)).await?;
                subscribed.push(short);
            } else if short == BATTERY_LEVEL && c.properties.contains(CharPropFlags::READ) {
                match timed("reading the battery level", CALL_TIMEOUT, p.read(&c)).await {
                    Ok(bytes) => self.battery = bytes.first().copied().filter(|pct| *pct <= 100),
                    Err(e) => tracing::debug!(address = %self.address, "{e:#}"),
                }
            } else if short == BODY_SENSOR_LOCATION && c.properties.contains(CharPropFlags::READ) {
                match timed("reading the body sensor location", CALL_TIMEOUT, p.read(&c)).await {
                    Ok(bytes) => match super::gatt::body_sensor_location(&bytes) {
                        Ok(at) => tracing::info!(address = %self.address, location = ?at, "sensor worn at"),
                        Err(e) => tracing::warn!(address = %self.address, "{e}"),
                    },
                    Err(e) => tracing::debug!(address = %self.address, "{e:#}"),
                }
            }
        }
        if subscribed.is_empty() {
            anyhow::bail!("the device offers none of the measurements coachd reads");
        }
        self.recorder.set_activity_type(reading::activity_type(&subscribed));
        Ok(subscribed)
    }

    async fn on_notification(&mut self, characteristic: u16, payload: &[u8]) {
        let now = Utc::now().timestamp_millis();
        let (batches, shown) = match self.decoder.decode(characteristic, payload) {
            Ok(Some(Reading::HeartRate(hr))) => {
                let shown =
                    hr.is_valid_sample().then(|| crate::live::Reading { bpm: Some(hr.bpm), ..Default::default() });
                (self.recorder.on_heart_rate(now, &hr), shown)
            }
            Ok(Some(Reading::Machine(m))) => {
                let shown = crate::live::Reading {
                    bpm: m.heart_rate.filter(|b| *b > 0).map(u16::from),
                    power_w: m.power_w,
                    cadence_rpm: m.cadence_rpm.or(m.stroke_rate_spm),
                    speed_kmh: m.speed_kmh,
                    battery_pct: None,
                };
                (self.recorder.on_machine(now, &m), Some(shown))
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(address = %self.address, "dropped a notification: {e}");
                return;
            }
        };
        if let (Some(shown), Some(start)) = (shown, self.recorder.session_start_ms()) {
            let shown = crate::live::Reading { battery_pct: self.battery, ..shown };
            let (client, ty) = (self.recorder.client(), self.recorder.activity_type());
            self.live.record(&self.address, client, ty, start, now, &shown);
        }
        self.send(batches).await;
    }

    async fn tick(&mut self) {
        self.recorder.set_utc_offset(offset(self.tz));
        let batch = self.recorder.on_tick(Utc::now().timestamp_millis());
        if !self.recorder.in_session() {
            self.live.ended(&self.address);
        }
        self.send(batch).await;
    }

    async fn send(&mut self, batches: impl IntoIterator<Item = Batch>) {
        for b in batches {
            if self.tx.send(b).await.is_err() {
                self.cancel.cancel(); // the collector is gone
            }
        }
    }

    /// Wait before the next connection attempt, as [`Device::pause`], but only until the
    /// device is seen again or the adapter powered on. False on shutdown.
    async fn backoff(&mut self, d: Duration) -> bool {
        let retry = self.retry.clone();
        tokio::select! {
            more = self.pause(d) => more,
            () = retry.notified() => {
                tracing::info!(address = %self.address, "back (seen again, or the adapter on); connecting now, not after the backoff");
                !self.cancel.is_cancelled()
            }
        }
    }

    /// Wait, ticking the recorder (a session still ends on silence while disconnected).
    /// False on shutdown.
    async fn pause(&mut self, d: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let step = deadline.saturating_duration_since(tokio::time::Instant::now()).min(Duration::from_secs(1));
            if step.is_zero() {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep(step) => self.tick().await,
                () = self.cancel.cancelled() => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::waiting_reason;

    #[test]
    fn a_refused_connection_is_named_for_the_trainer() {
        let refused = anyhow::anyhow!("connecting: le-connection-abort-by-local");
        assert!(waiting_reason(&refused).starts_with("BlueZ refused the connection"));
        let off = anyhow::anyhow!("connecting: org.bluez.Error.NotReady: Resource Not Ready");
        assert!(waiting_reason(&off).contains("powered off"));
        let other = anyhow::anyhow!("connecting: no answer within 20 s");
        assert_eq!(waiting_reason(&other), "connecting: no answer within 20 s");
    }
}
