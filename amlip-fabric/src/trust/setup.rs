//! `trust init` and `trust add`: a domain's CAs, governance, and each node's identity and
//! signed permissions, as plain PEM and S/MIME files that rustdds and Fast DDS both read.
//!
//! Layout of a trust directory (what [`super::Trust::load`] and the Fast DDS peer read):
//! ```text
//! DIR/identity_ca.pem     the identity CA's certificate (every node checks peers against it)
//! DIR/permissions_ca.pem  the permissions CA's certificate (signs governance and permissions)
//! DIR/governance.xml      what the domain protects, readable; governance.p7s is it signed
//! DIR/private/            the two CA keys (0600, in a 0700 folder): keep them off the nodes
//! DIR/NAME/cert.pem       NAME's identity certificate (CN=NAME), signed by the identity CA
//! DIR/NAME/key.pem        its private key (0600)
//! DIR/NAME/permissions.xml, permissions.p7s   what NAME may publish and read, signed
//! ```
//! Keys are ECDSA P-256 and signatures SHA-256: what the DDS Security built-in plugins of
//! both rustdds and Fast DDS accept, and what rustls verifies for the direct path.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

use super::{TrustError, GOVERNANCE, IDENTITY_CA, PERMISSIONS_CA};

/// What a node may do on the domain, written into its signed permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends jobs, inference requests and models; reads replies and solutions.
    Main,
    /// Answers jobs: reads requests and job data; writes replies and solutions.
    Computing,
    /// Reads the status and node-information topics only (a dashboard, a monitor).
    Observer,
    /// Every amlip topic, both ways (a node that is main and computing, pipelines, streams).
    Any,
}

impl std::str::FromStr for Role {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<Self, TrustError> {
        match s {
            "main" => Ok(Self::Main),
            "computing" => Ok(Self::Computing),
            "observer" => Ok(Self::Observer),
            "any" => Ok(Self::Any),
            other => Err(TrustError::Setup(format!(
                "unknown role {other:?}: use main, computing, observer or any"
            ))),
        }
    }
}

/// Topics every role shares: status, node information, model managers, amlip's extensions
/// (heartbeats, chunk streams, sample streams).
const SHARED: &[&str] = &["amlip/status", "amlipx/*", "amlip/rpc_*", "amlip/model_*"];

/// An observer's topics: who is there and what they do, no job, model or stream.
const OBSERVED: &[&str] = &[
    "amlip/status",
    "amlip/model_statistics",
    "amlipx/node_info",
    "amlipx/main_summary",
    "amlipx/probe",
];

impl Role {
    /// (publish, subscribe) topic patterns, as DDS Security permissions take them (fnmatch).
    fn topics(self) -> (Vec<&'static str>, Vec<&'static str>) {
        let with = |own: &[&'static str]| SHARED.iter().chain(own).copied().collect();
        match self {
            Self::Main => (
                with(&[
                    "amlip/*_request_availability",
                    "amlip/*_task_target",
                    "amlip/*_task_data_*",
                ]),
                with(&["amlip/*_reply_available_*", "amlip/*_task_solution_*"]),
            ),
            Self::Computing => (
                with(&["amlip/*_reply_available_*", "amlip/*_task_solution_*"]),
                with(&[
                    "amlip/*_request_availability",
                    "amlip/*_task_target",
                    "amlip/*_task_data_*",
                ]),
            ),
            Self::Observer => (OBSERVED.to_vec(), OBSERVED.to_vec()),
            Self::Any => (vec!["amlip/*", "amlipx/*"], vec!["amlip/*", "amlipx/*"]),
        }
    }
}

/// How long what `trust init` and `trust add` sign stays valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Seconds from now when validity starts (negative: in the past).
    pub start_offset_secs: i64,
    /// Days it lasts from its start.
    pub days: u32,
}

impl Default for Validity {
    fn default() -> Self {
        Self {
            start_offset_secs: -3600,
            days: 3650,
        }
    }
}

