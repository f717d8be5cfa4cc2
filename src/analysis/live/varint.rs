//! LEB128 varints: an unsigned value in 7-bit groups, lowest first, the high bit
//! set on every byte but the last. Small values take few bytes, and a value's end
//! is known from either side (read backwards, a byte without the high bit ends the
//! value before).

/// Appends `value`.
pub(super) fn push(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push(value as u8 | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

/// The value of exactly one varint's bytes.
pub(super) fn value(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |value, byte| value << 7 | u64::from(byte & 0x7f))
}

/// The varint at `*at`, moving `*at` past it; `None` at the end of `bytes`.
pub(super) fn read(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let start = *at;
    while *bytes.get(*at)? & 0x80 != 0 {
        *at += 1;
    }
    *at += 1;
    Some(value(&bytes[start..*at]))
}

/// The varint that ends at `*end`, moving `*end` back to its start; `None` at the
/// start of `bytes`.
pub(super) fn read_back(bytes: &[u8], end: &mut usize) -> Option<u64> {
    let mut start = end.checked_sub(1)?;
    while start > 0 && bytes[start - 1] & 0x80 != 0 {
        start -= 1;
    }
    let found = value(&bytes[start..*end]);
    *end = start;
    Some(found)
}

/// A signed value as an unsigned one, small magnitudes small: 0, -1, 1, -2, …
pub(super) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The signed value of [`zigzag`]'s.
pub(super) fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_the_same_from_either_side() {
        let values = [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX];
        let mut bytes = Vec::new();
        for value in values {
            push(&mut bytes, value);
        }
        assert_eq!(bytes.len(), 1 + 1 + 1 + 2 + 2 + 6 + 10 + 10);
        let mut at = 0;
        let forward: Vec<u64> = std::iter::from_fn(|| read(&bytes, &mut at)).collect();
        assert_eq!(forward, values);
        let mut end = bytes.len();
        let mut backward: Vec<u64> = std::iter::from_fn(|| read_back(&bytes, &mut end)).collect();
        backward.reverse();
        assert_eq!(backward, values);
        for signed in [0, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(signed)), signed);
            assert!(u128::from(zigzag(signed)) <= 2 * u128::from(signed.unsigned_abs()));
        }
    }
}
