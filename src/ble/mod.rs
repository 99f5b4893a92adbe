//! Bluetooth fitness sensors. [`gatt`] decodes what heart-rate straps, foot pods, bike
//! sensors, power meters and gym machines send; [`reading`] routes a characteristic's
//! bytes to the right decoder; [`session`] turns a device's readings into session
//! batches; [`collector`] (cargo feature `ble`) finds paired sensors through BlueZ with
//! btleplug and feeds them through both; [`simulated`] is a strap for demos and tests
//! that goes through the same decoder and recorder; [`probe`] (with `ble`) tells
//! `coachd doctor` whether BlueZ is there and usable.

#[cfg(feature = "ble")]
pub mod collector;
pub mod gatt;
#[cfg(feature = "ble")]
pub mod probe;
pub mod reading;
pub mod session;
pub mod simulated;
