//! Icinga 2 PKI tickets: hex PBKDF2-HMAC-SHA1 of the host name with the
//! ticket salt, 50,000 iterations, 20 bytes, as `icinga2 pki ticket` prints.

use sha1::Sha1;

/// Iterations Icinga 2 uses.
pub const ITERATIONS: u32 = 50_000;

/// The ticket of host `cn` for `salt`.
pub fn ticket(cn: &str, salt: &str) -> String {
    let mut out = [0u8; 20];
    pbkdf2::pbkdf2_hmac::<Sha1>(cn.as_bytes(), salt.as_bytes(), ITERATIONS, &mut out);
    hex::encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_match_python_hashlib() {
        // python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha1', b'web-01.example.com', b'some-salt', 50000, 20).hex())"
        assert_eq!(
            ticket("web-01.example.com", "some-salt"),
            "ffb0f38fd415d38c67aa7e599d8892885f900bcf"
        );
    }
}
