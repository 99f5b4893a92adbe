//! Bluetooth fitness sensors. [`gatt`] decodes what heart-rate straps, foot pods, bike
//! sensors, power meters and gym machines send; [`session`] turns a device's
//! notifications into session batches; [`simulated`] is a strap for demos and tests that
//! goes through both. The btleplug collector (cargo feature `ble`) is still to come.

pub mod gatt;
pub mod session;
pub mod simulated;
