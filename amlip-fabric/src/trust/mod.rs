//! Trusted domains: only nodes holding the domain's certificates join, and nothing travels in
//! clear.
//!
//! A node started with a [`Trust`] (`--trust DIR/NAME`) runs its DDS participant with OMG DDS
//! Security's built-in plugins (rustdds's `security` feature: PKI-DH authentication, signed
//! governance and permissions, AES-GCM), and its direct TCP path with mutual TLS (rustls)
//! over the same identity: each side checks the other's certificate against the domain's
//! identity CA and its common name against the node it expects. [`setup`] writes the files
//! (`main-node trust init` / `trust add`).
//!
//! [`Trust::load`] checks every file before DDS sees it, so a missing, expired, wrongly signed
//! or mismatched file is named at startup (rustdds's own errors name none, and it checks no
//! certificate's dates).

pub mod refusals;
pub mod setup;
pub mod tls;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::asn1::Asn1Time;
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

pub use refusals::RefusalLog;
pub use setup::{Role, Validity};

pub(crate) const IDENTITY_CA: &str = "identity_ca.pem";
pub(crate) const PERMISSIONS_CA: &str = "permissions_ca.pem";
pub(crate) const GOVERNANCE: &str = "governance.p7s";

/// Why a trust directory cannot be used (or made).
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A file is missing, unreadable, or not what it should be.
    #[error("{}: {why}", file.display())]
    File {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// `--trust` does not name a node of a trust directory.
    #[error(
        "--trust {0}: expected DIR/NAME, a node folder made by `main-node trust add DIR NAME`"
    )]
    Path(PathBuf),
    /// Making the domain's files failed.
    #[error("{0}")]
    Setup(String),
}

/// A node's membership of a trusted domain: the paths DDS Security reads, and the identity its
/// direct path presents. Cheap to clone.
#[derive(Clone)]
pub struct Trust {
    inner: Arc<Loaded>,
}

struct Loaded {
    dir: PathBuf,
    node_dir: PathBuf,
    /// The certificate's common name: the node's name in the domain.
    name: String,
    ca: X509,
    cert: X509,
    key: PKey<Private>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("node", &self.inner.node_dir)
            .field("name", &self.inner.name)
            .finish()
    }
}

