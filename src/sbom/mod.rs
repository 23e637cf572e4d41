//! Software bills of materials made from a stored lock (`appliance sbom`): SPDX 2.3 and
//! CycloneDX 1.6 JSON, every locked package with its package URL and, where its
//! copyright file or header says, its license.
//!
//! The document is a function of the stored revision alone: its identity (SPDX's
//! namespace, CycloneDX's serial number) comes from the lock id and the revision's
//! address, its time is when the revision was stored, so the same revision always
//! gives the same bytes (as long as the same sources hold its license texts).

mod cyclonedx;
mod found;
pub mod license;
mod spdx;

use std::path::Path;
use std::str::FromStr;

use sha1::{Digest, Sha1};

use crate::lock::Backend;
use crate::lock::{LockedPackage, Reason};
use crate::materialise::{self, MaterialiseError, OsRelease, Sources};
use crate::repo::StoredLock;

pub use license::Expression;

/// Which SBOM standard to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.6 JSON.
    CycloneDx,
}

impl Format {
    /// The name `--format` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Spdx => "spdx",
            Format::CycloneDx => "cyclonedx",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(name: &str) -> Result<Format, String> {
        match name {
            "spdx" => Ok(Format::Spdx),
            "cyclonedx" => Ok(Format::CycloneDx),
            other => Err(format!(
                "unknown SBOM format `{}` (sbom writes spdx or cyclonedx)",
                crate::excerpt::excerpt(other)
            )),
        }
    }
}

/// What an SBOM says of one stored revision: gathered once, written in either format.
#[derive(Debug, Clone)]
pub struct Sbom<'a> {
    /// The revision.
    pub stored: &'a StoredLock,
    /// The distribution the lock's own os-release names; `None` without one.
    pub distro: Option<OsRelease>,
    /// Each package's license, in the lock's package order.
    pub licenses: Vec<Option<Expression>>,
    /// What could not be read, for the user (the document is still whole).
    pub warnings: Vec<String>,
}

