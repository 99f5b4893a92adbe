//! Compact encoding for sample series.
//!
//! A chunk is a sequence of `(t_ms, value)` points sorted by time, values already scaled
//! to integers. Layout: varint count, then per point the zigzag varint of the
//! delta-of-delta of the time and the zigzag varint of the delta of the value. A steady
//! 1 Hz heart-rate stream costs one byte of time and usually one of value per point.
//!
//! Decoding is total: any byte string either decodes or returns [`CodecError`]; it never
//! panics and never allocates more than the input can justify.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("sample chunk is truncated")]
    Truncated,
    #[error("sample chunk has a varint longer than 10 bytes")]
    Overlong,
    #[error("sample chunk claims {claimed} points but holds at most {possible}")]
    BadCount { claimed: u64, possible: usize },
    #[error("sample chunk has {0} trailing bytes")]
    Trailing(usize),
    #[error("sample chunk time or value overflows")]
    Overflow,
}

/// Encode points (sorted by time, unique times) into `out`.
pub fn encode(points: &[(i64, i64)], out: &mut Vec<u8>) {
    out.clear();
    put_varint(out, points.len() as u64);
    let (mut prev_t, mut prev_dt, mut prev_v) = (0i64, 0i64, 0i64);
    for &(t, v) in points {
        let dt = t.wrapping_sub(prev_t);
        put_varint(out, zigzag(dt.wrapping_sub(prev_dt)));
        put_varint(out, zigzag(v.wrapping_sub(prev_v)));
        (prev_t, prev_dt, prev_v) = (t, dt, v);
    }
}

/// Decode a chunk, appending its points to `out`.
pub fn decode(mut bytes: &[u8], out: &mut Vec<(i64, i64)>) -> Result<(), CodecError> {
    let n = get_varint(&mut bytes)?;
    // Each point takes at least two bytes, so a count larger than that is a lie.
    let possible = bytes.len() / 2;
    if n > possible as u64 {
        return Err(CodecError::BadCount { claimed: n, possible });
    }
    out.reserve(n as usize);
    let (mut t, mut dt, mut v) = (0i64, 0i64, 0i64);
    for _ in 0..n {
        let ddt = unzigzag(get_varint(&mut bytes)?);
        let dv = unzigzag(get_varint(&mut bytes)?);
        dt = dt.checked_add(ddt).ok_or(CodecError::Overflow)?;
        t = t.checked_add(dt).ok_or(CodecError::Overflow)?;
        v = v.checked_add(dv).ok_or(CodecError::Overflow)?;
        out.push((t, v));
    }
    if !bytes.is_empty() {
        return Err(CodecError::Trailing(bytes.len()));
    }
    Ok(())
}

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(x: u64) -> i64 {
    ((x >> 1) as i64) ^ -((x & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn get_varint(bytes: &mut &[u8]) -> Result<u64, CodecError> {
    let mut x = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        x |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Ok(x);
        }
    }
    if bytes.len() >= 10 {
        Err(CodecError::Overlong)
    } else {
        Err(CodecError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(points: &[(i64, i64)]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(points, &mut buf);
        let mut back = Vec::new();
        decode(&buf, &mut back).expect("decodes");
        assert_eq!(back, points);
        buf
    }

    #[test]
    fn steady_heart_rate_costs_about_two_bytes_a_point() {
        let t0 = 1_763_600_000_000i64;
        let points: Vec<_> = (0..3600).map(|i| (t0 + i * 1000, 120 + (i % 7) - 3)).collect();
        let bytes = roundtrip(&points);
        assert!(bytes.len() < 3600 * 2 + 16, "{} bytes", bytes.len());
    }

    #[test]
    fn extremes_roundtrip() {
        roundtrip(&[]);
        roundtrip(&[(i64::MIN / 4, i64::MAX / 4), (0, i64::MIN / 4), (i64::MAX / 4, 0)]);
        roundtrip(&[(5, -1), (6, 1 << 40), (1_000_000, -(1 << 40))]);
    }

    #[test]
    fn garbage_never_panics() {
        // Exhaustive over short strings, pseudo-random over longer ones.
        let mut out = Vec::new();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = decode(&[a, b], &mut out);
                let _ = decode(&[a, b, a ^ 0x80, b], &mut out);
                out.clear();
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes, &mut out);
            out.clear();
        }
    }

    #[test]
    fn lies_are_caught() {
        let mut out = Vec::new();
        assert_eq!(decode(&[], &mut out), Err(CodecError::Truncated));
        assert!(matches!(decode(&[0xff, 0xff, 0xff, 0x7f], &mut out), Err(CodecError::BadCount { .. })));
        assert_eq!(decode(&[0x00, 0x01], &mut out), Err(CodecError::Trailing(1)));
        assert_eq!(decode(&[0x80; 12], &mut out), Err(CodecError::Overlong));
    }
}
