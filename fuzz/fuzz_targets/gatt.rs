#![no_main]
//! Every Bluetooth characteristic decoder takes any bytes a sensor sends: the first byte
//! picks the characteristic, the rest is its payload, fed twice so the counter-based
//! ones (crank and wheel revolutions) compute rates from hostile pairs too.
use coachd::ble::reading::{Decoder, MEASUREMENTS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else { return };
    let mut decoder = Decoder::default();
    let characteristic = MEASUREMENTS[usize::from(pick) % MEASUREMENTS.len()];
    let half = payload.len() / 2;
    let _ = decoder.decode(characteristic, &payload[..half]);
    let _ = decoder.decode(characteristic, &payload[half..]);
    let _ = coachd::ble::gatt::body_sensor_location(payload);
});
