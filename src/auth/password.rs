//! argon2id password hashes (default parameters), as PHC strings.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::hashing::Memory;

/// Hashes a password with a fresh random salt (argon2id, default
/// parameters), in memory of its own that is returned to the system
/// afterwards (see [`Memory`]).
pub fn hash(password: &str) -> Result<String, String> {
    let failed = |e: &dyn std::fmt::Display| format!("cannot hash the password: {e}");
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let params = Params::default();
    let mut memory = Memory::default();
    let blocks = memory
        .blocks(params.block_count())
        .ok_or_else(|| failed(&"too much memory"))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), raw_salt, &mut out, blocks)
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`. A malformed hash never
/// matches. The memory is its own, returned to the system afterwards.
pub fn verify(password: &str, phc: &str) -> bool {
    verify_in(password, phc, &mut Memory::default())
}

/// As [`verify`], computing the hash in `memory` instead of allocating
/// its blocks. A hash asking for more memory than `memory` reserves (over
/// 32 MiB) never matches.
pub fn verify_in(password: &str, phc: &str, memory: &mut Memory) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        parsed
            .version
            .map_or(Ok(Version::default()), Version::try_from),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let Some(blocks) = memory.blocks(params.block_count()) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
        .is_ok()
        // Output's comparison takes the same time wherever the bytes differ.
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// A random secret of `bytes` bytes, URL-safe base64 without padding.
pub fn random_secret(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse", &phc));
        assert!(!verify("wrong horse", &phc));
        assert!(!verify("correct horse", "not a hash"));
        assert_ne!(hash("correct horse").expect("hash"), phc, "salted");
        // The argon2 crate's own check agrees, and so does ours with its hashes.
        let parsed = PasswordHash::new(&phc).expect("PHC");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string();
        assert!(verify("correct horse", &theirs));
    }

    #[test]
    fn a_hash_verified_in_kept_memory_agrees_with_the_plain_check() {
        let mut memory = Memory::default();
        let phc = hash("correct horse").expect("hash");
        assert!(verify_in("correct horse", &phc, &mut memory));
        assert!(!verify_in("wrong horse", &phc, &mut memory));
        assert!(
            verify_in("correct horse", &phc, &mut memory),
            "memory reused"
        );
        // Other parameters (argon2i, less memory, two lanes) are read from the hash.
        let params = Params::new(4096, 3, 2, None).expect("params");
        let other = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password(b"battery staple", &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string();
        assert!(verify_in("battery staple", &other, &mut memory));
        assert!(!verify_in("battery stapler", &other, &mut memory));
        assert!(!verify_in("correct horse", "not a hash", &mut memory));
        // A hash asking for more memory than is reserved (64 MiB) never matches.
        let big = Params::new(65536, 1, 1, None).expect("params");
        let greedy = Argon2::new(Algorithm::Argon2id, Version::V0x13, big)
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string();
        assert!(
            Argon2::default()
                .verify_password(b"pw", &PasswordHash::new(&greedy).expect("PHC"))
                .is_ok()
        );
        assert!(!verify_in("pw", &greedy, &mut memory));
        assert!(!verify("pw", &greedy));
    }

    #[test]
    fn random_secrets_differ() {
        assert_ne!(random_secret(32), random_secret(32));
        assert_eq!(random_secret(32).len(), 43);
    }
}
