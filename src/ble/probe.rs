//! Whether BlueZ can be used from here, for `coachd doctor`: the D-Bus system bus, the
//! `org.bluez` name, BlueZ's objects (which the D-Bus policy may refuse this user), and
//! each adapter's power. Through the same `dbus` connection the collector uses to watch
//! BlueZ's owner, on a thread of its own: [`probe`] returns within its limit even when the
//! bus accepts a connection and never answers.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

/// How far the probe got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bluez {
    /// No system bus (or no answer from it within the limit).
    NoBus(String),
    /// The bus answers but nothing owns `org.bluez`: bluetoothd is not running.
    NotRunning(String),
    /// bluetoothd runs, but the D-Bus policy refuses this user.
    Denied(String),
    /// Another error from BlueZ.
    Failed(String),
    /// Its adapters.
    Adapters(Vec<Adapter>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adapter {
    /// `hci0`.
    pub name: String,
    pub address: String,
    pub powered: bool,
}

/// Ask BlueZ, giving up after `limit` (each D-Bus call gets the same limit too).
pub fn probe(limit: Duration) -> Bluez {
    let (tx, rx) = mpsc::channel();
    // A thread of its own, not the runtime's blocking pool: one that never returns is
    // left behind and dies with the process instead of holding the runtime's shutdown.
    let spawned = std::thread::Builder::new().name("bluez-probe".into()).spawn(move || {
        let _ = tx.send(ask(limit));
    });
    if let Err(e) = spawned {
        return Bluez::Failed(format!("could not start the probe: {e}"));
    }
    rx.recv_timeout(limit + Duration::from_millis(500)).unwrap_or_else(|_| {
        Bluez::NoBus(format!("the D-Bus system bus did not answer within {} s", limit.as_secs().max(1)))
    })
}

fn ask(limit: Duration) -> Bluez {
    use dbus::arg::{PropMap, RefArg};
    let conn = match dbus::blocking::Connection::new_system() {
        Ok(c) => c,
        Err(e) => return Bluez::NoBus(text(&e)),
    };
    let bus = conn.with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", limit);
    let owner: Result<(String,), _> = bus.method_call("org.freedesktop.DBus", "GetNameOwner", ("org.bluez",));
    if let Err(e) = owner {
        return Bluez::NotRunning(text(&e));
    }
    let bluez = conn.with_proxy("org.bluez", "/", limit);
    type Objects = HashMap<dbus::Path<'static>, HashMap<String, PropMap>>;
    let objects: Result<(Objects,), _> =
        bluez.method_call("org.freedesktop.DBus.ObjectManager", "GetManagedObjects", ());
    let objects = match objects {
        Ok((o,)) => o,
        Err(e) if e.name() == Some("org.freedesktop.DBus.Error.AccessDenied") => return Bluez::Denied(text(&e)),
        Err(e) => return Bluez::Failed(text(&e)),
    };
    let mut adapters: Vec<Adapter> = objects
        .iter()
        .filter_map(|(path, interfaces)| {
            let props = interfaces.get("org.bluez.Adapter1")?;
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            let address = props.get("Address").and_then(|v| v.0.as_str()).unwrap_or_default().to_string();
            let powered = props.get("Powered").and_then(|v| v.0.as_u64()).is_some_and(|p| p != 0);
            Some(Adapter { name, address, powered })
        })
        .collect();
    adapters.sort_by(|a, b| a.name.cmp(&b.name));
    Bluez::Adapters(adapters)
}

fn text(e: &dbus::Error) -> String {
    e.message().map_or_else(|| e.to_string(), str::to_string)
}
