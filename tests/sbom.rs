//! `appliance sbom` end to end through the binary, over a hermetic world: a fake
//! sysroot whose packages carry an os-release and copyright files, one of them
//! machine-readable (DEP-5).

mod common;

use std::fs;
use std::process::Command;

use common::{FakePackage, World};
use md5::{Digest, Md5};
use serde_json::Value;

/// A machine-readable copyright file whose `Files: *` stanza says GPL-2+ or Artistic.
const DEP5: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: base-files

Files: debian/*
License: GPL-3+

Files: *
Copyright: 1995-2024 Someone
License: GPL-2+ or Artistic
";

fn packages() -> Vec<FakePackage> {
    vec![
        FakePackage::new("base-files", "12.4+deb12u5")
            .essential()
            .file(
                "/usr/lib/os-release",
                "PRETTY_NAME=\"Debian\"\nID=debian\nVERSION_ID=\"12\"\n",
            )
            .file("/usr/share/doc/base-files/copyright", DEP5),
        FakePackage::new("libstdc++6", "1:12.2.0-14")
            .file("/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "not really"),
        FakePackage::new("bash", "5.2.15-2+b2")
            .depends("base-files, libstdc++6")
            .file("/bin/bash", "#!fake bash\n")
            .file(
                "/usr/share/doc/bash/copyright",
                "This is bash, by the FSF. GPL-3+.\n",
            ),
    ]
}

fn group(exclude: &str) -> String {
    format!(
        "group base version=\"1.0\" {{\n    flavors openvz\n    package bash\n    {exclude}\n}}\n"
    )
}

/// A world whose store holds revision 1 of `base` for openvz.
fn compiled(exclude: &str) -> World {
    let w = World::new(&packages(), &[("base", &group(exclude))]);
    w.ok(&["compile", "groups/base.kdl", "--offline"]);
    w
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The SPDX package named `name`.
fn spdx_package<'v>(doc: &'v Value, name: &str) -> &'v Value {
    (doc["packages"].as_array().unwrap().iter())
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no package {name} in {doc}"))
}

#[test]
fn spdx_lists_every_package_with_its_purl_and_dep5_license() {
    let w = compiled("");
    let doc = json(&w.ok(&["sbom", "base"]));
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(
        doc["creationInfo"]["creators"][0],
        format!("Tool: appliance-{}", env!("CARGO_PKG_VERSION"))
    );
    let purl = |name: &str| spdx_package(&doc, name)["externalRefs"][0]["referenceLocator"].clone();
    assert_eq!(
        purl("base-files"),
        "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12"
    );
    assert_eq!(
        purl("libstdc++6"),
        "pkg:deb/debian/libstdc%2B%2B6@1:12.2.0-14?arch=amd64&distro=debian-12"
    );
    assert_eq!(
        purl("bash"),
        "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12"
    );
    let base = spdx_package(&doc, "base-files");
    assert_eq!(base["versionInfo"], "12.4+deb12u5");
    assert_eq!(base["licenseDeclared"], "GPL-2.0-or-later OR Artistic-1.0");
    assert_eq!(base["licenseConcluded"], "GPL-2.0-or-later OR Artistic-1.0");
    // Not machine-readable, and no copyright file at all.
    assert_eq!(spdx_package(&doc, "bash")["licenseDeclared"], "NOASSERTION");
    assert_eq!(
        spdx_package(&doc, "libstdc++6")["licenseDeclared"],
        "NOASSERTION"
    );
    // The appliance describes everything: the lock id and flavor on its package.
    let root = spdx_package(&doc, "base");
    assert_eq!(root["versionInfo"], "1.0-1");
    let lock_id = json(&w.ok(&["show", "base", "--flavor", "openvz", "--json"]))["lock_id"].clone();
    let comment = root["comment"].as_str().unwrap();
    assert!(comment.contains(lock_id.as_str().unwrap()), "{comment}");
    assert!(comment.contains("[!kernel,openvz is: x86_64]"), "{comment}");
    let relationships = doc["relationships"].as_array().unwrap();
    let has = |from: &str, kind: &str, to: &str| {
        relationships.iter().any(|r| {
            r["spdxElementId"] == from
                && r["relationshipType"] == kind
                && r["relatedSpdxElement"] == to
        })
    };
    assert!(has("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Appliance"));
    let bash = spdx_package(&doc, "bash")["SPDXID"]
        .as_str()
        .unwrap()
        .to_string();
    let libstdc = spdx_package(&doc, "libstdc++6")["SPDXID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(has("SPDXRef-Appliance", "CONTAINS", &libstdc));
    assert!(has("SPDXRef-Appliance", "DEPENDS_ON", &bash));
    assert!(has(&bash, "DEPENDS_ON", &libstdc));
}

#[test]
fn cyclonedx_names_the_appliance_flavor_lock_and_every_package() {
    let w = compiled("");
    let doc = json(&w.ok(&["sbom", "base", "--format", "cyclonedx"]));
    assert_eq!(doc["bomFormat"], "CycloneDX");
    assert_eq!(doc["specVersion"], "1.6");
    let serial = doc["serialNumber"].as_str().unwrap();
    assert!(
        serial.starts_with("urn:uuid:") && serial.len() == 45,
        "{serial}"
    );
    let appliance = &doc["metadata"]["component"];
    assert_eq!(appliance["name"], "base");
    let property = |name: &str| {
        (appliance["properties"].as_array().unwrap().iter())
            .find(|p| p["name"] == name)
            .map(|p| p["value"].clone())
    };
    assert_eq!(
        property("appliance:flavor").unwrap(),
        "[!kernel,openvz is: x86_64]"
    );
    let lock_id = json(&w.ok(&["show", "base", "--flavor", "openvz", "--json"]))["lock_id"].clone();
    assert_eq!(property("appliance:lock-id").unwrap(), lock_id);
    let components = doc["components"].as_array().unwrap();
    let names: Vec<&str> = components
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["base-files", "bash", "libstdc++6"]);
    let base = &components[0];
    assert_eq!(
        base["purl"],
        "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12"
    );
    assert_eq!(
        base["licenses"][0]["expression"],
        "GPL-2.0-or-later OR Artistic-1.0"
    );
}

#[test]
fn the_same_revision_gives_the_same_bytes_and_o_writes_them_as_an_output() {
    let w = compiled("");
    for format in ["spdx", "cyclonedx"] {
        let first = w.ok(&["sbom", "base", "--format", format]);
        let again = w.ok(&["sbom", "base=1.0-1[openvz]", "--format", format]);
        assert_eq!(first, again, "{format}");
        let file = w.ws.join(format!("base.{format}.json"));
        let out = file.to_str().unwrap();
        w.ok(&["sbom", "base", "--format", format, "-o", out]);
        assert_eq!(fs::read_to_string(&file).unwrap(), first);
        // Its own output is replaced; a file appliance did not make is not.
        w.ok(&["sbom", "base", "--format", format, "-o", out]);
    }
    let mine = w.ws.join("notes.json");
    fs::write(&mine, "mine").unwrap();
    let refused = w.fails(&["sbom", "base", "-o", mine.to_str().unwrap()]);
    assert!(refused.contains("appliance did not make it"), "{refused}");
    assert_eq!(fs::read_to_string(&mine).unwrap(), "mine");
    w.ok(&["sbom", "base", "-o", mine.to_str().unwrap(), "--force"]);
    assert!(fs::read_to_string(&mine).unwrap().contains("SPDX-2.3"));
}

#[test]
fn an_unknown_reference_or_format_is_one_error() {
    let w = compiled("");
    let err = w.fails(&["sbom", "base=9.9"]);
    assert!(
        err.contains("`base=9.9`") && err.contains("versions: 1.0"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // clap refuses it, with its own usage exit code.
    let out = w
        .command(&["sbom", "base", "--format", "swid"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown SBOM format `swid`"), "{err}");
}

#[test]
fn an_excluded_copyright_is_read_from_the_host_when_dpkg_vouches_for_it() {
    let w = compiled("exclude \"/usr/share/doc/*\"");
    let copyright = w.sysroot.join("usr/share/doc/base-files/copyright");
    let md5 = hex::encode(Md5::digest(DEP5.as_bytes()));
    fs::write(
        w.sysroot.join("var/lib/dpkg/info/base-files.md5sums"),
        format!("{md5}  usr/share/doc/base-files/copyright\n"),
    )
    .unwrap();
    let license = |w: &World| {
        let doc = json(&w.ok(&["sbom", "base"]));
        spdx_package(&doc, "base-files")["licenseDeclared"].clone()
    };
    assert_eq!(license(&w), "GPL-2.0-or-later OR Artistic-1.0");
    // A copy dpkg did not install is not the package's license.
    fs::write(&copyright, DEP5.replace("GPL-2+ or Artistic", "MIT")).unwrap();
    assert_eq!(license(&w), "NOASSERTION");
}

/// Runs a validator; the test fails, naming it, when it is missing or refuses.
fn validates(mut command: Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| {
        panic!("{what}: cannot run the validator ({e}); .ci/run installs it from PyPI")
    });
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_official_validators_accept_both_documents() {
    let w = compiled("");
    let spdx = w.ws.join("base.spdx.json");
    let cyclonedx = w.ws.join("base.cdx.json");
    w.ok(&["sbom", "base", "-o", spdx.to_str().unwrap()]);
    w.ok(&[
        "sbom",
        "base",
        "--format",
        "cyclonedx",
        "-o",
        cyclonedx.to_str().unwrap(),
    ]);
    let mut pyspdxtools = Command::new("pyspdxtools");
    pyspdxtools.arg("-i").arg(&spdx);
    validates(pyspdxtools, "pyspdxtools");
    // cyclonedx-python-lib's validator, with CycloneDX's own 1.6 JSON schema.
    let mut python = Command::new("python3");
    python.arg("-c").arg(
        "import sys\n\
         from cyclonedx.schema import SchemaVersion\n\
         from cyclonedx.validation.json import JsonStrictValidator\n\
         error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
         sys.exit(str(error) if error else 0)",
    );
    python.arg(&cyclonedx);
    validates(python, "CycloneDX 1.6 schema");
}
