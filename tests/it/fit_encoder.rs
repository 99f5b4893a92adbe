//! A small FIT encoder for tests: enough of the protocol to write the fixtures coachd
//! must read (file_id, record with compressed timestamps, event, session, sport,
//! activity, set). Real devices' files are decoded by `fitparser` in production.

/// Seconds between the Unix epoch and the FIT epoch (1989-12-31T00:00:00Z).
pub const FIT_EPOCH: i64 = 631_065_600;

const CRC_TABLE: [u16; 16] = [
    0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401, 0xA001, 0x6C00, 0x7800, 0xB401, 0x5000, 0x9C01,
    0x8801, 0x4400,
];

pub fn crc(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        let mut tmp = CRC_TABLE[(crc & 0xF) as usize];
        crc = (crc >> 4) & 0x0FFF;
        crc = crc ^ tmp ^ CRC_TABLE[(b & 0xF) as usize];
        tmp = CRC_TABLE[(crc & 0xF) as usize];
        crc = (crc >> 4) & 0x0FFF;
        crc = crc ^ tmp ^ CRC_TABLE[((b >> 4) & 0xF) as usize];
    }
    crc
}

/// FIT base types used here.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Enum,
    U8,
    U16,
    U32,
}

impl Base {
    fn code(self) -> u8 {
        match self {
            Base::Enum => 0x00,
            Base::U8 => 0x02,
            Base::U16 => 0x84,
            Base::U32 => 0x86,
        }
    }
    fn size(self) -> u8 {
        match self {
            Base::Enum | Base::U8 => 1,
            Base::U16 => 2,
            Base::U32 => 4,
        }
    }
}

/// A global message number and its (field number, base type) list.
type Definition = (u16, Vec<(u8, Base)>);

pub struct FitWriter {
    data: Vec<u8>,
    /// Definitions per local message type: global number and fields.
    defs: Vec<Option<Definition>>,
    last_timestamp: Option<u32>,
}

impl Default for FitWriter {
    fn default() -> Self {
        Self { data: Vec::new(), defs: vec![None; 16], last_timestamp: None }
    }
}

pub fn fit_time(unix: i64) -> u32 {
    (unix - FIT_EPOCH) as u32
}

impl FitWriter {
    fn define(&mut self, local: u8, global: u16, fields: &[(u8, Base)]) {
        if self.defs[local as usize].as_ref().is_some_and(|(g, f)| *g == global && f.as_slice() == fields) {
            return;
        }
        self.data.push(0x40 | local);
        self.data.extend_from_slice(&[0, 0]); // reserved, little-endian
        self.data.extend_from_slice(&global.to_le_bytes());
        self.data.push(fields.len() as u8);
        for (num, base) in fields {
            self.data.extend_from_slice(&[*num, base.size(), base.code()]);
        }
        self.defs[local as usize] = Some((global, fields.to_vec()));
    }

    fn values(&mut self, fields: &[(u8, Base)], values: &[u64]) {
        for ((_, base), v) in fields.iter().zip(values) {
            match base.size() {
                1 => self.data.push(*v as u8),
                2 => self.data.extend_from_slice(&(*v as u16).to_le_bytes()),
                _ => self.data.extend_from_slice(&(*v as u32).to_le_bytes()),
            }
        }
    }

    /// A message with a normal header; field 253 (or 254 for `set`) carries its timestamp.
    pub fn message(&mut self, local: u8, global: u16, fields: &[(u8, Base, u64)]) {
        let defs: Vec<(u8, Base)> = fields.iter().map(|(n, b, _)| (*n, *b)).collect();
        self.define(local, global, &defs);
        if let Some((_, _, t)) = fields.iter().find(|(n, _, _)| *n == 253) {
            self.last_timestamp = Some(*t as u32);
        }
        self.data.push(local);
        let vals: Vec<u64> = fields.iter().map(|(_, _, v)| *v).collect();
        self.values(&defs, &vals);
    }

    /// A record with a compressed timestamp header (local type 0-3, within 31 s of the last).
    pub fn compressed_record(&mut self, local: u8, timestamp: u32, fields: &[(u8, Base, u64)]) {
        let defs: Vec<(u8, Base)> = fields.iter().map(|(n, b, _)| (*n, *b)).collect();
        self.define(local, 20, &defs);
        let last = self.last_timestamp.expect("a full timestamp before a compressed one");
        assert!(timestamp >= last && timestamp - last < 32, "compressed timestamps cover 31 s");
        self.data.push(0x80 | (local << 5) | (timestamp & 0x1F) as u8);
        let vals: Vec<u64> = fields.iter().map(|(_, _, v)| *v).collect();
        self.values(&defs, &vals);
        self.last_timestamp = Some(timestamp);
    }

    pub fn finish(self) -> Vec<u8> {
        let mut out = vec![14u8, 0x20];
        out.extend_from_slice(&2132u16.to_le_bytes());
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(b".FIT");
        let header_crc = crc(&out);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&self.data);
        let file_crc = crc(&out);
        out.extend_from_slice(&file_crc.to_le_bytes());
        out
    }
}

