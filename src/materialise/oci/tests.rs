//! The oci format through [`materialise`]: a sysroot in a tempdir, a lock built in code,
//! and every digest and size of the layout recomputed from the bytes on disk.

use crate::materialise::tests::{Member, members_of};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::lock::{Container, FileEntry, FileKind};
use crate::materialise::plan::tests::{entry, file, link, lock_of};
use crate::materialise::{Format, Options, Outcome, Sources, materialise};

const MTIME: u64 = 1_700_000_000;
const CAPS: &str = "0100000200200000000000000000000000000000";

fn contents() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("/etc/hostname", b"web\n"),
        ("/usr/sbin/nginx", b"\x7fELF nginx"),
        ("/usr/bin/ping", b"\x7fELF ping"),
    ]
}

/// A lock with a file, a hardlink, a symlink, a capability, a fifo and a `/dev` with a
/// node, a link and a folder, for the flavor `[is: ARCH]`.
fn test_lock(arch: &str) -> Lock {
    let mut files = vec![
        entry("/", FileKind::Dir),
        entry("/etc", FileKind::Dir),
        entry("/usr", FileKind::Dir),
        entry("/usr/bin", FileKind::Dir),
        entry("/usr/sbin", FileKind::Dir),
        entry("/run", FileKind::Dir),
        entry("/dev", FileKind::Dir),
        entry("/dev/pts", FileKind::Dir),
        FileEntry {
            device: Some((1, 3)),
            mode: 0o666,
            ..entry("/dev/null", FileKind::Char)
        },
        link("/dev/fd", FileKind::Symlink, "/proc/self/fd"),
        link(
            "/usr/sbin/nginx-alias",
            FileKind::Hardlink,
            "/usr/sbin/nginx",
        ),
        link("/usr/bin/sh", FileKind::Symlink, "ping"),
        entry("/run/initctl", FileKind::Fifo),
    ];
    for (path, content) in contents() {
        let mut f = file(path, content);
        if path == "/usr/bin/ping" {
            f.mode = 0o755;
            f.caps = Some(CAPS.to_string());
        }
        files.push(f);
    }
    let mut lock = lock_of(files);
    lock.flavor = format!("[!kernel,openvz is: {arch}]");
    lock.cmd = ["/usr/sbin/nginx", "-g", "daemon off;"]
        .map(String::from)
        .to_vec();
    lock
}

struct Fixture {
    dir: tempfile::TempDir,
    sources: Sources,
    lock: Lock,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let sysroot = dir.path().join("sysroot");
        for (path, content) in contents() {
            let host = sysroot.join(&path[1..]);
            fs::create_dir_all(host.parent().unwrap()).unwrap();
            fs::write(host, content).unwrap();
        }
        fs::create_dir(dir.path().join("outs")).unwrap();
        Fixture {
            dir,
            sources: Sources {
                sysroot,
                pool: Vec::new(),
                blobs: None,
                unpacked: None,
            },
            lock: test_lock("x86_64"),
        }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("outs").join(name)
    }

    fn run(&self, out: &Path) -> Result<Outcome, MaterialiseError> {
        self.run_tagged(out, Tag::default())
    }

    fn run_tagged(&self, out: &Path, tag: Tag) -> Result<Outcome, MaterialiseError> {
        let opts = Options {
            mtime: MTIME,
            ..Options::default()
        };
        let format = Format::Oci(tag);
        materialise(&self.lock, "lock-1", &self.sources, &format, out, &opts)
    }

    fn outs(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.path().join("outs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The blob a descriptor points at, after checking its digest and size.
fn blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(sha256(&bytes), digest, "digest of {digest}");
    assert_eq!(descriptor["size"], json!(bytes.len()), "size of {digest}");
    bytes
}

/// Every file under `dir` (relative path -> bytes).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

#[test]
fn the_layout_holds_an_index_a_manifest_a_config_and_one_layer() {
    let fx = Fixture::new();
    let out = fx.out("web-oci");
    let outcome = fx.run(&out).unwrap();
    assert!(outcome.built);
    assert_eq!(fx.outs(), [".web-oci.appliance-stamp", "web-oci"]);
    let files = tree(&out);
    let names: Vec<&str> = files.keys().map(|p| p.to_str().unwrap()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(names[3..], ["index.json", "oci-layout"]);
    assert!(names[..3].iter().all(|n| n.starts_with("blobs/sha256/")));
    assert_eq!(
        json_file(&out.join("oci-layout")),
        json!({"imageLayoutVersion": "1.0.0"})
    );

    let index = json_file(&out.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let descriptor = &manifests[0];
    assert_eq!(
        descriptor["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        descriptor["annotations"],
        json!({"org.opencontainers.image.ref.name": "latest"})
    );
    assert_eq!(
        descriptor["platform"],
        json!({"architecture": "amd64", "os": "linux"})
    );

    let manifest: Value = serde_json::from_slice(&blob(&out, descriptor)).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], descriptor["mediaType"]);
    assert_eq!(
        manifest["annotations"],
        json!({"org.opencontainers.image.title": "test", "org.opencontainers.image.version": "1.0"})
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let layer = blob(&out, &layers[0]);
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(layer.as_slice())
        .read_to_end(&mut tar_bytes)
        .unwrap();

    let config: Value = serde_json::from_slice(&blob(&out, &manifest["config"])).unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert!(config.get("variant").is_none());
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        config["config"],
        json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/usr/sbin/nginx", "-g", "daemon off;"],
        })
    );
    assert_eq!(
        config["rootfs"],
        json!({"type": "layers", "diff_ids": [sha256(&tar_bytes)]})
    );
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["created"], config["created"]);
    assert_eq!(
        history[0]["comment"],
        "test=1.0[!kernel,openvz is: x86_64], lock lock-1"
    );

    // The layer is the tar format's stream less the device node.
    let members: BTreeMap<String, Member> = members_of(tar_bytes.as_slice()).into_iter().collect();
    assert!(!members.contains_key("./dev/null"), "devices stay out");
    assert_eq!(members.len(), fx.lock.files.len() - 1);
    assert_eq!(outcome.files, members.len() - 1, "the root not counted");
    for name in ["./", "./dev/", "./dev/pts/", "./dev/fd", "./run/initctl"] {
        assert!(members.contains_key(name), "{name}");
    }
    let ping = &members["./usr/bin/ping"];
    assert_eq!(ping.content, b"\x7fELF ping");
    assert_eq!(ping.mtime, MTIME);
    assert_eq!(
        ping.caps.as_deref(),
        Some(hex::decode(CAPS).unwrap().as_slice())
    );
    assert_eq!(members["./usr/sbin/nginx-alias"].kind, tar::EntryType::Link);
    assert_eq!(members["./run/initctl"].kind, tar::EntryType::Fifo);
}

