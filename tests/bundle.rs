//! `appliance export` and `appliance import` end to end through the binary, in a
//! hermetic world: a fake sysroot whose installed packages' archives only a local apt
//! repository (a `file:` source under a private `APT_CONFIG`) has, and a pool holding one
//! more package. The proof: a bundle imported into a fresh workspace materialises, with
//! `--sysroot` an empty folder, the very tar the first workspace makes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{World, build_deb, fake_workspace, refused, succeeds, travel};

/// The hostname the group writes.
const HOSTNAME: &str = "bundled";

/// A world whose store holds `base` for openvz: bash, libc6 and base-files installed,
/// coreutils from the pool folder `debs`; and a local apt repository holding the
/// installed packages' archives, built from `archived` (name, files) where it differs.
struct Bundled {
    world: World,
    apt_config: PathBuf,
}

impl Bundled {
    fn new(archived: &[(&str, travel::Files)]) -> Bundled {
        let world = travel::compiled(HOSTNAME, false);

        let apt = world.dir.path().join("apt");
        let repo = apt.join("repo");
        fs::create_dir_all(&repo).unwrap();
        for (name, version, files) in travel::INSTALLED {
            let files = (archived.iter())
                .find(|(n, _)| n == name)
                .map_or(*files, |(_, f)| *f);
            build_deb(&repo, name, version, files, &[], &[]);
        }
        let index = Command::new("dpkg-scanpackages")
            .args(["--multiversion", "."])
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(
            index.status.success(),
            "{}",
            String::from_utf8_lossy(&index.stderr)
        );
        fs::write(repo.join("Packages"), index.stdout).unwrap();
        for dir in ["lists/partial", "cache/archives/partial", "parts"] {
            fs::create_dir_all(apt.join(dir)).unwrap();
        }
        fs::write(apt.join("status"), "").unwrap();
        fs::write(
            apt.join("sources.list"),
            format!("deb [trusted=yes] file:{} ./\n", repo.display()),
        )
        .unwrap();
        let a = apt.display();
        let apt_config = apt.join("apt.conf");
        fs::write(
            &apt_config,
            format!(
                "Dir::Etc::SourceList \"{a}/sources.list\";\nDir::Etc::SourceParts \"{a}/parts\";\n\
                 Dir::State::Lists \"{a}/lists\";\nDir::State::status \"{a}/status\";\n\
                 Dir::Cache \"{a}/cache\";\nAPT::Architecture \"amd64\";\n"
            ),
        )
        .unwrap();
        // The folders above must be searchable by apt's _apt user.
        let mut up = Some(apt.as_path());
        while let Some(dir) = up.filter(|d| d.starts_with(world.dir.path())) {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
            up = dir.parent();
        }
        let update = Command::new("apt-get")
            .args(["-q", "update"])
            .env("APT_CONFIG", &apt_config)
            .output()
            .unwrap();
        assert!(
            update.status.success(),
            "{}",
            String::from_utf8_lossy(&update.stderr)
        );
        Bundled { world, apt_config }
    }

    /// `appliance export ARGS...` in the world's workspace, with the local apt.
    fn export(&self, args: &[&str]) -> Command {
        let mut all = vec!["export"];
        all.extend_from_slice(args);
        let mut command = self.world.command(&all);
        command.env("APT_CONFIG", &self.apt_config);
        command
    }
}

/// A fresh workspace (the same groups and flavors, no store) and an empty sysroot.
fn elsewhere(w: &World) -> (PathBuf, PathBuf) {
    let ws = w.dir.path().join("elsewhere");
    fake_workspace(&ws, &[("base", &travel::group(HOSTNAME))]);
    let empty = w.dir.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    (ws, empty)
}

/// Checks that `ws`, whose sysroot is the empty folder `empty`, materialises the very tar
/// the world makes (from its host and pool).
fn same_tar_elsewhere(w: &World, ws: &Path, empty: &Path) {
    let tar = [
        "materialise",
        "base",
        "--flavor",
        "openvz",
        "--format",
        "tar",
    ];
    w.ok(&[&tar[..], &["--pool", "debs", "-o", "one.tar"]].concat());
    succeeds(there(ws, empty, &[&tar[..], &["-o", "two.tar"]].concat()));
    let one = fs::read(w.ws.join("one.tar")).unwrap();
    assert!(
        one == fs::read(ws.join("two.tar")).unwrap(),
        "the tars differ"
    );
}

/// `appliance --sysroot EMPTY ARGS...` in `ws`.
fn there(ws: &Path, empty: &Path, args: &[&str]) -> Command {
    let mut all = vec!["--sysroot", empty.to_str().unwrap()];
    all.extend_from_slice(args);
    common::command(ws, &all)
}

