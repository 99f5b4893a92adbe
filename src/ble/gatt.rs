//! Bluetooth fitness-sensor characteristics, decoded. Every function is total: any byte
//! string gives a typed value or a [`GattError`], never a panic. Byte layouts and test
//! vectors: ../shared/reference/ble-gatt.md (Bluetooth SIG GATT specifications).

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GattError {
    #[error("{what}: {len} bytes, but its flags need at least {need}")]
    Short { what: &'static str, len: usize, need: usize },
    #[error("{what}: empty payload")]
    Empty { what: &'static str },
}

/// A little-endian cursor that reports how much was missing.
struct Bytes<'a> {
    what: &'static str,
    all: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn new(what: &'static str, all: &'a [u8]) -> Self {
        Self { what, all, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], GattError> {
        let end = self.at + n;
        let slice =
            self.all.get(self.at..end).ok_or(GattError::Short { what: self.what, len: self.all.len(), need: end })?;
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, GattError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, GattError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn i16(&mut self) -> Result<i16, GattError> {
        let b = self.take(2)?;
        Ok(i16::from_le_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Result<u32, GattError> {
        let b = self.take(3)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    fn u32(&mut self) -> Result<u32, GattError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, n: usize) -> Result<(), GattError> {
        self.take(n).map(|_| ())
    }

    fn rest(&self) -> &'a [u8] {
        self.all.get(self.at..).unwrap_or_default()
    }
}

fn flags16(b: &mut Bytes<'_>) -> Result<u16, GattError> {
    if b.all.is_empty() {
        return Err(GattError::Empty { what: b.what });
    }
    b.u16()
}

/// Sensor contact as the strap reports it (flags bits 1-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    NotSupported,
    /// Supported, and the strap is not on skin (lying on a table).
    NoContact,
    InContact,
}

/// Heart Rate Measurement, 0x2A37.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartRate {
    pub bpm: u16,
    pub contact: Contact,
    /// Cumulative energy expended, kJ.
    pub energy_kj: Option<u16>,
    /// RR intervals in 1/1024 s.
    pub rr_1024: Vec<u16>,
}

impl HeartRate {
    /// A sample that counts as workout data: a real heart rate from a strap on skin.
    pub fn is_valid_sample(&self) -> bool {
        self.bpm > 0 && self.contact != Contact::NoContact
    }

    /// RR intervals in milliseconds.
    pub fn rr_ms(&self) -> impl Iterator<Item = f64> + '_ {
        self.rr_1024.iter().map(|&rr| f64::from(rr) * 1000.0 / 1024.0)
    }
}

pub fn heart_rate(payload: &[u8]) -> Result<HeartRate, GattError> {
    let mut b = Bytes::new("heart rate measurement", payload);
    if payload.is_empty() {
        return Err(GattError::Empty { what: b.what });
    }
    let flags = b.u8()?;
    let bpm = if flags & 0x01 != 0 { b.u16()? } else { u16::from(b.u8()?) };
    let contact = match (flags >> 1) & 0x03 {
        2 => Contact::NoContact,
        3 => Contact::InContact,
        _ => Contact::NotSupported,
    };
    let energy_kj = if flags & 0x08 != 0 { Some(b.u16()?) } else { None };
    let mut rr_1024 = Vec::new();
    if flags & 0x10 != 0 {
        let rest = b.rest();
        if !rest.len().is_multiple_of(2) {
            return Err(GattError::Short { what: b.what, len: payload.len(), need: payload.len() + 1 });
        }
        rr_1024 = rest.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    }
    Ok(HeartRate { bpm, contact, energy_kj, rr_1024 })
}

/// Body Sensor Location, 0x2A38.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLocation {
    Other,
    Chest,
    Wrist,
    Finger,
    Hand,
    EarLobe,
    Foot,
    Unknown(u8),
}