#[test]
fn two_runs_give_the_same_bytes_and_a_rerun_replaces_the_layout() {
    let fx = Fixture::new();
    let (one, two) = (fx.out("one"), fx.out("two"));
    fx.run(&one).unwrap();
    fx.run(&two).unwrap();
    let first = tree(&one);
    assert_eq!(first, tree(&two));
    fx.run(&one).unwrap();
    assert_eq!(first, tree(&one), "rebuilt in place, nothing left over");
    assert_eq!(
        fx.outs(),
        [".one.appliance-stamp", ".two.appliance-stamp", "one", "two"]
    );
}

#[test]
fn without_a_cmd_the_config_has_none() {
    let mut fx = Fixture::new();
    fx.lock.cmd.clear();
    let out = fx.out("o");
    fx.run(&out).unwrap();
    let index = json_file(&out.join("index.json"));
    let manifest: Value = serde_json::from_slice(&blob(&out, &index["manifests"][0])).unwrap();
    let config: Value = serde_json::from_slice(&blob(&out, &manifest["config"])).unwrap();
    assert!(config["config"].get("Cmd").is_none(), "{config}");
}

#[test]
fn container_settings_fill_the_config_in_the_spec_s_order_and_the_tag_names_the_image() {
    let mut fx = Fixture::new();
    fx.lock.container = Container {
        user: Some("www-data:www-data".into()),
        ports: ["80/tcp", "53/udp", "443/tcp"].map(String::from).into(),
        env: [("PATH", "/opt/bin"), ("LANG", "C.UTF-8")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        entrypoint: vec!["/usr/bin/tini".into(), "--".into()],
        workdir: Some("/srv".into()),
        labels: [("tier", "front"), ("org.example.a", "1")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
    };
    let out = fx.out("o");
    fx.run_tagged(&out, Tag::parse("v1.0").unwrap()).unwrap();
    let index = json_file(&out.join("index.json"));
    assert_eq!(
        index["manifests"][0]["annotations"],
        json!({"org.opencontainers.image.ref.name": "v1.0"})
    );
    let manifest: Value = serde_json::from_slice(&blob(&out, &index["manifests"][0])).unwrap();
    let config = String::from_utf8(blob(&out, &manifest["config"])).unwrap();
    // The raw text, since the order is the point: the specification's, maps sorted.
    let expected = concat!(
        r#""config":{"User":"www-data:www-data","#,
        r#""ExposedPorts":{"443/tcp":{},"53/udp":{},"80/tcp":{}},"#,
        r#""Env":["LANG=C.UTF-8","PATH=/opt/bin"],"#,
        r#""Entrypoint":["/usr/bin/tini","--"],"#,
        r#""Cmd":["/usr/sbin/nginx","-g","daemon off;"],"#,
        r#""WorkingDir":"/srv","#,
        r#""Labels":{"org.example.a":"1","tier":"front"}},"#,
    );
    assert!(config.contains(expected), "{config}");
}

#[test]
fn platforms_follow_the_flavors_instruction_set() {
    let of = |arch: &str| Platform::of(&format!("[!kernel,openvz is: {arch}]")).unwrap();
    assert_eq!(
        (of("x86_64").architecture, of("x86_64").variant),
        ("amd64", None)
    );
    assert_eq!(of("aarch64").architecture, "arm64");
    assert_eq!(of("i686").architecture, "386");
    assert_eq!(
        (of("armv7l").architecture, of("armv7l").variant),
        ("arm", Some("v7"))
    );
    assert_eq!(of("ppc64le").architecture, "ppc64le");
    assert_eq!(of("x86_64").os, "linux");

    let mut fx = Fixture::new();
    fx.lock = test_lock("aarch64");
    let out = fx.out("arm");
    fx.run(&out).unwrap();
    let index = json_file(&out.join("index.json"));
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "arm64");
}

#[test]
fn locks_an_image_cannot_carry_are_refused_before_anything_is_written() {
    let mut fx = Fixture::new();
    let out = fx.dir.path().join("never/out");
    fx.lock.flavor = "[x]".to_string();
    let err = fx.run(&out).unwrap_err();
    assert!(
        matches!(&err, MaterialiseError::Platform { flavor, .. } if flavor == "[x]"),
        "{err}"
    );

    fx.lock = test_lock("x86_64");
    fx.lock
        .files
        .push(file("/etc/.wh.hostname", b"gone in any unpacker"));
    fx.lock.normalise();
    let err = fx.run(&out).unwrap_err();
    assert!(
        matches!(&err, MaterialiseError::Whiteout { path } if path == "/etc/.wh.hostname"),
        "{err}"
    );
    assert!(
        !fx.dir.path().join("never").exists(),
        "something was written"
    );
}

#[test]
fn drift_leaves_the_previous_layout_alone() {
    let fx = Fixture::new();
    let out = fx.out("o");
    fx.run(&out).unwrap();
    let before = tree(&out);
    fs::write(fx.sources.sysroot.join("usr/sbin/nginx"), b"\x7fELF NGINX").unwrap();
    let err = fx.run(&out).unwrap_err();
    assert!(matches!(err, MaterialiseError::Drift { .. }), "{err}");
    assert_eq!(tree(&out), before);
    assert_eq!(fx.outs(), [".o.appliance-stamp", "o"]);
}

#[test]
fn created_times_are_rfc3339_in_utc() {
    assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400).unwrap(), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_709_251_199).unwrap(), "2024-02-29T23:59:59Z");
    assert_eq!(rfc3339(4_107_542_400).unwrap(), "2100-03-01T00:00:00Z");
    assert_eq!(rfc3339(253_402_300_799).unwrap(), "9999-12-31T23:59:59Z");
    assert_eq!(rfc3339(253_402_300_800), None);
}

