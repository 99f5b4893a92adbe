//! Home Assistant over MQTT: a daemon source that publishes each client as a device.
//!
//! A third front end beside `cli` and `web`: it reads the application layer (the same
//! roster numbers the dashboard shows) and publishes, through the configured broker,
//! Home Assistant discovery configs (retained) and retained states:
//!
//! | entity | state topic (`BASE/client/ID/...`) | state |
//! |---|---|---|
//! | sensor "Adherence (7 days)" | `adherence_7d` | percent, `None` when unknown |
//! | sensor "Today: PHRASE", one per homework | `homework/HID` | done, partial, missed, pending, no_data, excused, not_due |
//! | sensor "SOURCE data age", one per source | `source/SOURCE/age_h` | hours since its newest data |
//! | binary_sensor "Needs attention" | `needs_attention` | `ON` / `OFF` |
//!
//! Availability is `BASE/status`: `online` once connected, `offline` published on a clean
//! stop and set as the last will, so the broker says it when coachd dies. States are
//! recomputed every `mqtt.interval_s` and only changes are published. What coachd put on
//! the broker (seen again after a restart through its retained messages) and no longer
//! wants (a removed client, an ended homework) is cleared with an empty retained payload,
//! which makes Home Assistant delete the entity. A broker that is away never stops the
//! daemon: the connection backs off up to `mqtt.reconnect_max_s` and everything is
//! republished when it returns.

use crate::app::App;
use crate::config::MqttConfig;
use crate::engine::judge::Verdict;
use crate::source::{Source, SourceContext, SourceFuture};
use crate::store::Client;
use chrono::{DateTime, NaiveDate, Utc};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How long one publish may wait for the connection before the round is given up.
const PUBLISH_WAIT: Duration = Duration::from_secs(5);

/// Today's state of a homework that has no occurrence today (not one of its days).
pub const NOT_DUE: &str = "not_due";

/// Every state a homework's "today" sensor takes.
pub const HOMEWORK_STATES: [&str; 7] = ["done", "partial", "missed", "pending", "no_data", "excused", NOT_DUE];

/// The source: built by `sources::build` when `[mqtt] enabled`.
pub struct HomeAssistant {
    app: App,
}

impl HomeAssistant {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

impl Source for HomeAssistant {
    fn name(&self) -> &str {
        "mqtt"
    }

    fn run<'a>(&'a self, ctx: &'a SourceContext) -> SourceFuture<'a> {
        Box::pin(self.serve(ctx))
    }
}

/// One client as Home Assistant sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientState {
    pub id: i64,
    pub name: String,
    /// The mean of its homework's 7-day adherence, 0-1 (as the roster shows it).
    pub adherence7: Option<f64>,
    pub needs_attention: bool,
    /// (homework id, phrase, today's state)
    pub homework: Vec<(i64, String, &'static str)>,
    /// (source, hours since its newest data)
    pub sources: Vec<(String, f64)>,
}

/// Where things go on the broker.
#[derive(Clone, Debug)]
pub struct Topics {
    pub prefix: String,
    pub base: String,
}

impl Topics {
    pub fn from_config(c: &MqttConfig) -> Self {
        Self { prefix: c.discovery_prefix.clone(), base: c.base_topic.clone() }
    }

    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// The discovery node of a client: the base topic and its id, so two installs on one
    /// broker with different base topics do not collide.
    fn node(&self, client: i64) -> String {
        format!("{}_{client}", object_id(&self.base))
    }

    fn config(&self, component: &str, client: i64, object: &str) -> String {
        format!("{}/{component}/{}/{object}/config", self.prefix, self.node(client))
    }

    fn state(&self, client: i64, rest: &str) -> String {
        format!("{}/client/{client}/{rest}", self.base)
    }

    /// The subscriptions through which coachd sees what it left on the broker before.
    fn subscriptions(&self) -> [String; 3] {
        [
            format!("{}/sensor/+/+/config", self.prefix),
            format!("{}/binary_sensor/+/+/config", self.prefix),
            format!("{}/client/#", self.base),
        ]
    }

