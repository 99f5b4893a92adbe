//! Bluetooth fitness sensors. [`gatt`] decodes what heart-rate straps, foot pods, bike
//! sensors, power meters and gym machines send. The btleplug collector, sessions and the
//! simulated strap arrive with the Bluetooth work (cargo feature `ble`).

pub mod gatt;
