//! HTTPS for `steward serve` (a module of the `steward` binary): the PEM
//! certificate chain and private key of `tls_cert` and `tls_key` loaded into
//! a rustls configuration, which `steward::server` serves with.
//!
//! rustls runs on the `ring` provider, the one reqwest and sqlx use already;
//! it is passed explicitly, so no process-wide default is needed.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use steward::config::Config;

/// The rustls configuration for the configured certificate and key, or
/// `None` when neither is set (plain http). The configuration loader makes
/// sure they come together.
pub fn from_config(config: &Config) -> Result<Option<Arc<ServerConfig>>, String> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => server_config(cert, key).map(Some),
        _ => Ok(None),
    }
}

/// Loads a PEM certificate chain (the server's certificate first) and its
/// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC). Every error names the
/// file it is about.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = read_chain(cert_file)?;
    let key = read_key(key_file)?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                format!(
                    "cannot serve HTTPS with the certificate {} and the key {}: {e}",
                    cert_file.display(),
                    key_file.display()
                )
            })?;
    // Offer what the server speaks (steward::server serves both).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a PEM file, in their order; at least one.
fn read_chain(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(file, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM in the TLS certificate {}: {e}", file.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "no certificate in the TLS certificate file {} (expected PEM: -----BEGIN CERTIFICATE-----)",
            file.display()
        ));
    }
    Ok(chain)
}

/// The first private key of a PEM file.
fn read_key(file: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(file, "key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "no private key in the TLS key file {} (expected PEM: PKCS#8, RSA or EC)",
            file.display()
        ),
        e => format!("invalid PEM in the TLS key {}: {e}", file.display()),
    })
}

fn read(file: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("cannot read the TLS {what} {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, as PEM.
    fn self_signed() -> (String, String) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = self_signed();
        let cert = write(dir.path(), "cert.pem", &cert);
        let key = write(dir.path(), "key.pem", &key);
        let config = server_config(&cert, &key).expect("loads");
        assert!(config.alpn_protocols.contains(&b"http/1.1".to_vec()));
    }

    #[test]
    fn every_unusable_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert_pem, key_pem) = self_signed();
        let cert = write(dir.path(), "cert.pem", &cert_pem);
        let key = write(dir.path(), "key.pem", &key_pem);
        let garbage = write(dir.path(), "garbage.pem", "not a certificate\n");
        let missing = dir.path().join("missing.pem");
        let (_, other_key) = self_signed();
        let other_key = write(dir.path(), "other-key.pem", &other_key);

        let error = server_config(&missing, &key).expect_err("missing certificate");
        assert!(
            error.contains("cannot read") && error.contains("missing.pem"),
            "{error}"
        );
        let error = server_config(&garbage, &key).expect_err("garbage certificate");
        assert!(
            error.contains("no certificate") && error.contains("garbage.pem"),
            "{error}"
        );
        let error = server_config(&cert, &garbage).expect_err("garbage key");
        assert!(
            error.contains("no private key") && error.contains("garbage.pem"),
            "{error}"
        );
        // A certificate file given as the key has no key in it.
        let error = server_config(&cert, &cert).expect_err("certificate as key");
        assert!(error.contains("no private key"), "{error}");
        // A key that does not belong to the certificate.
        let error = server_config(&cert, &other_key).expect_err("another key");
        assert!(
            error.contains("cert.pem") && error.contains("other-key.pem"),
            "{error}"
        );
    }
}