    /// Whether a topic is one coachd publishes (a config of one of its nodes, or a state).
    fn is_ours(&self, topic: &str) -> bool {
        if topic.starts_with(&format!("{}/client/", self.base)) {
            return true;
        }
        let parts: Vec<&str> = topic.split('/').collect();
        let prefix_len = self.prefix.split('/').count();
        let node_prefix = format!("{}_", object_id(&self.base));
        parts.len() == prefix_len + 4
            && topic.starts_with(&format!("{}/", self.prefix))
            && parts[prefix_len + 3] == "config"
            && parts[prefix_len + 1]
                .strip_prefix(&node_prefix)
                .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
    }
}

/// A name as a topic segment and object id: lowercase ASCII letters, digits and `_`.
pub fn object_id(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if s.is_empty() {
        "_".into()
    } else {
        s
    }
}

/// Every retained message coachd wants on the broker for these clients: topic → payload,
/// discovery configs and states alike.
pub fn messages(clients: &[ClientState], t: &Topics) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in clients {
        let device = json!({
            "identifiers": [t.node(c.id)],
            "name": c.name,
            "manufacturer": "coachd",
            "model": "coachd client",
            "sw_version": env!("CARGO_PKG_VERSION"),
        });
        let mut entity = |component: &str, object: &str, state_rest: &str, extra: serde_json::Value, state: String| {
            let state_topic = t.state(c.id, state_rest);
            let mut config = json!({
                "unique_id": format!("{}_{object}", t.node(c.id)),
                "state_topic": state_topic,
                "availability_topic": t.status(),
                "payload_available": "online",
                "payload_not_available": "offline",
                "device": device,
            });
            if let (Some(map), serde_json::Value::Object(more)) = (config.as_object_mut(), extra) {
                map.extend(more);
            }
            out.insert(t.config(component, c.id, object), config.to_string());
            out.insert(state_topic, state);
        };
        entity(
            "sensor",
            "adherence_7d",
            "adherence_7d",
            json!({"name": "Adherence (7 days)", "unit_of_measurement": "%", "state_class": "measurement",
                   "icon": "mdi:calendar-check"}),
            c.adherence7.map_or_else(|| "None".to_string(), |a| format!("{:.0}", a * 100.0)),
        );
        entity(
            "binary_sensor",
            "needs_attention",
            "needs_attention",
            json!({"name": "Needs attention", "device_class": "problem", "payload_on": "ON", "payload_off": "OFF"}),
            if c.needs_attention { "ON" } else { "OFF" }.to_string(),
        );
        for (id, text, state) in &c.homework {
            entity(
                "sensor",
                &format!("homework_{id}"),
                &format!("homework/{id}"),
                json!({"name": format!("Today: {text}"), "device_class": "enum", "options": HOMEWORK_STATES,
                       "icon": "mdi:clipboard-check-outline"}),
                (*state).to_string(),
            );
        }
        for (source, hours) in &c.sources {
            let s = object_id(source);
            entity(
                "sensor",
                &format!("source_{s}_age"),
                &format!("source/{s}/age_h"),
                json!({"name": format!("{source} data age"), "unit_of_measurement": "h",
                       "device_class": "duration", "state_class": "measurement", "icon": "mdi:history"}),
                format!("{hours:.1}"),
            );
        }
    }
    out
}

