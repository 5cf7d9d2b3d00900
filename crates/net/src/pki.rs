//! The federation PKI: a certificate authority, site certificates and model signing keys.
//!
//! A PKI directory holds:
//!
//! ```text
//! ca.pem                 federation CA certificate
//! ca.key                 CA private key (0600)
//! sites/<name>.pem       site certificate, CN = <name>, SANs <name>, localhost, 127.0.0.1
//! sites/<name>.key       site TLS private key (0600)
//! sites/<name>.sign.key  site Ed25519 model signing key, PKCS#8 PEM (0600)
//! sites/<name>.sign.pub  site Ed25519 verifying key, SPKI PEM
//! ```
//!
//! The coordinator is issued like a site (its name is the DNS name clients check).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// Errors of PKI generation and loading.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file exists and would be overwritten.
    #[error("{0}: already exists (use --force to overwrite)")]
    Exists(PathBuf),
    /// The CA files are missing.
    #[error("{0}: no federation CA here (run `fedids pki init` first)")]
    MissingCa(PathBuf),
    /// A key or certificate file does not parse.
    #[error("{path}: {what}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A site name that cannot be a DNS name or file name.
    #[error("invalid site name '{0}': expected 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'")]
    SiteName(String),
}

/// A federation certificate authority.
pub struct Ca {
    /// CA certificate, PEM.
    pub cert_pem: String,
    /// CA private key, PEM.
    pub key_pem: String,
}

/// Everything a site (or the coordinator) needs: TLS certificate and key, and model signing key.
pub struct SiteIdentity {
    /// Site name (certificate CN and DNS SAN).
    pub name: String,
    /// Certificate signed by the federation CA, PEM.
    pub cert_pem: String,
    /// TLS private key, PEM.
    pub key_pem: String,
    /// Ed25519 key that signs the site's model uploads.
    pub signing_key: SigningKey,
}

/// Validity window of an issued certificate.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From now (minus one minute of clock skew) for `days` days.
    pub fn days_from_now(days: u32) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }
}

/// Checks that `name` can be a DNS label and a file name.
pub fn check_site_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(PkiError::SiteName(name.to_string()))
    }
}

/// Creates a self-signed federation CA named `common_name`, valid for ten years.
pub fn init_ca(common_name: &str) -> Result<Ca, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "fedids federation");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let validity = Validity::days_from_now(3650);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a certificate for `site_name` signed by `ca`, usable both as TLS client and server,
/// plus a fresh Ed25519 model signing key.
pub fn issue_site(ca: &Ca, site_name: &str, validity: Validity) -> Result<SiteIdentity, PkiError> {
    check_site_name(site_name)?;
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, site_name);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![
        SanType::DnsName(site_name.try_into()?),
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
    ];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(SiteIdentity {
        name: site_name.to_string(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        signing_key: crate::signing::generate_key(),
    })
}

/// File locations inside a PKI directory.
#[derive(Debug, Clone)]
pub struct PkiDir {
    root: PathBuf,
}

impl PkiDir {
    /// A PKI directory rooted at `root` (not created until written).
    pub fn new(root: &Path) -> PkiDir {
        PkiDir {
            root: root.to_path_buf(),
        }
    }