impl Trust {
    /// Loads and checks node `DIR/NAME`: every file present, certificates in date, the node's
    /// certificate signed by the identity CA and matching its key, governance and permissions
    /// signed by the permissions CA, the permissions granted to this certificate and in date.
    pub fn load(node_dir: impl AsRef<Path>) -> Result<Self, TrustError> {
        let node_dir = node_dir.as_ref().to_owned();
        let dir = match node_dir.parent() {
            Some(p) if node_dir.file_name().is_some() => {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_owned()
                }
            }
            _ => return Err(TrustError::Path(node_dir)),
        };
        if !node_dir.is_dir() {
            return Err(if dir.join(IDENTITY_CA).exists() {
                TrustError::File {
                    file: node_dir.clone(),
                    why: "no such node in this domain (make it with `main-node trust add`)".into(),
                }
            } else {
                TrustError::Path(node_dir)
            });
        }
        let ca = certificate(&dir.join(IDENTITY_CA))?;
        let perm_ca = certificate(&dir.join(PERMISSIONS_CA))?;
        let cert_path = node_dir.join("cert.pem");
        let cert = certificate(&cert_path)?;
        let key_path = node_dir.join("key.pem");
        let key = PKey::private_key_from_pem(&read(&key_path)?).map_err(|e| TrustError::File {
            file: key_path.clone(),
            why: format!("not a PEM private key: {e}"),
        })?;
        let signed_by_ca = ca
            .public_key()
            .and_then(|k| cert.verify(&k))
            .unwrap_or(false);
        if !signed_by_ca {
            return Err(TrustError::File {
                file: cert_path,
                why: format!(
                    "not signed by this domain's identity CA ({})",
                    dir.join(IDENTITY_CA).display()
                ),
            });
        }
        if !cert
            .public_key()
            .map(|k| k.public_eq(&key))
            .unwrap_or(false)
        {
            return Err(TrustError::File {
                file: key_path,
                why: format!("not the key of {}", cert_path.display()),
            });
        }
        let name = common_name(&cert).ok_or_else(|| TrustError::File {
            file: cert_path.clone(),
            why: "the certificate has no common name".into(),
        })?;
        verified_document(&dir.join(GOVERNANCE), &perm_ca)?;
        let perm_path = node_dir.join("permissions.p7s");
        let permissions = verified_document(&perm_path, &perm_ca)?;
        check_grant(&permissions, &name, &perm_path)?;
        Ok(Self {
            inner: Arc::new(Loaded {
                dir,
                node_dir,
                name,
                ca,
                cert,
                key,
            }),
        })
    }

    /// The node's name in the domain (its certificate's common name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The node's folder (`DIR/NAME`).
    pub fn node_dir(&self) -> &Path {
        &self.inner.node_dir
    }

    /// What rustdds's built-in security plugins read.
    pub(crate) fn dds_files(&self) -> rustdds::DomainParticipantSecurityConfigFiles {
        let (d, n) = (&self.inner.dir, &self.inner.node_dir);
        // The node folder holds cert.pem, key.pem and permissions.p7s under the names this
        // constructor gives them (the key type it uses is not exported); the domain's files
        // are one folder up.
        let mut files =
            rustdds::DomainParticipantSecurityConfigFiles::with_ros_default_names(n, String::new());
        files.identity_ca_certificate = d.join(IDENTITY_CA);
        files.permissions_ca_certificate = d.join(PERMISSIONS_CA);
        files.domain_governance_document = d.join(GOVERNANCE);
        files
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TrustError> {
    std::fs::read(path).map_err(|e| TrustError::File {
        file: path.to_owned(),
        why: if e.kind() == std::io::ErrorKind::NotFound {
            "missing".into()
        } else {
            e.to_string()
        },
    })
}

/// A PEM certificate, in date.
fn certificate(path: &Path) -> Result<X509, TrustError> {
    let cert = X509::from_pem(&read(path)?).map_err(|e| TrustError::File {
        file: path.to_owned(),
        why: format!("not a PEM certificate: {e}"),
    })?;
    let now = Asn1Time::days_from_now(0).map_err(|e| TrustError::Setup(e.to_string()))?;
    let bad = |why: String| TrustError::File {
        file: path.to_owned(),
        why,
    };
    if cert.not_after() < now {
        return Err(bad(format!("expired on {}", cert.not_after())));
    }
    if cert.not_before() > now {
        return Err(bad(format!("not valid before {}", cert.not_before())));
    }
    Ok(cert)
}

pub(crate) fn common_name(cert: &openssl::x509::X509Ref) -> Option<String> {
    let entry = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next()?;
    entry.data().to_string().ok()
}

/// The text of an S/MIME document signed by `ca`.
fn verified_document(path: &Path, ca: &X509) -> Result<String, TrustError> {
    let bytes = read(path)?;
    let bad = |why: String| TrustError::File {
        file: path.to_owned(),
        why,
    };
    let (p7, content) = Pkcs7::from_smime(&bytes)
        .map_err(|e| bad(format!("not an S/MIME signed document: {e}")))?;
    let content = content.ok_or_else(|| bad("holds no signed text".into()))?;
    let mut store = X509StoreBuilder::new().map_err(|e| bad(e.to_string()))?;
    store.add_cert(ca.clone()).map_err(|e| bad(e.to_string()))?;
    let store = store.build();
    let certs = Stack::new().map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    p7.verify(
        &certs,
        &store,
        Some(&content),
        Some(&mut out),
        Pkcs7Flags::TEXT,
    )
    .map_err(|e| bad(format!("not signed by this domain's permissions CA: {e}")))?;
    String::from_utf8(out).map_err(|_| bad("the signed text is not UTF-8".into()))
}

/// The permissions grant `CN=name` and are in date.
fn check_grant(xml: &str, name: &str, path: &Path) -> Result<(), TrustError> {
    let bad = |why: String| TrustError::File {
        file: path.to_owned(),
        why,
    };
    let subject = format!("<subject_name>CN={name}</subject_name>");
    let grant = xml
        .split("<grant")
        .skip(1)
        .find(|g| g.contains(&subject))
        .ok_or_else(|| {
            bad(format!(
                "grants nothing to CN={name} (the certificate's name)"
            ))
        })?;
    let field = |tag: &str| {
        grant
            .split(&format!("<{tag}>"))
            .nth(1)
            .and_then(|r| r.split(&format!("</{tag}>")).next())
            .map(str::trim)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let now = setup::xml_time(now);
    // ISO times of one format compare as strings.
    if let Some(after) = field("not_after") {
        if after < now.as_str() {
            return Err(bad(format!("the grant to CN={name} expired on {after}")));
        }
    }
    if let Some(before) = field("not_before") {
        if before > now.as_str() {
            return Err(bad(format!("the grant to CN={name} starts on {before}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary one, removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Self {
            let mut b = [0u8; 6];
            openssl::rand::rand_bytes(&mut b).unwrap();
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let p = std::env::temp_dir().join(format!("amlip-trust-{tag}-{hex}"));
            Self(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn domain(tag: &str) -> Scratch {
        let s = Scratch::new(tag);
        setup::init(&s.0, Validity::default()).unwrap();
        s
    }

    fn err(node: &Path) -> String {
        Trust::load(node).unwrap_err().to_string()
    }

    #[test]
    fn a_member_loads_with_its_certificate_name() {
        let d = domain("ok");
        let files = setup::add(&d.0, "worker-1", Role::Computing, Validity::default()).unwrap();
        assert_eq!(files.len(), 4);
        let t = Trust::load(d.0.join("worker-1")).unwrap();
        assert_eq!(t.name(), "worker-1");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(d.0.join("worker-1/key.pem")), 0o600);
            assert_eq!(mode(d.0.join("private/identity_ca.key")), 0o600);
            assert_eq!(mode(d.0.join("private")), 0o700);
        }
        // A domain is made once; a member is added once.
        assert!(setup::init(&d.0, Validity::default()).is_err());
        assert!(setup::add(&d.0, "worker-1", Role::Any, Validity::default()).is_err());
        assert!(setup::add(&d.0, "a/b", Role::Any, Validity::default()).is_err());
    }

    #[test]
    fn each_bad_file_is_named() {
        let d = domain("bad");
        for n in ["a", "b", "expired"] {
            let validity = if n == "expired" {
                Validity {
                    start_offset_secs: -3 * 86_400,
                    days: 1,
                }
            } else {
                Validity::default()
            };
            setup::add(&d.0, n, Role::Any, validity).unwrap();
        }
        let (a, b) = (d.0.join("a"), d.0.join("b"));
        // Expired.
        let e = err(&d.0.join("expired"));
        assert!(
            e.contains("expired/cert.pem") && e.contains("expired on"),
            "{e}"
        );
        // Another node's key.
        std::fs::copy(b.join("key.pem"), a.join("key.pem")).unwrap();
        let e = err(&a);
        assert!(
            e.contains("a/key.pem") && e.contains("not the key of"),
            "{e}"
        );
        let other = domain("other");
        setup::add(&other.0, "a", Role::Any, Validity::default()).unwrap();
        std::fs::copy(other.0.join("a/key.pem"), a.join("key.pem")).unwrap();
        std::fs::copy(other.0.join("a/cert.pem"), a.join("cert.pem")).unwrap();
        // A certificate of another domain's CA.
        let e = err(&a);
        assert!(e.contains("a/cert.pem") && e.contains("identity CA"), "{e}");
        // Permissions granted to another name.
        std::fs::remove_dir_all(&a).unwrap();
        setup::add(&d.0, "a", Role::Any, Validity::default()).unwrap();
        std::fs::copy(b.join("permissions.p7s"), a.join("permissions.p7s")).unwrap();
        let e = err(&a);
        assert!(e.contains("a/permissions.p7s") && e.contains("CN=a"), "{e}");
        // Permissions signed by another domain.
        std::fs::copy(other.0.join("a/permissions.p7s"), a.join("permissions.p7s")).unwrap();
        let e = err(&a);
        assert!(
            e.contains("permissions.p7s") && e.contains("permissions CA"),
            "{e}"
        );
        // A missing file, and a folder that is no member.
        std::fs::remove_file(a.join("permissions.p7s")).unwrap();
        let e = err(&a);
        assert!(e.contains("a/permissions.p7s: missing"), "{e}");
        assert!(err(&d.0.join("nobody")).contains("no such node"));
        assert!(err(Path::new("/")).contains("DIR/NAME"));
    }
}
