//! The console's CSRF token: HMAC-SHA256 under a server secret over the
//! user name and the password the request authenticated with. It is bound
//! to the session's credentials (another user, or the same user after a
//! password change, gets another token), needs no storage, and is checked
//! in constant time. The secret is stored once in the database
//! (`settings`), so every replica and every restart derives the same token.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The setting that holds the secret.
pub const SECRET_SETTING: &str = "console_csrf_secret";

/// What tells the token from any other use of the same secret.
const PURPOSE: &[u8] = b"steward console csrf v1";

/// The console session of an authenticated request: its CSRF token. Added
/// by the authentication layer to requests for console pages only.
#[derive(Clone)]
pub struct Session {
    token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session { token: <hidden> }")
    }
}

fn mac(secret: &[u8], user: &str, password: &str) -> HmacSha256 {
    // Any key length is valid for HMAC.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(PURPOSE);
    for part in [user, password] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac
}

impl Session {
    /// The session of `user` authenticated with `password`.
    pub fn new(secret: &[u8], user: &str, password: &str) -> Self {
        Self {
            token: hex::encode(mac(secret, user, password).finalize().into_bytes()),
        }
    }

    /// The token forms carry.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether `given` is this session's token, compared in constant time.
    pub fn verify(&self, given: &str) -> bool {
        let (Ok(given), Ok(expected)) = (hex::decode(given.trim()), hex::decode(&self.token))
        else {
            return false;
        };
        given.len() == expected.len() && constant_time_eq(&given, &expected)
    }
}

/// Compares two byte strings of equal length without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_the_user_the_password_and_the_secret() {
        let s = Session::new(b"secret", "alice", "pw");
        assert!(s.verify(s.token()));
        assert_eq!(s.token().len(), 64);
        assert_eq!(s.token(), Session::new(b"secret", "alice", "pw").token());
        for other in [
            Session::new(b"secret", "bob", "pw"),
            Session::new(b"secret", "alice", "pw2"),
            Session::new(b"other", "alice", "pw"),
            // The length prefixes keep "ab" + "c" apart from "a" + "bc".
            Session::new(b"secret", "alicep", "w"),
        ] {
            assert_ne!(other.token(), s.token());
            assert!(!s.verify(other.token()));
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let s = Session::new(b"secret", "alice", "pw");
        assert!(!s.verify(""));
        assert!(!s.verify("zz"));
        assert!(!s.verify(&s.token()[..62]));
        assert!(!s.verify(&format!("{}00", s.token())));
        let mut flipped = s.token().to_owned();
        let last = if flipped.ends_with('0') { "1" } else { "0" };
        flipped.replace_range(63..64, last);
        assert!(!s.verify(&flipped));
    }
}