/// Creates the domain's identity CA, permissions CA and signed governance in `dir` (which must
/// not hold a domain already). Returns the files written.
pub fn init(dir: &Path, validity: Validity) -> Result<Vec<PathBuf>, TrustError> {
    if dir.join(IDENTITY_CA).exists() {
        return Err(TrustError::Setup(format!(
            "{} already holds a trusted domain ({IDENTITY_CA} exists); use another directory",
            dir.display()
        )));
    }
    let private = dir.join("private");
    fs::create_dir_all(&private).map_err(|e| io(&private, e))?;
    set_mode(&private, 0o700)?;
    let tag = random_tag()?;
    let mut written = Vec::new();
    for (cert, key, cn) in [
        (
            IDENTITY_CA,
            "identity_ca.key",
            format!("amlip identity CA {tag}"),
        ),
        (
            PERMISSIONS_CA,
            "permissions_ca.key",
            format!("amlip permissions CA {tag}"),
        ),
    ] {
        let pkey = new_key()?;
        let x = certificate(&cn, &pkey, None, validity)?;
        written.push(write_file(&dir.join(cert), &pem(x.to_pem())?, 0o644)?);
        written.push(write_file(
            &private.join(key),
            &pem(pkey.private_key_to_pem_pkcs8())?,
            0o600,
        )?);
    }
    let governance = governance_xml();
    written.push(write_file(
        &dir.join("governance.xml"),
        governance.as_bytes(),
        0o644,
    )?);
    let (ca, ca_key) = permissions_ca(dir)?;
    written.push(write_file(
        &dir.join(GOVERNANCE),
        &sign(&governance, &ca, &ca_key)?,
        0o644,
    )?);
    Ok(written)
}

/// Adds node `name` to the domain in `dir`: its key, its certificate (CN=`name`) and its
/// permissions for `role`, signed. Returns the files written.
pub fn add(
    dir: &Path,
    name: &str,
    role: Role,
    validity: Validity,
) -> Result<Vec<PathBuf>, TrustError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(TrustError::Setup(format!(
            "node name {name:?}: use 1 to 64 characters of [0-9A-Za-z_.-]"
        )));
    }
    let node = dir.join(name);
    if node.join("cert.pem").exists() {
        return Err(TrustError::Setup(format!(
            "{} exists: {name} is already a member (remove the folder to re-issue)",
            node.display()
        )));
    }
    let ca_pem = read(&dir.join(IDENTITY_CA))?;
    let ca = X509::from_pem(&ca_pem).map_err(|e| bad(&dir.join(IDENTITY_CA), e))?;
    let ca_key_path = dir.join("private/identity_ca.key");
    let ca_key =
        PKey::private_key_from_pem(&read(&ca_key_path)?).map_err(|e| bad(&ca_key_path, e))?;
    let (perm_ca, perm_key) = permissions_ca(dir)?;
    fs::create_dir_all(&node).map_err(|e| io(&node, e))?;
    let key = new_key()?;
    let cert = certificate(name, &key, Some((&ca, &ca_key)), validity)?;
    let permissions = permissions_xml(name, role, validity);
    Ok(vec![
        write_file(
            &node.join("key.pem"),
            &pem(key.private_key_to_pem_pkcs8())?,
            0o600,
        )?,
        write_file(&node.join("cert.pem"), &pem(cert.to_pem())?, 0o644)?,
        write_file(&node.join("permissions.xml"), permissions.as_bytes(), 0o644)?,
        write_file(
            &node.join("permissions.p7s"),
            &sign(&permissions, &perm_ca, &perm_key)?,
            0o644,
        )?,
    ])
}

fn permissions_ca(dir: &Path) -> Result<(X509, PKey<Private>), TrustError> {
    let cert_path = dir.join(PERMISSIONS_CA);
    let key_path = dir.join("private/permissions_ca.key");
    let cert = X509::from_pem(&read(&cert_path)?).map_err(|e| bad(&cert_path, e))?;
    let key = PKey::private_key_from_pem(&read(&key_path)?).map_err(|e| bad(&key_path, e))?;
    Ok((cert, key))
}

