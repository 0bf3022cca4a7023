//! Deterministic test content: the same `len` and `seed` always give the same bytes, in every
//! test that needs an image or a payload.

/// Mixed content like a root filesystem image: half pseudo-random bytes, a quarter zeros, a
/// quarter text, so it compresses about as a real image does.
pub fn image_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out: Vec<u8> = words(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        .take((len / 2).div_ceil(8))
        .flat_map(u64::to_le_bytes)
        .collect();
    out.resize(len * 3 / 4, 0);
    while out.len() < len {
        out.extend_from_slice(
            format!("airlock e2e filler {seed}: the quick brown fox\n").as_bytes(),
        );
    }
    out.truncate(len);
    out
}

/// Pseudo-random bytes that do not compress, so a bundle is about as large as its payload.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out: Vec<u8> = words(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D)
        .take(len / 8 + 1)
        .flat_map(u64::to_le_bytes)
        .collect();
    out.truncate(len);
    out
}

/// xorshift64 from `state` (which must not be 0): fast, and good enough to defeat compression.
fn words(mut state: u64) -> impl Iterator<Item = u64> {
    std::iter::from_fn(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Some(state)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_the_advertised_mix() {
        assert_eq!(image_bytes(10_000, 3), image_bytes(10_000, 3));
        assert_ne!(image_bytes(10_000, 3), image_bytes(10_000, 4));
        let image = image_bytes(10_001, 3);
        assert_eq!(image.len(), 10_001);
        assert!(image[5_008..7_500].iter().all(|&b| b == 0));
        assert!(image[7_500..].starts_with(b"airlock e2e filler 3"));
        let random = random_bytes(12_345, 9);
        assert_eq!(random.len(), 12_345);
        assert_eq!(random, random_bytes(12_345, 9));
        assert!(random.iter().filter(|&&b| b == 0).count() < 200);
    }
}
