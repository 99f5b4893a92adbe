//! From a characteristic's notification to what a session records: heart rate, or what a
//! machine or speed/cadence/power sensor measured. Keeps the little state some
//! characteristics need (cumulative crank and wheel counters), so the collector only
//! routes bytes. Pure and total, like the decoders under it.

use super::gatt::{self, GattError, HeartRate, MachineData, Revolutions};

/// The GATT services the collector scans for, with their display names.
pub const SERVICES: [(u16, &str); 5] = [
    (0x180D, "heart_rate"),
    (0x1814, "running_speed"),
    (0x1816, "cycling_speed"),
    (0x1818, "cycling_power"),
    (0x1826, "fitness_machine"),
];

pub const HEART_RATE_MEASUREMENT: u16 = 0x2A37;
pub const BODY_SENSOR_LOCATION: u16 = 0x2A38;
/// Battery Service's level, 0-100 %.
pub const BATTERY_LEVEL: u16 = 0x2A19;
pub const RSC_MEASUREMENT: u16 = 0x2A53;
pub const CSC_MEASUREMENT: u16 = 0x2A5B;
pub const CYCLING_POWER_MEASUREMENT: u16 = 0x2A63;
pub const TREADMILL_DATA: u16 = 0x2ACD;
pub const ROWER_DATA: u16 = 0x2AD1;
pub const INDOOR_BIKE_DATA: u16 = 0x2AD2;

/// Characteristics the collector subscribes to.
pub const MEASUREMENTS: [u16; 7] = [
    HEART_RATE_MEASUREMENT,
    RSC_MEASUREMENT,
    CSC_MEASUREMENT,
    CYCLING_POWER_MEASUREMENT,
    TREADMILL_DATA,
    ROWER_DATA,
    INDOOR_BIKE_DATA,
];

/// The display name of a 16-bit service number, if it is one the collector reads.
pub fn service_name(short: u16) -> Option<&'static str> {
    SERVICES.iter().find(|(n, _)| *n == short).map(|(_, name)| *name)
}

/// The activity type a device's sessions get, from the measurements it offers.
pub fn activity_type(measurements: &[u16]) -> &'static str {
    let has = |c| measurements.contains(&c);
    if has(TREADMILL_DATA) || has(RSC_MEASUREMENT) {
        "treadmill_run"
    } else if has(INDOOR_BIKE_DATA) || has(CSC_MEASUREMENT) || has(CYCLING_POWER_MEASUREMENT) {
        "indoor_ride"
    } else if has(ROWER_DATA) {
        "row"
    } else {
        crate::activity_types::GENERIC
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    HeartRate(HeartRate),
    Machine(MachineData),
}

/// Decodes one device's notifications.
#[derive(Debug, Default)]
pub struct Decoder {
    csc_crank: Option<Revolutions>,
    csc_wheel: Option<Revolutions>,
    power_crank: Option<Revolutions>,
}

/// Wheel circumference for speed from wheel revolutions (a 700x25c road tyre), in metres.
const WHEEL_M: f64 = 2.105;

impl Decoder {
    /// `Ok(None)` for a characteristic the collector does not record, or a counter-based
    /// reading that needs a second notification before it means anything.
    pub fn decode(&mut self, characteristic: u16, payload: &[u8]) -> Result<Option<Reading>, GattError> {
        Ok(Some(match characteristic {
            HEART_RATE_MEASUREMENT => Reading::HeartRate(gatt::heart_rate(payload)?),
            TREADMILL_DATA => Reading::Machine(gatt::treadmill(payload)?),
            INDOOR_BIKE_DATA => Reading::Machine(gatt::indoor_bike(payload)?),
            ROWER_DATA => Reading::Machine(gatt::rower(payload)?),
            RSC_MEASUREMENT => {
                let r = gatt::rsc(payload)?;
                Reading::Machine(MachineData {
                    speed_kmh: Some(r.speed_mps * 3.6),
                    cadence_rpm: Some(f64::from(r.cadence_spm)),
                    distance_m: r.distance_m,
                    ..Default::default()
                })
            }
            CSC_MEASUREMENT => {
                let m = gatt::csc(payload)?;
                let cadence = delta(&mut self.csc_crank, m.crank, 16, 1024.0);
                let wheel_rpm = delta(&mut self.csc_wheel, m.wheel, 32, 1024.0);
                if cadence.is_none() && wheel_rpm.is_none() {
                    return Ok(None);
                }
                Reading::Machine(MachineData {
                    cadence_rpm: cadence,
                    speed_kmh: wheel_rpm.map(|rpm| rpm * WHEEL_M * 60.0 / 1000.0),
                    ..Default::default()
                })
            }
            CYCLING_POWER_MEASUREMENT => {
                let p = gatt::cycling_power(payload)?;
                Reading::Machine(MachineData {
                    power_w: Some(p.watts),
                    cadence_rpm: delta(&mut self.power_crank, p.crank, 16, 1024.0),
                    ..Default::default()
                })
            }
            _ => return Ok(None),
        }))
    }
}

/// The rate since the previous reading of a cumulative counter, remembering this one.
/// A repeated event time (no new revolution) keeps the previous reading as the base.
fn delta(prev: &mut Option<Revolutions>, next: Option<Revolutions>, bits: u32, ticks: f64) -> Option<f64> {
    let next = next?;
    let rate = prev.and_then(|p| gatt::rpm(p, next, bits, ticks));
    if prev.is_none_or(|p| p.event_time != next.event_time) {
        *prev = Some(next);
    }
    rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crank_cadence_needs_two_readings_and_survives_wraparound() {
        let mut d = Decoder::default();
        // Flags 0x02: crank revolutions u16, event time u16 (1/1024 s).
        assert_eq!(d.decode(CSC_MEASUREMENT, &[0x02, 0xFF, 0xFF, 0x00, 0xFC]), Ok(None));
        // Two revolutions over one second, across both counters' wraparound: 120 rpm.
        let Some(Reading::Machine(m)) = d.decode(CSC_MEASUREMENT, &[0x02, 0x01, 0x00, 0x00, 0x00]).expect("valid")
        else {
            panic!("a cadence")
        };
        assert_eq!(m.cadence_rpm, Some(120.0));
    }

    #[test]
    fn routing_and_types() {
        let mut d = Decoder::default();
        assert!(matches!(d.decode(HEART_RATE_MEASUREMENT, &[0x00, 72]), Ok(Some(Reading::HeartRate(_)))));
        assert!(d.decode(HEART_RATE_MEASUREMENT, &[]).is_err());
        assert_eq!(d.decode(0x2A19, &[100]), Ok(None), "battery level is not recorded");
        assert_eq!(activity_type(&[HEART_RATE_MEASUREMENT]), "workout");
        assert_eq!(activity_type(&[HEART_RATE_MEASUREMENT, TREADMILL_DATA]), "treadmill_run");
        assert_eq!(activity_type(&[ROWER_DATA]), "row");
        assert_eq!(service_name(0x180D), Some("heart_rate"));
    }
}