/// Today's state of each homework of each client, their 7-day adherence and whether they
/// need attention (the roster's numbers), and how old each source's data is.
pub async fn client_states(app: &App, now: DateTime<Utc>) -> crate::app::AppResult<Vec<ClientState>> {
    let clients = app.clients().await?;
    let today = |c: &Client| now.with_timezone(&c.tz).date_naive();
    let (Some(from), Some(to)) = (clients.iter().map(today).min(), clients.iter().map(today).max()) else {
        return Ok(Vec::new());
    };
    let report = app.status(&clients, from, to, now).await?;
    let rows = crate::charts::data::roster_rows(&report, &clients);
    let homework = app.homework_list(None).await?;
    let mut out = Vec::with_capacity(clients.len());
    for c in &clients {
        let day: NaiveDate = today(c);
        let row = rows.iter().find(|r| r.client == c.name);
        let mine = homework
            .iter()
            .filter(|h| h.client_id == c.id && h.homework.active_on(day))
            .map(|h| {
                let verdict = report
                    .occurrences
                    .iter()
                    .find(|o| {
                        *o.client == *c.name && o.homework_id == h.homework.id && o.date <= day && day <= o.last_day()
                    })
                    .map_or(NOT_DUE, |o| Verdict::as_str(o.verdict));
                (h.homework.id, h.homework.text.to_string(), verdict)
            })
            .collect();
        let sources = app.data_freshness(c).await?.into_iter().map(|f| (f.source.clone(), f.age_hours(now))).collect();
        out.push(ClientState {
            id: c.id,
            name: c.name.clone(),
            adherence7: row.and_then(|r| r.days7),
            needs_attention: row.is_some_and(|r| r.needs_attention),
            homework: mine,
            sources,
        });
    }
    Ok(out)
}

/// What the connection task reports.
enum Link {
    Up,
    Down(String),
    /// A retained or live message on a subscribed topic; empty means cleared.
    Seen {
        topic: String,
        empty: bool,
    },
}

/// What is on the broker as far as this connection knows.
#[derive(Default)]
struct Published {
    /// Sent on the current connection: topic → payload.
    sent: BTreeMap<String, String>,
    /// Topics coachd has put a non-empty retained message on (this run, or found
    /// retained from an earlier one): cleared when no longer wanted.
    owned: BTreeSet<String>,
}