#[test]
fn hashing_counts_only_what_the_inner_writer_took() {
    /// Takes at most three bytes a call, as a pipe or a socket may.
    struct Trickle(Vec<u8>);
    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut hashing = Hashing::new(Trickle(Vec::new()));
    hashing.write_all(b"hello, layer").unwrap();
    let (inner, blob) = hashing.finish();
    assert_eq!(inner.0, b"hello, layer");
    assert_eq!(blob.size, 12);
    assert_eq!(blob.name(), sha256(b"hello, layer"));
}

#[test]
fn whiteouts_are_told_by_the_last_name_only() {
    assert!(is_whiteout("/etc/.wh.x"));
    assert!(is_whiteout("/.wh..wh..opq"));
    assert!(!is_whiteout("/etc/.wh/x"));
    assert!(!is_whiteout("/etc/a.wh.x"));
}

#[test]
fn if_newer_skips_a_layout_built_from_the_same_lock() {
    let fx = Fixture::new();
    let out = fx.out("o");
    let opts = Options {
        if_newer: true,
        mtime: MTIME,
        ..Options::default()
    };
    let run = || {
        materialise(
            &fx.lock,
            "lock-1",
            &fx.sources,
            &Format::Oci(Tag::default()),
            &out,
            &opts,
        )
    };
    assert!(run().unwrap().built);
    assert!(!run().unwrap().built, "current");
    // The host files it was built from are part of what it is current with.
    fs::remove_dir_all(&fx.sources.sysroot).unwrap();
    assert!(matches!(run(), Err(MaterialiseError::Drift { .. })));
}