// FIT profile numbers used by the fixtures.
pub const SPORT_RUNNING: u64 = 1;
pub const SPORT_CYCLING: u64 = 2;
pub const SPORT_TRAINING: u64 = 10;
pub const SUB_STRENGTH: u64 = 20;
pub const EXERCISE_PUSH_UP: u64 = 22;
pub const EXERCISE_PLANK: u64 = 19;

pub struct SessionSpec {
    pub start: i64,
    pub elapsed_s: u32,
    pub timer_s: u32,
    pub sport: u64,
    pub sub_sport: u64,
    pub avg_hr: u8,
    pub max_hr: u8,
}

impl FitWriter {
    pub fn file_id(&mut self, serial: u32, created: i64) {
        self.message(
            0,
            0,
            &[
                (0, Base::Enum, 4),
                (1, Base::U16, 1),
                (2, Base::U16, 3113),
                (3, Base::U32, u64::from(serial)),
                (4, Base::U32, u64::from(fit_time(created))),
            ],
        );
    }

    pub fn record(&mut self, unix: i64, hr: u8, cadence: u8) {
        self.message(
            1,
            20,
            &[
                (253, Base::U32, u64::from(fit_time(unix))),
                (3, Base::U8, u64::from(hr)),
                (4, Base::U8, u64::from(cadence)),
            ],
        );
    }

    pub fn timer(&mut self, unix: i64, stop: bool) {
        self.message(
            2,
            21,
            &[
                (253, Base::U32, u64::from(fit_time(unix))),
                (0, Base::Enum, 0),
                (1, Base::Enum, if stop { 4 } else { 0 }),
            ],
        );
    }

    pub fn session(&mut self, s: &SessionSpec) {
        self.session_stamped(s, s.start + i64::from(s.elapsed_s));
    }

    /// A session whose own `timestamp` is `stamp`: devices write its start, the save
    /// time, or the next session's start there.
    pub fn session_stamped(&mut self, s: &SessionSpec, stamp: i64) {
        let end = stamp;
        self.message(
            3,
            18,
            &[
                (253, Base::U32, u64::from(fit_time(end))),
                (2, Base::U32, u64::from(fit_time(s.start))),
                (7, Base::U32, u64::from(s.elapsed_s) * 1000),
                (8, Base::U32, u64::from(s.timer_s) * 1000),
                (5, Base::Enum, s.sport),
                (6, Base::Enum, s.sub_sport),
                (16, Base::U8, u64::from(s.avg_hr)),
                (17, Base::U8, u64::from(s.max_hr)),
            ],
        );
    }

    /// A session with its total distance (field 9, centimetres), on local message 5.
    pub fn session_with_distance(&mut self, s: &SessionSpec, meters: f64) {
        self.message(
            5,
            18,
            &[
                (253, Base::U32, u64::from(fit_time(s.start + i64::from(s.elapsed_s)))),
                (2, Base::U32, u64::from(fit_time(s.start))),
                (7, Base::U32, u64::from(s.elapsed_s) * 1000),
                (8, Base::U32, u64::from(s.timer_s) * 1000),
                (5, Base::Enum, s.sport),
                (6, Base::Enum, s.sub_sport),
                (9, Base::U32, (meters * 100.0).round() as u64),
            ],
        );
    }

    /// A strength set: `reps` None makes it a rest set.
    pub fn set(&mut self, start: i64, duration_s: u32, reps: Option<u16>, category: u64) {
        let end = start + i64::from(duration_s);
        let (set_type, reps) = match reps {
            Some(r) => (1, u64::from(r)),
            None => (0, 0xFFFF),
        };
        self.message(
            4,
            225,
            &[
                (254, Base::U32, u64::from(fit_time(end))),
                (0, Base::U32, u64::from(duration_s) * 1000),
                (3, Base::U16, reps),
                (5, Base::U8, set_type),
                (6, Base::U32, u64::from(fit_time(start))),
                (7, Base::U16, if set_type == 1 { category } else { 0xFFFF }),
            ],
        );
    }

    /// A record whose heart-rate field is defined as a 1-byte uint32 (as a COROS watch
    /// writes some fields): the decoder reads it, and complains on its own stderr.
    pub fn misaligned_record(&mut self, unix: i64, hr: u8) {
        let local = 6u8;
        self.data.push(0x40 | local);
        self.data.extend_from_slice(&[0, 0]);
        self.data.extend_from_slice(&20u16.to_le_bytes());
        self.data.push(2);
        self.data.extend_from_slice(&[253, 4, Base::U32.code()]);
        self.data.extend_from_slice(&[3, 1, Base::U32.code()]);
        self.defs[local as usize] = None;
        self.data.push(local);
        self.data.extend_from_slice(&fit_time(unix).to_le_bytes());
        self.data.push(hr);
        self.last_timestamp = Some(fit_time(unix));
    }

    /// The file cut inside its last message, with the header and CRC made to agree
    /// (as a device that stopped writing mid-message leaves it).
    pub fn finish_cut(mut self, cut: usize) -> Vec<u8> {
        let keep = self.data.len().saturating_sub(cut);
        self.data.truncate(keep);
        self.finish()
    }

    pub fn activity(&mut self, unix: i64, offset_s: i64) {
        self.message(
            5,
            34,
            &[(253, Base::U32, u64::from(fit_time(unix))), (5, Base::U32, u64::from(fit_time(unix + offset_s)))],
        );
    }
}