/// Every file below `dir`, relative, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        let Ok(listing) = fs::read_dir(&at) else {
            continue;
        };
        for entry in listing {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                found.push((name, fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

/// The bundle's tar members, in order.
fn members(bundle: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(fs::File::open(bundle).unwrap());
    (archive.entries().unwrap())
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// Writes `members` as a tar at `path`.
fn write_members(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut builder = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, bytes) in members {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        if name.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
        }
        header.set_cksum();
        builder.append(&header, &bytes[..]).unwrap();
    }
    builder.finish().unwrap();
}

/// The manifest of the bundle's members.
fn manifest(members: &[(String, Vec<u8>)]) -> serde_json::Value {
    let index: serde_json::Value = serde_json::from_slice(&members[3].1).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let bytes = &members.iter().find(|(n, _)| *n == name).unwrap().1;
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn an_imported_bundle_materialises_the_same_tar_with_an_empty_sysroot() {
    let b = Bundled::new(&[]);
    let w = &b.world;
    let exported = succeeds(b.export(&["base", "-o", "base.bundle", "--pool", "debs", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(json["archives"], 4, "{json}");
    // The three installed packages come from apt; coreutils from the pool.
    let downloaded = json["downloaded"].as_array().unwrap();
    assert_eq!(downloaded.len(), 3, "{json}");
    assert!(downloaded.contains(&"bash=5.2.15-2+b2".into()), "{json}");
    let bundle = w.ws.join("base.bundle");
    assert_eq!(
        json["bytes"],
        fs::metadata(&bundle).unwrap().len(),
        "{json}"
    );

    // The layout: the documents, then the manifest, the empty config, and the layers.
    let members = members(&bundle);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..4],
        ["blobs/", "blobs/sha256/", "oci-layout", "index.json"]
    );
    let manifest = manifest(&members);
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.appliance.lock.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    let types: Vec<&str> = layers
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(types[0], "application/vnd.appliance.lock.v1+json");
    assert_eq!(types[1..5], ["application/vnd.debian.binary-package"; 4]);
    // The group's /etc/hostname is a blob (no archive holds it).
    assert!(
        types[5..]
            .iter()
            .all(|t| *t == "application/vnd.appliance.blob.v1"),
        "{types:?}"
    );
    let hostname = blake3::hash(b"bundled\n").to_hex().to_string();
    assert!(
        layers
            .iter()
            .any(|l| l["annotations"]["dev.appliance.blob.blake3"] == hostname.as_str()),
        "{manifest}"
    );
    assert_eq!(
        layers[1]["annotations"]["dev.appliance.package.name"],
        "base-files"
    );
    // The same lock gives the same bytes, apt's archives or the pool's.
    succeeds(b.export(&["base", "-o", "again.bundle", "--pool", "debs"]));
    assert!(fs::read(w.ws.join("again.bundle")).unwrap() == fs::read(&bundle).unwrap());

    let (ws, empty) = elsewhere(w);
    let bundle = bundle.to_str().unwrap();
    let imported = succeeds(there(&ws, &empty, &["import", bundle]));
    assert!(
        imported.starts_with("base=1.0-1[!kernel,openvz is: x86_64] stored: lock "),
        "{imported}"
    );
    let blobs = format!(", 4 archives, {} blobs\n", types.len() - 5);
    assert!(imported.ends_with(&blobs), "{imported}");
    let again = succeeds(there(&ws, &empty, &["import", bundle, "--json"]));
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["unchanged"], true, "{again}");
    same_tar_elsewhere(w, &ws, &empty);
}

/// An installed package whose version no archive has any more (a Debian point release
/// moved on) goes in as its files, read from the host and checked; the packages after it
/// (base-files is the first) are still downloaded, and the bundle still materialises the
/// same tar where nothing is installed.
#[test]
fn an_installed_package_no_archive_has_goes_in_as_its_files() {
    let b = Bundled::new(&[]);
    let w = &b.world;
    let repo = w.dir.path().join("apt/repo");
    fs::remove_file(repo.join("base-files_12.4+deb12u5_amd64.deb")).unwrap();
    let out = b
        .export(&["base", "-o", "base.bundle", "--pool", "debs", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: no archive of base-files=12.4+deb12u5 (")
            && stderr.contains("its files go in as blobs read from the host")
            && stderr.matches("warning: no archive").count() == 1,
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["archives"], 3, "{json}");
    assert_eq!(
        json["downloaded"].as_array().map(Vec::len),
        Some(2),
        "{json}"
    );
    // What was downloaded is kept in the store's pool: the next export fetches nothing,
    // and writes the same bundle.
    let pooled = fs::read_dir(w.ws.join("store/pool")).unwrap().count();
    assert!(pooled >= 2, "{pooled}");
    let again = succeeds(b.export(&["base", "-o", "again.bundle", "--pool", "debs", "--json"]));
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["downloaded"], serde_json::json!([]), "{again}");
    assert_eq!(
        fs::read(w.ws.join("base.bundle")).unwrap(),
        fs::read(w.ws.join("again.bundle")).unwrap()
    );

    let (ws, empty) = elsewhere(w);
    let bundle = w.ws.join("base.bundle");
    succeeds(there(&ws, &empty, &["import", bundle.to_str().unwrap()]));
    same_tar_elsewhere(w, &ws, &empty);
}

#[test]
fn export_refuses_an_archive_that_is_not_the_locked_one() {
    // apt's bash holds other bytes than the host's bash the lock was made from.
    let b = Bundled::new(&[("bash", &[("/bin/bash", "#!another bash\n")])]);
    let err = refused(b.export(&["base", "-o", "base.bundle", "--pool", "debs"]));
    assert!(
        err.contains("bash_5.2.15-2+b2_amd64.deb of bash 5.2.15-2+b2"),
        "{err}"
    );
    assert!(
        err.contains("lacks the locked content of /usr/bin/bash"),
        "{err}"
    );
    assert!(!b.world.ws.join("base.bundle").exists());
    // A reference to no lock is refused, naming it, with nothing written.
    let err = refused(b.export(&["nope", "-o", "base.bundle"]));
    assert!(err.contains("`nope`"), "{err}");
    assert!(!b.world.ws.join("base.bundle").exists());
    // A user's file is never replaced.
    fs::write(b.world.ws.join("mine"), "mine").unwrap();
    let err = refused(b.export(&["base", "-o", "mine", "--pool", "debs"]));
    assert!(err.contains("appliance did not make it"), "{err}");
    assert_eq!(fs::read(b.world.ws.join("mine")).unwrap(), b"mine");
}

#[test]
fn import_refuses_a_damaged_bundle_and_stores_nothing() {
    let b = Bundled::new(&[]);
    let w = &b.world;
    succeeds(b.export(&["base", "-o", "base.bundle", "--pool", "debs"]));
    let good = members(&w.ws.join("base.bundle"));
    let manifest = manifest(&good);
    let layer = |i: usize| {
        let digest = manifest["layers"][i]["digest"].as_str().unwrap();
        format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
    };
    let (lock, bash) = (layer(0), layer(2));
    assert_eq!(
        manifest["layers"][2]["annotations"]["dev.appliance.package.name"],
        "bash"
    );
    let (ws, empty) = elsewhere(w);
    let bad = w.dir.path().join("bad.bundle");
    let refuses = |what: &str, expected: &[&str]| {
        let err = refused(there(&ws, &empty, &["import", bad.to_str().unwrap()]));
        for part in expected {
            assert!(err.contains(part), "{what}: {err}");
        }
        assert!(
            files(&ws.join("store")).is_empty(),
            "{what}: the store changed"
        );
    };

    let whole = fs::read(w.ws.join("base.bundle")).unwrap();
    fs::write(&bad, &whole[..whole.len() / 2]).unwrap();
    refuses("cut short", &["cut short"]);
    // Cut where a member ends: every member reads whole, the end-of-archive blocks are
    // gone.
    let members_end = whole.iter().rposition(|&b| b != 0).unwrap() / 512 * 512 + 512;
    fs::write(&bad, &whole[..members_end]).unwrap();
    refuses("cut at a member's end", &["the bundle", "cut short"]);

    let mut edited = good.clone();
    let at = edited.iter().position(|(n, _)| *n == bash).unwrap();
    let last = edited[at].1.len() - 3;
    edited[at].1[last] ^= 1;
    write_members(&bad, &edited);
    refuses("an edited archive", &[&bash, "edited or damaged"]);

    let missing: Vec<_> = good.iter().filter(|(n, _)| *n != bash).cloned().collect();
    write_members(&bad, &missing);
    refuses(
        "a missing archive",
        &["the archive of bash 5.2.15-2+b2 (amd64)", "missing"],
    );

    let mut edited = good.clone();
    let at = edited.iter().position(|(n, _)| *n == lock).unwrap();
    let text = String::from_utf8(edited[at].1.clone()).unwrap();
    edited[at].1 = text
        .replacen("\"mode\":420", "\"mode\":511", 1)
        .into_bytes();
    assert_ne!(edited[at].1, good[at].1);
    write_members(&bad, &edited);
    refuses("an edited lock", &[&lock, "edited or damaged"]);

    let mut extra = good.clone();
    let junk = b"junk".to_vec();
    let name = format!(
        "blobs/sha256/{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&junk))
    );
    extra.push((name.clone(), junk));
    write_members(&bad, &extra);
    refuses("an extra member", &[&name, "more than the lock needs"]);

    // The untouched bundle goes in.
    succeeds(there(
        &ws,
        &empty,
        &["import", w.ws.join("base.bundle").to_str().unwrap()],
    ));
}