impl<'a> Sbom<'a> {
    /// Gathers the SBOM of `stored`, reading its os-release and its packages' licenses
    /// from `sources` as materialise would (`out` is what errors name).
    pub fn gather(
        stored: &'a StoredLock,
        sources: &Sources,
        out: &Path,
    ) -> Result<Sbom<'a>, MaterialiseError> {
        let lock = &stored.lock;
        let mut warnings = Vec::new();
        let distro = match materialise::os_release(lock, sources) {
            Ok(release) => release,
            // Only the `distro` qualifier depends on it.
            Err(MaterialiseError::Drift { files, .. }) => {
                if let Some(file) = files.first() {
                    warnings.push(format!(
                        "no source holds {} as locked, so package URLs name no distro: {}",
                        file.path, file.problem
                    ));
                }
                None
            }
            Err(other) => return Err(other),
        };
        let licenses = found::licenses(lock, sources, out, &mut warnings)?;
        Ok(Sbom {
            stored,
            distro,
            licenses,
            warnings,
        })
    }

    /// The document in `format`, pretty JSON ending in a newline.
    pub fn render(&self, format: Format) -> Vec<u8> {
        // Plain structs of strings serialise without fail.
        let mut bytes = match format {
            Format::Spdx => serde_json::to_vec_pretty(&spdx::document(self)),
            Format::CycloneDx => serde_json::to_vec_pretty(&cyclonedx::document(self)),
        }
        .unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The revision's address, `web=1.0-3[!kernel,openvz is: x86_64]`.
    fn address(&self) -> String {
        self.stored.lock.address(self.stored.revision)
    }

    /// The appliance's own version: the group's version and the revision, `1.0-3`.
    fn version(&self) -> String {
        format!("{}-{}", self.stored.lock.version, self.stored.revision)
    }

    /// When the revision was stored, RFC 3339 in UTC (the epoch for a time before it).
    fn created(&self) -> String {
        (u64::try_from(self.stored.created).ok())
            .and_then(materialise::rfc3339)
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
    }

    /// The document's URI: the revision's address, percent-encoded, and the lock id,
    /// under a host that can name nothing (`.invalid`).
    fn namespace(&self) -> String {
        format!(
            "https://appliance.invalid/sbom/{}/{}",
            encode(&self.address(), ""),
            self.stored.lock_id
        )
    }

    /// A name-based (version 5) UUID of the namespace URI, as CycloneDX's serial
    /// number: RFC 9562's URL namespace, SHA-1 of it and the name.
    fn uuid(&self) -> String {
        const URL: [u8; 16] = [
            0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4,
            0x30, 0xc8,
        ];
        let mut hash = Sha1::new();
        hash.update(URL);
        hash.update(self.namespace().as_bytes());
        let bytes: [u8; 16] = hash.finalize()[..16].try_into().unwrap_or_default();
        crate::uuid::text(bytes, 5)
    }

    /// The packages (their indexes) that depend on `package`, each once; none when the
    /// appliance brought it: a group named it, or it is essential.
    fn brought_by(&self, package: &LockedPackage) -> Vec<usize> {
        let packages = &self.stored.lock.packages;
        let mut by: Vec<usize> = match &package.reason {
            Reason::Dependency { of, also } => (std::iter::once(of).chain(also))
                .filter_map(|name| packages.iter().position(|p| &p.name == name))
                .collect(),
            Reason::Named { .. } | Reason::Essential => Vec::new(),
        };
        by.sort_unstable();
        by.dedup();
        by
    }

    /// The creating tool, `appliance` and its version.
    fn tool() -> (&'static str, &'static str) {
        ("appliance", env!("CARGO_PKG_VERSION"))
    }

    /// The package URL of `package`: `pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12`,
    /// `pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&distro=fedora-40` (an RPM epoch
    /// goes in the `epoch` qualifier). The namespace and `distro` come from the lock's
    /// os-release; without one, a Debian package's namespace is `debian`, an RPM's is
    /// left out, and so is `distro`.
    pub fn purl(&self, package: &LockedPackage) -> String {
        let id = self.distro.as_ref().map(|d| d.id.as_str());
        let distro = (self.distro.as_ref()).map(|d| {
            d.version
                .as_ref()
                .map_or(d.id.clone(), |v| format!("{}-{v}", d.id))
        });
        let (kind, namespace, version, epoch) = match self.stored.lock.inputs.backend {
            Backend::Dpkg => (
                "deb",
                Some(id.unwrap_or("debian")),
                package.version.as_str(),
                None,
            ),
            Backend::Rpm => match package.version.split_once(':') {
                Some((epoch, rest)) => ("rpm", id, rest, Some(epoch)),
                None => ("rpm", id, package.version.as_str(), None),
            },
        };
        let mut purl = format!("pkg:{kind}/");
        if let Some(namespace) = namespace {
            purl += &encode(namespace, "");
            purl.push('/');
        }
        purl += &format!("{}@{}", encode(&package.name, ""), encode(version, ":"));
        // Qualifiers in key order, as the spec asks.
        let qualifiers = [
            ("arch", Some(package.arch.as_str())),
            ("distro", distro.as_deref()),
            ("epoch", epoch),
        ];
        let qualifiers: Vec<String> = (qualifiers.iter())
            .filter_map(|(key, value)| Some(format!("{key}={}", encode((*value)?, ""))))
            .collect();
        format!("{purl}?{}", qualifiers.join("&"))
    }
}

/// `text` percent-encoded but for letters, digits, `.-_~` and the characters of `keep`.
fn encode(text: &str, keep: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let c = char::from(byte);
        if c.is_ascii_alphanumeric() || ".-_~".contains(c) || (byte < 0x80 && keep.contains(c)) {
            out.push(c);
        } else {
            out += &format!("%{byte:02X}");
        }
    }
    out
}
