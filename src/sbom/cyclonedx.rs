//! The CycloneDX 1.6 JSON document: our own serde structs for the fields we fill (see
//! `docs/sbom.md`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Sbom;

/// The appliance's own `bom-ref`; a package's is its package URL, which cannot clash.
const APPLIANCE: &str = "appliance";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Document {
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata,
    components: Vec<Component>,
    dependencies: Vec<Dependency>,
}

#[derive(Serialize)]
struct Metadata {
    timestamp: String,
    tools: Tools,
    component: Component,
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<Component>,
}

#[derive(Serialize)]
struct Component {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    name: String,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<License>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct License {
    expression: String,
}

#[derive(Clone, Serialize)]
struct Property {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    reference: String,
    depends_on: Vec<String>,
}

/// The CycloneDX document of `sbom`.
pub(super) fn document(sbom: &Sbom) -> Document {
    let lock = &sbom.stored.lock;
    let (tool, version) = Sbom::tool();
    let purls: Vec<String> = lock.packages.iter().map(|p| sbom.purl(p)).collect();
    let properties = vec![
        Property {
            name: "appliance:flavor",
            value: lock.flavor.clone(),
        },
        Property {
            name: "appliance:lock-id",
            value: sbom.stored.lock_id.clone(),
        },
        Property {
            name: "appliance:address",
            value: sbom.address(),
        },
    ];
    let components = (lock.packages.iter().zip(&purls).zip(&sbom.licenses))
        .map(|((package, purl), license)| Component {
            kind: "library",
            bom_ref: Some(purl.clone()),
            name: package.name.clone(),
            version: package.version.clone(),
            purl: Some(purl.clone()),
            licenses: (license.iter())
                .map(|l| License {
                    expression: l.text.clone(),
                })
                .collect(),
            properties: Vec::new(),
        })
        .collect();
    // What brought each package in, as `sbom --format spdx`'s DEPENDS_ON says it.
    let mut depends: BTreeMap<String, Vec<String>> = BTreeMap::new();
    depends.insert(APPLIANCE.to_string(), Vec::new());
    for (package, purl) in lock.packages.iter().zip(&purls) {
        depends.entry(purl.clone()).or_default();
        let by = sbom.brought_by(package);
        let froms = by.iter().map(|at| purls[*at].as_str());
        for from in froms.chain(by.is_empty().then_some(APPLIANCE)) {
            depends
                .entry(from.to_string())
                .or_default()
                .push(purl.clone());
        }
    }
    Document {
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: format!("urn:uuid:{}", sbom.uuid()),
        version: 1,
        metadata: Metadata {
            timestamp: sbom.created(),
            tools: Tools {
                components: vec![Component {
                    kind: "application",
                    bom_ref: None,
                    name: tool.to_string(),
                    version: version.to_string(),
                    purl: None,
                    licenses: Vec::new(),
                    properties: Vec::new(),
                }],
            },
            component: Component {
                kind: "operating-system",
                bom_ref: Some(APPLIANCE.to_string()),
                name: lock.group.clone(),
                version: sbom.version(),
                purl: None,
                licenses: Vec::new(),
                properties: properties.clone(),
            },
            properties,
        },
        components,
        dependencies: (depends.into_iter())
            .map(|(reference, depends_on)| Dependency {
                reference,
                depends_on,
            })
            .collect(),
    }
}