/// The governance: no unauthenticated participant, join access control, and every amlip
/// topic's discovery, liveliness, submessages and payloads encrypted.
fn governance_xml() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_governance.xsd">
  <domain_access_rules>
    <domain_rule>
      <domains>
        <id_range><min>0</min><max>{max}</max></id_range>
      </domains>
      <allow_unauthenticated_participants>false</allow_unauthenticated_participants>
      <enable_join_access_control>true</enable_join_access_control>
      <discovery_protection_kind>ENCRYPT</discovery_protection_kind>
      <liveliness_protection_kind>ENCRYPT</liveliness_protection_kind>
      <rtps_protection_kind>NONE</rtps_protection_kind>
      <topic_access_rules>
        <topic_rule>
          <topic_expression>*</topic_expression>
          <enable_discovery_protection>true</enable_discovery_protection>
          <enable_liveliness_protection>true</enable_liveliness_protection>
          <enable_read_access_control>true</enable_read_access_control>
          <enable_write_access_control>true</enable_write_access_control>
          <metadata_protection_kind>ENCRYPT</metadata_protection_kind>
          <data_protection_kind>ENCRYPT</data_protection_kind>
        </topic_rule>
      </topic_access_rules>
    </domain_rule>
  </domain_access_rules>
</dds>
"#,
        max = crate::dds::MAX_DOMAIN
    )
}

fn permissions_xml(name: &str, role: Role, validity: Validity) -> String {
    let (publish, subscribe) = role.topics();
    let list = |topics: &[&str]| {
        topics
            .iter()
            .map(|t| format!("              <topic>{t}</topic>\n"))
            .collect::<String>()
    };
    let section = |tag: &str, topics: &[&str]| {
        if topics.is_empty() {
            String::new()
        } else {
            format!(
                "          <{tag}>\n            <topics>\n{}            </topics>\n          </{tag}>\n",
                list(topics)
            )
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let start = now + validity.start_offset_secs;
    let end = start + i64::from(validity.days) * 86_400;
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-Security/20170901/omg_shared_ca_permissions.xsd">
  <permissions>
    <grant name="{name}">
      <subject_name>CN={name}</subject_name>
      <validity>
        <not_before>{nb}</not_before>
        <not_after>{na}</not_after>
      </validity>
      <allow_rule>
        <domains>
          <id_range><min>0</min><max>{max}</max></id_range>
        </domains>
{publish}{subscribe}      </allow_rule>
      <default>DENY</default>
    </grant>
  </permissions>
</dds>
"#,
        nb = xml_time(start),
        na = xml_time(end),
        max = crate::dds::MAX_DOMAIN,
        publish = section("publish", &publish),
        subscribe = section("subscribe", &subscribe),
    )
}

/// `YYYY-MM-DDThh:mm:ss` (UTC) of a Unix time, as permissions' validity takes it.
pub(crate) fn xml_time(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn new_key() -> Result<PKey<Private>, TrustError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ssl)?;
    PKey::from_ec_key(EcKey::generate(&group).map_err(ssl)?).map_err(ssl)
}