    /// `ca.pem`.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// `ca.key`.
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }

    /// `sites/<name>.pem`.
    pub fn site_cert(&self, name: &str) -> PathBuf {
        self.root.join("sites").join(format!("{name}.pem"))
    }

    /// `sites/<name>.key`.
    pub fn site_key(&self, name: &str) -> PathBuf {
        self.root.join("sites").join(format!("{name}.key"))
    }

    /// `sites/<name>.sign.key`.
    pub fn site_sign_key(&self, name: &str) -> PathBuf {
        self.root.join("sites").join(format!("{name}.sign.key"))
    }

    /// `sites/<name>.sign.pub`.
    pub fn site_sign_pub(&self, name: &str) -> PathBuf {
        self.root.join("sites").join(format!("{name}.sign.pub"))
    }

    /// Writes a CA; refuses to overwrite existing files unless `force`.
    pub fn write_ca(&self, ca: &Ca, force: bool) -> Result<(), PkiError> {
        let files = [
            (self.ca_cert(), ca.cert_pem.as_str(), false),
            (self.ca_key(), ca.key_pem.as_str(), true),
        ];
        write_all(&files, force)
    }

    /// Reads the CA.
    pub fn read_ca(&self) -> Result<Ca, PkiError> {
        if !self.ca_cert().exists() || !self.ca_key().exists() {
            return Err(PkiError::MissingCa(self.root.clone()));
        }
        Ok(Ca {
            cert_pem: read(&self.ca_cert())?,
            key_pem: read(&self.ca_key())?,
        })
    }

    /// Reads the CA certificate alone (what sites and the coordinator need; the CA key stays
    /// offline).
    pub fn read_ca_cert(&self) -> Result<String, PkiError> {
        if !self.ca_cert().exists() {
            return Err(PkiError::MissingCa(self.root.clone()));
        }
        read(&self.ca_cert())
    }

    /// The names of the identities whose verifying key (`sites/<name>.sign.pub`) is here, sorted.
    pub fn site_names(&self) -> Result<Vec<String>, PkiError> {
        let dir = self.root.join("sites");
        let entries = fs::read_dir(&dir).map_err(|source| PkiError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".sign.pub").map(str::to_string)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Writes a site identity; refuses to overwrite existing files unless `force`.
    pub fn write_site(&self, site: &SiteIdentity, force: bool) -> Result<(), PkiError> {
        let invalid = |what: String| PkiError::Invalid {
            path: self.site_sign_key(&site.name),
            what,
        };
        let sign_key = site
            .signing_key
            .to_pkcs8_pem(Default::default())
            .map_err(|e| invalid(e.to_string()))?;
        let sign_pub = site
            .signing_key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .map_err(|e| invalid(e.to_string()))?;
        let files = [
            (self.site_cert(&site.name), site.cert_pem.as_str(), false),
            (self.site_key(&site.name), site.key_pem.as_str(), true),
            (self.site_sign_key(&site.name), sign_key.as_str(), true),
            (self.site_sign_pub(&site.name), sign_pub.as_str(), false),
        ];
        write_all(&files, force)
    }

    /// Reads a site identity.
    pub fn read_site(&self, name: &str) -> Result<SiteIdentity, PkiError> {
        check_site_name(name)?;
        let sign_path = self.site_sign_key(name);
        let sign_pem = read(&sign_path)?;
        let signing_key = SigningKey::from_pkcs8_pem(&sign_pem).map_err(|e| PkiError::Invalid {
            path: sign_path,
            what: format!("expected an Ed25519 PKCS#8 private key: {e}"),
        })?;
        Ok(SiteIdentity {
            name: name.to_string(),
            cert_pem: read(&self.site_cert(name))?,
            key_pem: read(&self.site_key(name))?,
            signing_key,
        })
    }

    /// Reads a site's model verifying key.
    pub fn read_site_verifying_key(&self, name: &str) -> Result<VerifyingKey, PkiError> {
        check_site_name(name)?;
        let path = self.site_sign_pub(name);
        let pem = read(&path)?;
        VerifyingKey::from_public_key_pem(&pem).map_err(|e| PkiError::Invalid {
            path,
            what: format!("expected an Ed25519 public key: {e}"),
        })
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `(path, contents, secret)` files, checking first that none exists (unless `force`), so
/// a refusal leaves the directory untouched. Secret files are created with mode 0600.
fn write_all(files: &[(PathBuf, &str, bool)], force: bool) -> Result<(), PkiError> {
    if !force {
        if let Some((path, _, _)) = files.iter().find(|(path, _, _)| path.exists()) {
            return Err(PkiError::Exists(path.clone()));
        }
    }
    for (path, contents, secret) in files {
        let io = |source| PkiError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if *secret {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = secret;
        let mut file = options.open(path).map_err(io)?;
        #[cfg(unix)]
        if *secret {
            // `mode` only applies on creation; tighten a file that existed (`force`).
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        file.write_all(contents.as_bytes()).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(dir.path());
        let ca = init_ca("test federation").unwrap();
        pki.write_ca(&ca, false).unwrap();
        let site = issue_site(
            &pki.read_ca().unwrap(),
            "site-a",
            Validity::days_from_now(1),
        )
        .unwrap();
        pki.write_site(&site, false).unwrap();
        let back = pki.read_site("site-a").unwrap();
        assert_eq!(back.cert_pem, site.cert_pem);
        assert_eq!(back.key_pem, site.key_pem);
        assert_eq!(back.signing_key.to_bytes(), site.signing_key.to_bytes());
        let vk = pki.read_site_verifying_key("site-a").unwrap();
        assert_eq!(vk, site.signing_key.verifying_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for path in [
                pki.ca_key(),
                pki.site_key("site-a"),
                pki.site_sign_key("site-a"),
            ] {
                let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", path.display());
            }
        }
        let err = pki.write_ca(&ca, false).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
    }

    #[test]
    fn missing_ca_and_bad_names_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = PkiDir::new(dir.path()).read_ca().err().unwrap().to_string();
        assert!(err.contains("no federation CA"), "{err}");
        for bad in ["", "-a", "A", "a/b", "../x"] {
            assert!(check_site_name(bad).is_err(), "{bad}");
        }
    }
}
