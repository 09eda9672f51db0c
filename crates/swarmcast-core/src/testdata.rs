//! Deterministic bytes for tests and benchmarks, so that failures and figures reproduce.

/// `len` pseudo-random bytes from `seed` (xorshift64; not for anything that needs randomness).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
        let a = super::pseudo_random(1000, 7);
        assert_eq!(a, super::pseudo_random(1000, 7));
        assert_ne!(a, super::pseudo_random(1000, 8));
        // Not a constant stream: every byte value turns up in a few thousand.
        let many = super::pseudo_random(10_000, 1);
        let mut seen = [false; 256];
        many.iter().for_each(|b| seen[*b as usize] = true);
        assert!(seen.iter().all(|s| *s));
    }
}