/// A certificate for `cn`, self-signed (a CA) when `issuer` is `None`.
fn certificate(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    validity: Validity,
) -> Result<X509, TrustError> {
    let mut name = X509NameBuilder::new().map_err(ssl)?;
    name.append_entry_by_nid(Nid::COMMONNAME, cn).map_err(ssl)?;
    let name = name.build();
    let mut b = X509Builder::new().map_err(ssl)?;
    b.set_version(2).map_err(ssl)?;
    let mut serial = BigNum::new().map_err(ssl)?;
    serial
        .rand(120, MsbOption::MAYBE_ZERO, false)
        .map_err(ssl)?;
    let serial = Asn1Integer::from_bn(&serial).map_err(ssl)?;
    b.set_serial_number(&serial).map_err(ssl)?;
    b.set_subject_name(&name).map_err(ssl)?;
    b.set_pubkey(key).map_err(ssl)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let start = now + validity.start_offset_secs;
    let not_before = Asn1Time::from_unix(start).map_err(ssl)?;
    let not_after = Asn1Time::from_unix(start + i64::from(validity.days) * 86_400).map_err(ssl)?;
    b.set_not_before(&not_before).map_err(ssl)?;
    b.set_not_after(&not_after).map_err(ssl)?;
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .map_err(ssl)?;
    b.append_extension(ski).map_err(ssl)?;
    match issuer {
        None => {
            b.set_issuer_name(&name).map_err(ssl)?;
            b.append_extension(
                BasicConstraints::new()
                    .critical()
                    .ca()
                    .build()
                    .map_err(ssl)?,
            )
            .map_err(ssl)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .digital_signature()
                    .build()
                    .map_err(ssl)?,
            )
            .map_err(ssl)?;
            b.sign(key, MessageDigest::sha256()).map_err(ssl)?;
        }
        Some((ca, ca_key)) => {
            b.set_issuer_name(ca.subject_name()).map_err(ssl)?;
            b.append_extension(BasicConstraints::new().critical().build().map_err(ssl)?)
                .map_err(ssl)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_agreement()
                    .build()
                    .map_err(ssl)?,
            )
            .map_err(ssl)?;
            b.sign(ca_key, MessageDigest::sha256()).map_err(ssl)?;
        }
    }
    Ok(b.build())
}

/// `doc` as S/MIME signed by `ca` (clear text, detached signature): what `openssl smime
/// -sign -text` writes and what DDS Security's built-in access control reads.
fn sign(doc: &str, ca: &X509, key: &PKey<Private>) -> Result<Vec<u8>, TrustError> {
    let flags = Pkcs7Flags::DETACHED | Pkcs7Flags::TEXT;
    let certs = Stack::new().map_err(ssl)?;
    let p7 = Pkcs7::sign(ca, key, &certs, doc.as_bytes(), flags).map_err(ssl)?;
    p7.to_smime(doc.as_bytes(), flags).map_err(ssl)
}

fn random_tag() -> Result<String, TrustError> {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b).map_err(ssl)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn pem(r: Result<Vec<u8>, openssl::error::ErrorStack>) -> Result<Vec<u8>, TrustError> {
    r.map_err(ssl)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, TrustError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    let mut f = opts.open(path).map_err(|e| io(path, e))?;
    f.write_all(bytes).map_err(|e| io(path, e))?;
    set_mode(path, mode)?;
    Ok(path.to_owned())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), TrustError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io(path, e))?;
    }
    let _ = mode;
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, TrustError> {
    fs::read(path).map_err(|e| io(path, e))
}

fn io(path: &Path, e: std::io::Error) -> TrustError {
    TrustError::File {
        file: path.to_owned(),
        why: e.to_string(),
    }
}

fn bad(path: &Path, e: openssl::error::ErrorStack) -> TrustError {
    TrustError::File {
        file: path.to_owned(),
        why: format!("not a PEM certificate or key: {e}"),
    }
}

fn ssl(e: openssl::error::ErrorStack) -> TrustError {
    TrustError::Setup(format!("OpenSSL: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_times_are_utc_civil_dates() {
        assert_eq!(xml_time(0), "1970-01-01T00:00:00");
        assert_eq!(xml_time(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(xml_time(1_798_761_599), "2026-12-31T23:59:59");
        assert_eq!(xml_time(-1), "1969-12-31T23:59:59");
    }

    #[test]
    fn roles_are_parsed_and_observers_touch_no_job_topic() {
        assert_eq!("computing".parse::<Role>().unwrap(), Role::Computing);
        assert!("admin".parse::<Role>().is_err());
        let (publish, subscribe) = Role::Observer.topics();
        assert!(!publish
            .iter()
            .chain(&subscribe)
            .any(|t| t.contains("task") || t.contains('*')));
    }
}
