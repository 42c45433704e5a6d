//! Owns Pegasus key layout and routing: composite keys, the CRC64 key hash, partition choice.
//!
//! Pure. The CRC64 is Pegasus's own (reflected polynomial `0x9a6c9329ac4bc9b5`, init and
//! xorout all ones; upstream `src/utils/crc.cpp`), not any of the common named CRC-64 variants.

const POLY: u64 = 0x9a6c_9329_ac4b_c9b5;

const TABLE: [u64; 256] = build_table();

const fn build_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// Pegasus's CRC64 of `bytes`.
#[must_use]
pub fn crc64(bytes: &[u8]) -> u64 {
    let crc = bytes.iter().fold(!0u64, |crc, &b| {
        TABLE[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8)
    });
    !crc
}

/// Why a key cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hash key of {0} bytes is too long (at most 65534)")]
pub struct HashKeyTooLong(pub usize);

/// The composite key: u16 BE hash-key length, hash key, sort key.
///
/// # Errors
/// A hash key of 65535 bytes or more.
pub fn composite_key(hash_key: &[u8], sort_key: &[u8]) -> Result<Vec<u8>, HashKeyTooLong> {
    let len = u16::try_from(hash_key.len())
        .ok()
        .filter(|&l| l != u16::MAX)
        .ok_or(HashKeyTooLong(hash_key.len()))?;
    let mut key = Vec::with_capacity(2 + hash_key.len() + sort_key.len());
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(hash_key);
    key.extend_from_slice(sort_key);
    Ok(key)
}

/// Splits a composite key into hash key and sort key; `None` if it is malformed.
#[must_use]
pub fn split_key(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = usize::from(u16::from_be_bytes([*key.first()?, *key.get(1)?]));
    let rest = &key[2..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The routing hash of a composite key: CRC64 of the hash key, or of the sort key when the
/// hash key is empty. A malformed key hashes as its whole bytes.
#[must_use]
pub fn key_hash(key: &[u8]) -> u64 {
    match split_key(key) {
        Some((hash_key, _)) if !hash_key.is_empty() => crc64(hash_key),
        Some((_, sort_key)) => crc64(sort_key),
        None => crc64(key),
    }
}

/// The partition a hash routes to.
#[must_use]
pub fn partition_index(hash: u64, partition_count: i32) -> i32 {
    let count = u64::try_from(partition_count.max(1)).unwrap_or(1);
    i32::try_from(hash % count).expect("partition index fits partition_count")
}

/// A hash key `<prefix><n>` that routes to partition `pidx` of `partition_count`, for the
/// smallest such `n`.
#[must_use]
pub fn hash_key_in_partition(prefix: &str, pidx: i32, partition_count: i32) -> Vec<u8> {
    (0u64..)
        .map(|n| format!("{prefix}{n}").into_bytes())
        .find(|k| partition_index(crc64(k), partition_count) == pidx)
        .expect("CRC64 spreads over every partition")
}

/// Seconds between the Unix epoch and Pegasus's (2016-01-01 00:00:00 UTC), which record expiry
/// times count from (`epoch_begin`, `src/base/pegasus_utils.h`).
pub const EPOCH_BEGIN: u64 = 1_451_606_400;

/// Now in Pegasus epoch seconds.
#[must_use]
pub fn epoch_now() -> u32 {
    let unix = crate::clock::now_ms() / 1000;
    u32::try_from(unix.saturating_sub(EPOCH_BEGIN)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_key_can_be_found_for_every_partition() {
        for pidx in 0..16 {
            let k = hash_key_in_partition("probe-", pidx, 16);
            assert!(k.starts_with(b"probe-"));
            assert_eq!(partition_index(crc64(&k), 16), pidx);
        }
    }

    #[test]
    fn crc64_matches_upstream_check_values() {
        assert_eq!(crc64(b"a"), 0x8c2f_8445_b4cb_fc3c);
        assert_eq!(crc64(b"123456789"), 0xae8b_1486_0a79_9888);
        assert_eq!(crc64(b""), 0);
        assert_eq!(TABLE[1], 0x7f6e_f0c8_3035_8979);
    }

    #[test]
    fn hash_key_a_routes_like_the_go_client() {
        let key = composite_key(b"a", b"b").unwrap();
        assert_eq!(partition_index(key_hash(&key), 8), 4);
        assert_eq!(partition_index(key_hash(&key), 16), 12);
    }

    #[test]
    fn too_long_hash_keys_are_refused() {
        assert!(composite_key(&vec![0; 65535], b"").is_err());
        assert!(composite_key(&vec![0; 65534], b"").is_ok());
    }
}