/// Stops the connection task when the source stops, however it stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl HomeAssistant {
    async fn serve(&self, ctx: &SourceContext) -> anyhow::Result<()> {
        let cfg = &self.app.config.mqtt;
        let topics = Topics::from_config(cfg);
        let mut options = MqttOptions::new(format!("{}_daemon", object_id(&cfg.base_topic)), &cfg.host, cfg.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            // Other integrations' discovery configs arrive through the subscriptions.
            .set_max_packet_size(256 * 1024, 256 * 1024)
            .set_last_will(LastWill::new(topics.status(), "offline", QoS::AtLeastOnce, true));
        if !cfg.username.is_empty() {
            options.set_credentials(cfg.username.clone(), password(cfg));
        }
        let (client, events) = AsyncClient::new(options, 64);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let max = Duration::from_secs(cfg.reconnect_max_s);
        let driver = AbortOnDrop(tokio::spawn(drive(events, tx, max)));
        let mut tick = tokio::time::interval(Duration::from_secs(cfg.interval_s));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = Published::default();
        let mut connected = false;
        let mut failing = false;
        let broker = format!("{}:{}", cfg.host, cfg.port);
        ctx.set_detail(format!("connecting to {broker}"));
        loop {
            tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                link = rx.recv() => match link {
                    None => anyhow::bail!("the MQTT connection task ended"),
                    Some(Link::Up) => {
                        info!(broker = %broker, "connected to the MQTT broker");
                        ctx.set_detail(format!("connected to {broker}"));
                        connected = true;
                        failing = false;
                        // A new connection: the broker may have lost everything; send it all again.
                        state.sent.clear();
                        if let Err(e) = announce(&client, &topics).await {
                            warn!(error = %e, "announcing coachd on the MQTT broker failed");
                            continue;
                        }
                        tokio::select! {
                            () = self.sync(&client, &topics, &mut state) => {}
                            () = ctx.shutdown.cancelled() => break,
                        }
                    }
                    Some(Link::Down(e)) => {
                        if !failing {
                            warn!(error = %e, broker = %broker, "the MQTT broker is unreachable; retrying with backoff");
                        }
                        ctx.set_detail(format!("broker {broker} unreachable: {e}"));
                        connected = false;
                        failing = true;
                    }
                    Some(Link::Seen { topic, empty }) => {
                        if topics.is_ours(&topic) {
                            if empty {
                                state.owned.remove(&topic);
                            } else {
                                state.owned.insert(topic);
                            }
                        }
                    }
                },
                _ = tick.tick() => if connected {
                    tokio::select! {
                        () = self.sync(&client, &topics, &mut state) => {}
                        () = ctx.shutdown.cancelled() => break,
                    }
                },
            }
        }
        if connected {
            // A clean disconnect does not fire the last will: say it ourselves.
            let bye = async {
                publish(&client, &topics.status(), "offline").await?;
                client.disconnect().await?;
                anyhow::Ok(())
            };
            match tokio::time::timeout(Duration::from_secs(1), bye).await {
                Ok(Ok(())) => {
                    // The connection task ends once the disconnect is on the wire.
                    let mut handle = driver;
                    let _ = tokio::time::timeout(Duration::from_millis(1500), &mut handle.0).await;
                    info!("told the MQTT broker coachd is offline");
                }
                Ok(Err(e)) => warn!(error = %e, "publishing offline failed; the broker's last will says it"),
                Err(_) => warn!("publishing offline timed out; the broker's last will says it"),
            }
        }
        Ok(())
    }

    /// Publish what changed, and clear what is no longer wanted. A failure to compute is
    /// logged and tried again next round; a publish that cannot go out ends the round.
    async fn sync(&self, client: &AsyncClient, topics: &Topics, state: &mut Published) {
        let wanted = match client_states(&self.app, Utc::now()).await {
            Ok(clients) => messages(&clients, topics),
            Err(e) => {
                warn!(error = %e, "computing the Home Assistant states failed; trying again next round");
                return;
            }
        };
        // Configs before states, so Home Assistant knows an entity before its first value.
        let (configs, states): (Vec<_>, Vec<_>) = wanted.iter().partition(|(t, _)| t.ends_with("/config"));
        for (topic, payload) in configs.into_iter().chain(states) {
            if state.sent.get(topic) == Some(payload) {
                continue;
            }
            if let Err(e) = publish(client, topic, payload).await {
                warn!(error = %e, topic = %topic, "publishing to the MQTT broker failed; trying again next round");
                return;
            }
            state.sent.insert(topic.clone(), payload.clone());
            state.owned.insert(topic.clone());
        }
        // Configs first: Home Assistant deletes the entity, then its retained state goes.
        let (mut gone, states): (Vec<String>, Vec<String>) =
            state.owned.iter().filter(|t| !wanted.contains_key(*t)).cloned().partition(|t| t.ends_with("/config"));
        gone.extend(states);
        for topic in gone {
            if let Err(e) = publish(client, &topic, "").await {
                warn!(error = %e, topic = %topic, "clearing a topic on the MQTT broker failed; trying again next round");
                return;
            }
            info!(topic = %topic, "cleared a Home Assistant topic no longer wanted");
            state.sent.remove(&topic);
            state.owned.remove(&topic);
        }
    }
}

