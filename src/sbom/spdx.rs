//! The SPDX 2.3 JSON document: our own serde structs for the fields we fill (see
//! `docs/sbom.md`), in the order the specification lists them.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::Sbom;
use super::license::id_safe;

/// The document's own SPDX id, and the appliance's package's.
const DOCUMENT: &str = "SPDXRef-DOCUMENT";
const APPLIANCE: &str = "SPDXRef-Appliance";
/// What SPDX writes for a value nobody asserted.
const NOASSERTION: &str = "NOASSERTION";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Document {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<Package>,
    relationships: Vec<Relationship>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    has_extracted_licensing_infos: Vec<ExtractedLicense>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    name: String,
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    version_info: String,
    download_location: &'static str,
    files_analyzed: bool,
    license_concluded: String,
    license_declared: String,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtractedLicense {
    license_id: String,
    name: String,
    extracted_text: String,
}

/// The SPDX document of `sbom`.
pub(super) fn document(sbom: &Sbom) -> Document {
    let lock = &sbom.stored.lock;
    let ids = package_ids(sbom);
    let (tool, version) = Sbom::tool();
    let mut packages = vec![Package {
        name: lock.group.clone(),
        spdx_id: APPLIANCE.to_string(),
        version_info: sbom.version(),
        download_location: NOASSERTION,
        files_analyzed: false,
        license_concluded: NOASSERTION.to_string(),
        license_declared: NOASSERTION.to_string(),
        copyright_text: NOASSERTION,
        comment: Some(format!(
            "appliance {}: flavor {}, lock id {}",
            sbom.address(),
            lock.flavor,
            sbom.stored.lock_id
        )),
        external_refs: Vec::new(),
        primary_package_purpose: Some("OPERATING-SYSTEM"),
    }];
    let mut relationships = vec![relationship(DOCUMENT, "DESCRIBES", APPLIANCE)];
    let mut refs = BTreeMap::new();
    for ((package, license), id) in lock.packages.iter().zip(&sbom.licenses).zip(&ids) {
        let expression = license.as_ref().map_or(NOASSERTION.to_string(), |l| {
            refs.extend(l.refs.iter().cloned());
            l.text.clone()
        });
        packages.push(Package {
            name: package.name.clone(),
            spdx_id: id.clone(),
            version_info: package.version.clone(),
            download_location: NOASSERTION,
            files_analyzed: false,
            license_concluded: expression.clone(),
            license_declared: expression,
            copyright_text: NOASSERTION,
            comment: None,
            external_refs: vec![ExternalRef {
                reference_category: "PACKAGE-MANAGER",
                reference_type: "purl",
                reference_locator: sbom.purl(package),
            }],
            primary_package_purpose: None,
        });
        relationships.push(relationship(APPLIANCE, "CONTAINS", id));
    }
    // What brought each package in: the group that named it, or the package whose
    // dependency it is; an essential package, Debian's own rule.
    for (package, id) in lock.packages.iter().zip(&ids) {
        let by = sbom.brought_by(package);
        let froms = by.iter().map(|at| ids[*at].as_str());
        for from in froms.chain(by.is_empty().then_some(APPLIANCE)) {
            relationships.push(relationship(from, "DEPENDS_ON", id));
        }
    }
    Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: DOCUMENT,
        name: sbom.address(),
        document_namespace: sbom.namespace(),
        creation_info: CreationInfo {
            created: sbom.created(),
            creators: vec![format!("Tool: {tool}-{version}")],
        },
        packages,
        relationships,
        has_extracted_licensing_infos: (refs.into_iter())
            .map(|(id, name)| ExtractedLicense {
                extracted_text: format!(
                    "The license a Debian machine-readable copyright file or an RPM header \
                     names `{name}`, which is no SPDX license id; its text is in each \
                     package's copyright file."
                ),
                license_id: id,
                name,
            })
            .collect(),
    }
}

fn relationship(from: &str, kind: &'static str, to: &str) -> Relationship {
    Relationship {
        spdx_element_id: from.to_string(),
        relationship_type: kind,
        related_spdx_element: to.to_string(),
    }
}

/// Each package's SPDX id, `SPDXRef-Package-NAME-ARCH` with every character SPDX ids
/// cannot hold (`+` of `libstdc++6`) a `-`; a number follows one that two packages
/// would share.
fn package_ids(sbom: &Sbom) -> Vec<String> {
    let mut taken = HashSet::new();
    (sbom.stored.lock.packages.iter())
        .map(|p| {
            let base = format!(
                "SPDXRef-Package-{}",
                id_safe(&format!("{}-{}", p.name, p.arch))
            );
            let mut id = base.clone();
            let mut n = 1;
            while !taken.insert(id.clone()) {
                n += 1;
                id = format!("{base}-{n}");
            }
            id
        })
        .collect()
}