pub fn body_sensor_location(payload: &[u8]) -> Result<BodyLocation, GattError> {
    let v = *payload.first().ok_or(GattError::Empty { what: "body sensor location" })?;
    Ok(match v {
        0 => BodyLocation::Other,
        1 => BodyLocation::Chest,
        2 => BodyLocation::Wrist,
        3 => BodyLocation::Finger,
        4 => BodyLocation::Hand,
        5 => BodyLocation::EarLobe,
        6 => BodyLocation::Foot,
        n => BodyLocation::Unknown(n),
    })
}

/// RSC Measurement, 0x2A53.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningSpeed {
    pub speed_mps: f64,
    pub cadence_spm: u8,
    pub stride_m: Option<f64>,
    pub distance_m: Option<f64>,
    pub running: bool,
}

pub fn rsc(payload: &[u8]) -> Result<RunningSpeed, GattError> {
    let mut b = Bytes::new("running speed and cadence", payload);
    if payload.is_empty() {
        return Err(GattError::Empty { what: b.what });
    }
    let flags = b.u8()?;
    let speed_mps = f64::from(b.u16()?) / 256.0;
    let cadence_spm = b.u8()?;
    let stride_m = if flags & 0x01 != 0 { Some(f64::from(b.u16()?) / 100.0) } else { None };
    let distance_m = if flags & 0x02 != 0 { Some(f64::from(b.u32()?) / 10.0) } else { None };
    Ok(RunningSpeed { speed_mps, cadence_spm, stride_m, distance_m, running: flags & 0x04 != 0 })
}

/// Cumulative revolutions and the time of the last event (in `1/ticks_per_s` seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revolutions {
    pub revs: u32,
    pub event_time: u16,
}

/// CSC Measurement, 0x2A5B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CyclingSpeedCadence {
    /// Wheel revolutions (u32) and event time in 1/1024 s.
    pub wheel: Option<Revolutions>,
    /// Crank revolutions (u16 on the wire) and event time in 1/1024 s.
    pub crank: Option<Revolutions>,
}

pub fn csc(payload: &[u8]) -> Result<CyclingSpeedCadence, GattError> {
    let mut b = Bytes::new("cycling speed and cadence", payload);
    if payload.is_empty() {
        return Err(GattError::Empty { what: b.what });
    }
    let flags = b.u8()?;
    let wheel = if flags & 0x01 != 0 { Some(Revolutions { revs: b.u32()?, event_time: b.u16()? }) } else { None };
    let crank =
        if flags & 0x02 != 0 { Some(Revolutions { revs: u32::from(b.u16()?), event_time: b.u16()? }) } else { None };
    Ok(CyclingSpeedCadence { wheel, crank })
}

/// Revolutions per minute between two readings. Counters wrap at their field width
/// (`revs_bits`: 16 for crank, 32 for wheel) and event times at 16 bits; Δt = 0 means
/// "no new event", which is `None`, not an infinite rate.
pub fn rpm(prev: Revolutions, next: Revolutions, revs_bits: u32, ticks_per_s: f64) -> Option<f64> {
    let mask = if revs_bits >= 32 { u32::MAX } else { (1u32 << revs_bits) - 1 };
    let revs = next.revs.wrapping_sub(prev.revs) & mask;
    let dt = next.event_time.wrapping_sub(prev.event_time);
    (dt != 0).then(|| f64::from(revs) * 60.0 * ticks_per_s / f64::from(dt))
}

/// Cycling Power Measurement, 0x2A63.
#[derive(Debug, Clone, PartialEq)]
pub struct CyclingPower {
    pub watts: i16,
    pub pedal_balance_pct: Option<f64>,
    /// Wheel revolutions, event time in 1/2048 s.
    pub wheel: Option<Revolutions>,
    /// Crank revolutions, event time in 1/1024 s.
    pub crank: Option<Revolutions>,
    pub energy_kj: Option<u16>,
}