/// `online` on the status topic, and the subscriptions that show what coachd left before.
async fn announce(client: &AsyncClient, topics: &Topics) -> anyhow::Result<()> {
    let hello = async {
        publish(client, &topics.status(), "online").await?;
        for topic in topics.subscriptions() {
            client.subscribe(topic, QoS::AtLeastOnce).await?;
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(PUBLISH_WAIT, hello).await {
        Ok(r) => r,
        Err(_) => anyhow::bail!("the connection did not take the messages within {} s", PUBLISH_WAIT.as_secs()),
    }
}

/// One retained QoS 1 message, waiting at most [`PUBLISH_WAIT`] for room in the queue.
async fn publish(client: &AsyncClient, topic: &str, payload: &str) -> anyhow::Result<()> {
    let send = client.publish(topic, QoS::AtLeastOnce, true, payload.as_bytes().to_vec());
    match tokio::time::timeout(PUBLISH_WAIT, send).await {
        Ok(r) => Ok(r?),
        Err(_) => anyhow::bail!("the connection did not take the message within {} s", PUBLISH_WAIT.as_secs()),
    }
}

/// `mqtt.password`, else the systemd credential `mqtt_password`, else none.
fn password(cfg: &MqttConfig) -> String {
    let configured = cfg.password.expose().trim();
    if !configured.is_empty() {
        return configured.to_string();
    }
    std::env::var_os("CREDENTIALS_DIRECTORY")
        .and_then(|dir| std::fs::read_to_string(std::path::Path::new(&dir).join("mqtt_password")).ok())
        .map(|t| t.trim().to_string())
        .unwrap_or_default()
}

/// Drive the connection: rumqttc reconnects on the next poll after an error, so wait a
/// doubling delay (up to `max`) between attempts. Ends once a disconnect is sent.
async fn drive(mut events: EventLoop, tx: mpsc::UnboundedSender<Link>, max: Duration) {
    let first = Duration::from_secs(1).min(max);
    let mut backoff = first;
    loop {
        let link = match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = first;
                Some(Link::Up)
            }
            Ok(Event::Incoming(Packet::Publish(p))) => Some(Link::Seen { topic: p.topic, empty: p.payload.is_empty() }),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => None,
            Err(e) => {
                if tx.send(Link::Down(e.to_string())).is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max);
                None
            }
        };
        if let Some(link) = link {
            if tx.send(link).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        Topics { prefix: "homeassistant".into(), base: "coachd".into() }
    }

    fn alex() -> ClientState {
        ClientState {
            id: 7,
            name: "Alex".into(),
            adherence7: Some(0.857),
            needs_attention: true,
            homework: vec![(3, "15 minutes of cardio".into(), "done")],
            sources: vec![("strava".into(), 26.04)],
        }
    }

    #[test]
    fn each_client_is_a_device_with_its_sensors() {
        let m = messages(&[alex()], &topics());
        assert_eq!(m["coachd/client/7/adherence_7d"], "86");
        assert_eq!(m["coachd/client/7/needs_attention"], "ON");
        assert_eq!(m["coachd/client/7/homework/3"], "done");
        assert_eq!(m["coachd/client/7/source/strava/age_h"], "26.0");
        let config: serde_json::Value =
            serde_json::from_str(&m["homeassistant/sensor/coachd_7/homework_3/config"]).expect("json");
        assert_eq!(config["unique_id"], "coachd_7_homework_3");
        assert_eq!(config["state_topic"], "coachd/client/7/homework/3");
        assert_eq!(config["availability_topic"], "coachd/status");
        assert_eq!(config["device"]["identifiers"][0], "coachd_7");
        assert_eq!(config["device"]["name"], "Alex");
        assert_eq!(config["device"]["manufacturer"], "coachd");
        assert!(config["options"].as_array().expect("options").iter().any(|o| o == "no_data"));
        assert!(m.contains_key("homeassistant/binary_sensor/coachd_7/needs_attention/config"));
        assert!(m.contains_key("homeassistant/sensor/coachd_7/source_strava_age/config"));
        assert_eq!(m.len(), 8, "{m:#?}");
    }

    #[test]
    fn unknown_adherence_is_none() {
        let m = messages(&[ClientState { adherence7: None, ..alex() }], &topics());
        assert_eq!(m["coachd/client/7/adherence_7d"], "None");
    }

    #[test]
    fn only_its_own_topics_are_claimed() {
        let t = topics();
        assert!(t.is_ours("homeassistant/sensor/coachd_7/adherence_7d/config"));
        assert!(t.is_ours("homeassistant/binary_sensor/coachd_12/needs_attention/config"));
        assert!(t.is_ours("coachd/client/7/homework/3"));
        assert!(!t.is_ours("homeassistant/sensor/coachd_x/adherence_7d/config"));
        assert!(!t.is_ours("homeassistant/sensor/kitchen/temperature/config"));
        assert!(!t.is_ours("homeassistant/sensor/coachd_7/deep/er/config"));
        assert!(!t.is_ours("coachd/status"));
    }

    #[test]
    fn names_become_object_ids() {
        assert_eq!(object_id("Apple Health"), "apple_health");
        assert_eq!(object_id("intervals.icu"), "intervals_icu");
    }
}
