//! The server's Ed25519 signing key: made on first start, kept in the data
//! directory (mode 0600). Agents pin its public key; allowlists are signed
//! with it.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;

use crate::files::write_private;

/// The file that holds the key's 32-byte seed, as hex.
pub const KEY_FILE: &str = "signing.key";
/// The file of the next key during a rotation (`steward key rotate`):
/// announced in every allowlist signed with the current key until
/// `steward key promote` makes it the current key.
pub const NEXT_KEY_FILE: &str = "signing.next.key";

/// The server's key pair, and the next one during a rotation.
pub struct ServerKey {
    key: SigningKey,
    next: Option<SigningKey>,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey")
            .field("fingerprint", &self.fingerprint())
            .field("next", &self.next_fingerprint())
            .finish_non_exhaustive()
    }
}

impl ServerKey {
    /// Loads the key (and the next one, during a rotation) from
    /// `data_dir`, or makes and keeps a key.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, String> {
        let key = match read_key(&data_dir.join(KEY_FILE))? {
            Some(key) => key,
            None => make_key(&data_dir.join(KEY_FILE))?,
        };
        let next = read_key(&data_dir.join(NEXT_KEY_FILE))?;
        Ok(Self { key, next })
    }

    /// A key from a known seed (tests and test vectors).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
            next: None,
        }
    }

    /// The next key's raw public key, base64, during a rotation.
    pub fn next_public_key_base64(&self) -> Option<String> {
        self.next
            .as_ref()
            .map(|k| STANDARD.encode(k.verifying_key().to_bytes()))
    }

    /// The next key's fingerprint, during a rotation.
    pub fn next_fingerprint(&self) -> Option<String> {
        self.next
            .as_ref()
            .map(|k| fingerprint(&k.verifying_key().to_bytes()))
    }

    /// The raw 32-byte public key, base64.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().to_bytes())
    }

    /// `sha256:` and the hex SHA-256 of the raw public key.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key.verifying_key().to_bytes())
    }

    /// The signing key, for signing allowlists.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

fn read_key(path: &Path) -> Result<Option<SigningKey>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let seed: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("{} does not hold a 32-byte hex seed", path.display()))?;
            Ok(Some(SigningKey::from_bytes(&seed)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn make_key(path: &Path) -> Result<SigningKey, String> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    write_private(path, &format!("{}\n", hex::encode(key.to_bytes())))?;
    Ok(key)
}

/// Starts a key rotation: makes the next key (kept when one exists). Its
/// fingerprint.
pub fn rotate(data_dir: &Path) -> Result<String, String> {
    ServerKey::load_or_create(data_dir)?;
    let path = data_dir.join(NEXT_KEY_FILE);
    let next = match read_key(&path)? {
        Some(key) => key,
        None => make_key(&path)?,
    };
    Ok(fingerprint(&next.verifying_key().to_bytes()))
}

/// Ends a key rotation: the next key becomes the key; the old one is kept
/// as `signing.key.retired-SECONDS`. The new key's fingerprint.
pub fn promote(data_dir: &Path) -> Result<String, String> {
    let next_path = data_dir.join(NEXT_KEY_FILE);
    let Some(next) = read_key(&next_path)? else {
        return Err(format!(
            "no rotation under way ({} does not exist): run `steward key rotate` first",
            next_path.display()
        ));
    };
    let current: PathBuf = data_dir.join(KEY_FILE);
    let retired = data_dir.join(format!(
        "{KEY_FILE}.retired-{}",
        chrono::Utc::now().timestamp()
    ));
    std::fs::rename(&current, &retired)
        .map_err(|e| format!("cannot move {} aside: {e}", current.display()))?;
    std::fs::rename(&next_path, &current)
        .map_err(|e| format!("cannot make {} the key: {e}", next_path.display()))?;
    Ok(fingerprint(&next.verifying_key().to_bytes()))
}

pub use crate::domain::allowlist::fingerprint;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_kept_private_and_loaded_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = ServerKey::load_or_create(dir.path()).expect("created");
        let again = ServerKey::load_or_create(dir.path()).expect("loaded");
        assert_eq!(first.public_key_base64(), again.public_key_base64());
        assert!(first.fingerprint().starts_with("sha256:") && first.fingerprint().len() == 71);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_known_seed_gives_the_known_public_key() {
        // RFC 8032, section 7.1, test 1.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .expect("hex");
        let key = ServerKey::from_seed(seed.try_into().expect("32 bytes"));
        let public = STANDARD.decode(key.public_key_base64()).expect("base64");
        assert_eq!(
            hex::encode(public),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(KEY_FILE), "not hex").expect("write");
        assert!(ServerKey::load_or_create(dir.path()).is_err());
    }
}