pub fn cycling_power(payload: &[u8]) -> Result<CyclingPower, GattError> {
    let mut b = Bytes::new("cycling power measurement", payload);
    let flags = flags16(&mut b)?;
    let watts = b.i16()?;
    let pedal_balance_pct = if flags & (1 << 0) != 0 { Some(f64::from(b.u8()?) / 2.0) } else { None };
    if flags & (1 << 2) != 0 {
        b.skip(2)?; // accumulated torque
    }
    let wheel = if flags & (1 << 4) != 0 { Some(Revolutions { revs: b.u32()?, event_time: b.u16()? }) } else { None };
    let crank = if flags & (1 << 5) != 0 {
        Some(Revolutions { revs: u32::from(b.u16()?), event_time: b.u16()? })
    } else {
        None
    };
    for (bit, size) in [(6, 4), (7, 4), (8, 3), (9, 2), (10, 2)] {
        if flags & (1 << bit) != 0 {
            b.skip(size)?;
        }
    }
    let energy_kj = if flags & (1 << 11) != 0 { Some(b.u16()?) } else { None };
    Ok(CyclingPower { watts, pedal_balance_pct, wheel, crank, energy_kj })
}

/// What gym machines report through the Fitness Machine service (0x1826). All-ones
/// values mean "not available" and become `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineData {
    pub speed_kmh: Option<f64>,
    /// Metres, cumulative since the machine started counting.
    pub distance_m: Option<f64>,
    pub cadence_rpm: Option<f64>,
    pub stroke_rate_spm: Option<f64>,
    pub stroke_count: Option<u16>,
    pub power_w: Option<i16>,
    pub heart_rate: Option<u8>,
    pub elapsed_s: Option<u16>,
    pub energy_kcal: Option<u16>,
}

fn avail16(v: u16) -> Option<u16> {
    (v != u16::MAX).then_some(v)
}

fn avail_i16(v: i16) -> Option<i16> {
    (v != i16::MAX).then_some(v)
}

fn avail24(v: u32) -> Option<u32> {
    (v != 0x00FF_FFFF).then_some(v)
}

fn avail8(v: u8) -> Option<u8> {
    (v != u8::MAX).then_some(v)
}

/// The fields every Fitness Machine characteristic ends with, from flag bit `first` on:
/// energy (total u16 kcal, per hour u16, per minute u8), heart rate u8, MET u8, elapsed
/// time u16 s, remaining time u16 s.
fn machine_tail(b: &mut Bytes<'_>, f: u16, first: u16, m: &mut MachineData) -> Result<(), GattError> {
    let has = |bit: u16| f & (1 << (first + bit)) != 0;
    if has(0) {
        m.energy_kcal = avail16(b.u16()?);
        b.skip(3)?;
    }
    if has(1) {
        m.heart_rate = avail8(b.u8()?);
    }
    if has(2) {
        b.skip(1)?;
    }
    if has(3) {
        m.elapsed_s = avail16(b.u16()?);
    }
    if has(4) {
        b.skip(2)?;
    }
    Ok(())
}

/// Treadmill Data, 0x2ACD. Bit 0 ("More Data") is inverted: speed is present when it is 0.
pub fn treadmill(payload: &[u8]) -> Result<MachineData, GattError> {
    let mut b = Bytes::new("treadmill data", payload);
    let f = flags16(&mut b)?;
    let mut m = MachineData::default();
    if f & 1 == 0 {
        m.speed_kmh = avail16(b.u16()?).map(|v| f64::from(v) / 100.0);
    }
    if f & (1 << 1) != 0 {
        b.skip(2)?; // average speed
    }
    if f & (1 << 2) != 0 {
        m.distance_m = avail24(b.u24()?).map(f64::from);
    }
    for (bit, size) in [(3, 4), (4, 4), (5, 1), (6, 1)] {
        if f & (1 << bit) != 0 {
            b.skip(size)?; // inclination + ramp, elevation gain, pace, average pace
        }
    }
    machine_tail(&mut b, f, 7, &mut m)?;
    if f & (1 << 12) != 0 {
        b.skip(2)?; // force on belt
        m.power_w = avail_i16(b.i16()?);
    }
    Ok(m)
}

/// Indoor Bike Data, 0x2AD2.
pub fn indoor_bike(payload: &[u8]) -> Result<MachineData, GattError> {
    let mut b = Bytes::new("indoor bike data", payload);
    let f = flags16(&mut b)?;
    let mut m = MachineData::default();
    if f & 1 == 0 {
        m.speed_kmh = avail16(b.u16()?).map(|v| f64::from(v) / 100.0);
    }
    if f & (1 << 1) != 0 {
        b.skip(2)?; // average speed
    }
    if f & (1 << 2) != 0 {
        m.cadence_rpm = avail16(b.u16()?).map(|v| f64::from(v) / 2.0);
    }
    if f & (1 << 3) != 0 {
        b.skip(2)?; // average cadence
    }
    if f & (1 << 4) != 0 {
        m.distance_m = avail24(b.u24()?).map(f64::from);
    }
    if f & (1 << 5) != 0 {
        b.skip(2)?; // resistance
    }
    if f & (1 << 6) != 0 {
        m.power_w = avail_i16(b.i16()?);
    }
    if f & (1 << 7) != 0 {
        b.skip(2)?; // average power
    }
    machine_tail(&mut b, f, 8, &mut m)?;
    Ok(m)
}

/// Rower Data, 0x2AD1.
pub fn rower(payload: &[u8]) -> Result<MachineData, GattError> {
    let mut b = Bytes::new("rower data", payload);
    let f = flags16(&mut b)?;
    let mut m = MachineData::default();
    if f & 1 == 0 {
        m.stroke_rate_spm = avail8(b.u8()?).map(|v| f64::from(v) / 2.0);
        m.stroke_count = avail16(b.u16()?);
    }
    if f & (1 << 1) != 0 {
        b.skip(1)?; // average stroke rate
    }
    if f & (1 << 2) != 0 {
        m.distance_m = avail24(b.u24()?).map(f64::from);
    }
    for (bit, size) in [(3, 2), (4, 2)] {
        if f & (1 << bit) != 0 {
            b.skip(size)?; // pace, average pace
        }
    }
    if f & (1 << 5) != 0 {
        m.power_w = avail_i16(b.i16()?);
    }
    for (bit, size) in [(6, 2), (7, 2)] {
        if f & (1 << bit) != 0 {
            b.skip(size)?; // average power, resistance
        }
    }
    machine_tail(&mut b, f, 8, &mut m)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).expect("hex")).collect()
    }

    #[test]
    fn heart_rate_vectors() {
        let a = heart_rate(&hex("16 48 00 04")).expect("a");
        assert_eq!((a.bpm, a.contact, a.rr_1024.clone()), (72, Contact::InContact, vec![1024]));
        assert_eq!(a.rr_ms().collect::<Vec<_>>(), [1000.0]);
        let b = heart_rate(&hex("19 96 00 0A 00 00 03 C0 03")).expect("b");
        assert_eq!((b.bpm, b.energy_kj, b.rr_1024.clone()), (150, Some(10), vec![768, 960]));
        assert_eq!(b.rr_ms().collect::<Vec<_>>(), [750.0, 937.5]);
        let c = heart_rate(&hex("04 3C")).expect("c");
        assert_eq!((c.bpm, c.contact, c.is_valid_sample()), (60, Contact::NoContact, false));
        let d = heart_rate(&hex("00 00")).expect("d");
        assert!(!d.is_valid_sample(), "0 bpm while settling is not a sample");
        // Shorter than the flags promise: an error, never a panic.
        assert!(matches!(heart_rate(&hex("01 48")), Err(GattError::Short { .. })));
        assert!(matches!(heart_rate(&hex("08 48 01")), Err(GattError::Short { .. })));
        assert!(heart_rate(&[]).is_err());
        // Reserved bits are ignored.
        assert_eq!(heart_rate(&hex("E6 48")).expect("reserved").bpm, 72);
    }

    #[test]
    fn location_rsc_csc_power_vectors() {
        assert_eq!(body_sensor_location(&[1]).expect("loc"), BodyLocation::Chest);
        let r = rsc(&hex("06 00 03 AA 39 30 00 00")).expect("rsc");
        assert_eq!((r.speed_mps, r.cadence_spm, r.distance_m, r.running), (3.0, 170, Some(1234.5), true));
        let c = csc(&hex("03 10 00 00 00 00 04 05 00 00 08")).expect("csc");
        assert_eq!(c.wheel, Some(Revolutions { revs: 16, event_time: 1024 }));
        assert_eq!(c.crank, Some(Revolutions { revs: 5, event_time: 2048 }));
        let p = cycling_power(&hex("20 00 FA 00 64 00 00 04")).expect("power");
        assert_eq!((p.watts, p.crank), (250, Some(Revolutions { revs: 100, event_time: 1024 })));
    }

    #[test]
    fn rates_wrap_and_zero_dt_is_no_event() {
        let prev = Revolutions { revs: 0xFFFE, event_time: 0xFF00 };
        let next = Revolutions { revs: 0x0001, event_time: 0x0100 };
        // 3 revolutions in 512/1024 s = 0.5 s: 360 rpm.
        assert_eq!(rpm(prev, next, 16, 1024.0), Some(360.0));
        assert_eq!(rpm(next, next, 16, 1024.0), None);
    }

    #[test]
    fn fitness_machine_vectors() {
        let t = treadmill(&hex("04 04 E8 03 DC 05 00 58 02")).expect("treadmill");
        assert_eq!((t.speed_kmh, t.distance_m, t.elapsed_s), (Some(10.0), Some(1500.0), Some(600)));
        let b = indoor_bike(&hex("44 00 B8 0B B4 00 C8 00")).expect("bike");
        assert_eq!((b.speed_kmh, b.cadence_rpm, b.power_w), (Some(30.0), Some(90.0), Some(200)));
        let p = indoor_bike(&hex("41 00 C8 00")).expect("power only");
        assert_eq!((p.speed_kmh, p.power_w), (None, Some(200)));
        let r = rower(&hex("00 00 3C 0A 00")).expect("rower");
        assert_eq!((r.stroke_rate_spm, r.stroke_count), (Some(30.0), Some(10)));
        assert!(treadmill(&hex("04 04 E8 03")).is_err());
        // The shared tail: energy (bit 7 on a treadmill, 8 on bikes and rowers), heart
        // rate, elapsed time; all-ones energy per hour/minute are "not available".
        let t = treadmill(&hex("81 05 64 00 FF FF FF 8C 2C 01")).expect("treadmill tail");
        assert_eq!((t.speed_kmh, t.energy_kcal, t.heart_rate, t.elapsed_s), (None, Some(100), Some(140), Some(300)));
        let b = indoor_bike(&hex("01 0B 64 00 FF FF FF 8C 2C 01")).expect("bike tail");
        assert_eq!((b.energy_kcal, b.heart_rate, b.elapsed_s), (Some(100), Some(140), Some(300)));
        let r = rower(&hex("01 02 FF")).expect("rower hr n/a");
        assert_eq!(r.heart_rate, None);
    }

    proptest! {
        #[test]
        fn no_byte_string_panics_a_parser(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = heart_rate(&bytes);
            let _ = body_sensor_location(&bytes);
            let _ = rsc(&bytes);
            let _ = csc(&bytes);
            let _ = cycling_power(&bytes);
            let _ = treadmill(&bytes);
            let _ = indoor_bike(&bytes);
            let _ = rower(&bytes);
        }

        #[test]
        fn rpm_never_panics(a in any::<(u32, u16)>(), b in any::<(u32, u16)>(), bits in 1u32..=32) {
            let _ = rpm(Revolutions { revs: a.0, event_time: a.1 }, Revolutions { revs: b.0, event_time: b.1 }, bits, 1024.0);
        }
    }
}
