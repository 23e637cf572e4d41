//! End to end on the real machine: `groups/web.kdl` compiled for openvz (nginx, ssh and
//! certificates fetched from apt's lists), materialised as an OCI image layout, and read
//! back by the real `skopeo` and `umoci` (Debian packages `skopeo` and `umoci`). Needs
//! apt lists and Debian's archive, as tests/web.rs does; unpacks rootless when not root.
//! The container statements and `--tag` are tested in a hermetic world (a fake sysroot),
//! read back by the same tools.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use common::{FakePackage, World, example_workspace, is_root, ok};

/// Runs a host tool, failing the test with its stderr (or with the package to install).
fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}): install the Debian package `{tool}`"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
fn web_as_an_oci_image_reads_back_with_skopeo_and_unpacks_with_umoci() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    example_workspace(ws);
    let compiled = ok(ws, &["compile", "groups/web.kdl", "--flavor", "openvz"]);
    assert!(
        compiled.contains("web=1.0-1[!kernel,openvz is: x86_64]"),
        "{compiled}"
    );
    let shown: Value =
        serde_json::from_str(&ok(ws, &["show", "web", "--flavor", "openvz", "--json"])).unwrap();
    let cmd = &shown["lock"]["cmd"];
    assert_eq!(
        *cmd,
        serde_json::json!(["/usr/sbin/nginx", "-g", "daemon off;"])
    );

    let materialise = |out: &str| {
        let start = Instant::now();
        let said = ok(
            ws,
            &[
                "materialise",
                "web",
                "--flavor",
                "openvz",
                "--format",
                "oci",
                "-o",
                out,
            ],
        );
        let took = start.elapsed();
        let size: usize = tree(&ws.join(out)).values().map(Vec::len).sum();
        eprintln!("{said}  {out}: {size} bytes in {took:.2?}");
        ws.join(out)
    };
    let layout = materialise("web-oci");
    let again = materialise("web-oci-again");
    let first = tree(&layout);
    assert!(first.contains_key(Path::new("index.json")));
    assert_eq!(first.len(), 5, "oci-layout, index.json and three blobs");
    assert!(first == tree(&again), "two runs gave different layouts");

    let image = format!("oci:{}:latest", layout.display());
    let inspect: Value = serde_json::from_str(&run("skopeo", &["inspect", &image])).unwrap();
    assert_eq!(inspect["Architecture"], "amd64", "{inspect}");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Created"], "1970-01-01T00:00:00Z");
    let layers = inspect["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{inspect}");
    let layer = layers[0].as_str().unwrap().strip_prefix("sha256:").unwrap();
    assert!(first.contains_key(&Path::new("blobs/sha256").join(layer)));

    let config: Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--config", &image])).unwrap();
    assert_eq!(config["config"]["Cmd"], *cmd, "{config}");
    assert_eq!(config["architecture"], "amd64");

    let bundle = ws.join("bundle");
    let from = format!("{}:latest", layout.display());
    let bundle_arg = bundle.to_str().unwrap();
    let mut unpack = vec!["unpack", "--image", &from, bundle_arg];
    if !is_root() {
        unpack.insert(1, "--rootless");
    }
    run("umoci", &unpack);
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("usr/sbin/nginx").is_file());
    let runtime: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["args"], *cmd, "{runtime}");
    // The runtime brings /dev's nodes; the layer brings the rest of /dev.
    assert!(fs::symlink_metadata(rootfs.join("dev/null")).is_err());
    assert_eq!(
        fs::read_link(rootfs.join("dev/fd")).unwrap(),
        Path::new("/proc/self/fd")
    );
}

/// A group with every container statement, its accounts in the tree for `umoci` to
/// resolve `run-as` by.
const APP: &str = r#"group app version="1.0" {
    package bash
    file "/etc/passwd" content="root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
    file "/etc/group" content="root:x:0:\nwww-data:x:33:\n"
    entrypoint "/bin/bash" "-e"
    cmd "-c" "echo hi"
    env "LANG=C.UTF-8" "GREETING=hello world"
    env "PATH=/opt/app/bin:/usr/bin:/bin" when="!kernel"
    run-as "www-data:www-data"
    workdir "/var/www"
    expose 80 "443/tcp" "53/udp"
    label "org.opencontainers.image.source=https://example.org/app" "tier=front"
}
"#;

/// A group whose `run-as` names a user the tree lacks.
const GHOST: &str = r#"group ghost version="1.0" {
    package bash
    run-as "nginx"
}
"#;

fn app_world() -> World {
    let packages = [
        FakePackage::new("base-files", "12.4+deb12u5")
            .essential()
            .file("/etc/debian_version", "12.5\n"),
        FakePackage::new("bash", "5.2.15-2+b2")
            .depends("base-files")
            .file("/bin/bash", "#!fake bash\n"),
    ];
    let plain = "group plain version=\"1.0\" {\n    package bash\n}\n";
    World::new(
        &packages,
        &[("app", APP), ("ghost", GHOST), ("plain", plain)],
    )
}

/// The arguments of a materialise of `group` for openvz as an OCI layout at `out`,
/// followed by `more`.
fn oci<'a>(group: &'a str, out: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "materialise",
        group,
        "--flavor",
        "openvz",
        "--format",
        "oci",
        "-o",
        out,
    ];
    args.extend_from_slice(more);
    args
}

#[test]
fn container_statements_make_the_image_config_and_tag_names_the_image() {
    let w = app_world();
    w.ok(&["compile", "groups/app.kdl", "--flavor", "openvz"]);
    let shown: Value =
        serde_json::from_str(&w.ok(&["show", "app", "--flavor", "openvz", "--json"])).unwrap();
    let container = &shown["lock"]["container"];
    assert_eq!(container["user"], "www-data:www-data", "{shown}");
    assert_eq!(
        container["ports"],
        serde_json::json!(["443/tcp", "53/udp", "80/tcp"])
    );

    w.ok(&oci("app", "app-oci", &["--tag", "v1.0"]));
    w.ok(&oci("app", "app-oci-again", &["--tag", "v1.0"]));
    let layout = w.ws.join("app-oci");
    let first = tree(&layout);
    assert!(
        first == tree(&w.ws.join("app-oci-again")),
        "two runs differ"
    );

    let image = format!("oci:{}:v1.0", layout.display());
    let config: Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--config", &image])).unwrap();
    let config = &config["config"];
    assert_eq!(
        *config,
        serde_json::json!({
            "User": "www-data:www-data",
            "ExposedPorts": {"443/tcp": {}, "53/udp": {}, "80/tcp": {}},
            "Env": [
                "GREETING=hello world",
                "LANG=C.UTF-8",
                "PATH=/opt/app/bin:/usr/bin:/bin",
            ],
            "Entrypoint": ["/bin/bash", "-e"],
            "Cmd": ["-c", "echo hi"],
            "WorkingDir": "/var/www",
            "Labels": {
                "org.opencontainers.image.source": "https://example.org/app",
                "tier": "front",
            },
        })
    );
    // The tag is the layout's only name.
    let index: Value = serde_json::from_slice(&first[Path::new("index.json")]).unwrap();
    let names: Vec<&Value> = (index["manifests"].as_array().unwrap().iter())
        .map(|m| &m["annotations"]["org.opencontainers.image.ref.name"])
        .collect();
    assert_eq!(names, [&serde_json::json!("v1.0")]);

    // umoci makes a runtime config of it, the user resolved in the image's own passwd.
    let bundle = w.ws.join("bundle");
    let from = format!("{}:v1.0", layout.display());
    let mut unpack = vec!["unpack", "--image", &from, bundle.to_str().unwrap()];
    if !is_root() {
        unpack.insert(1, "--rootless");
    }
    run("umoci", &unpack);
    let runtime: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let process = &runtime["process"];
    assert_eq!(
        process["args"],
        serde_json::json!(["/bin/bash", "-e", "-c", "echo hi"]),
        "{runtime}"
    );
    assert_eq!(process["cwd"], "/var/www");
    assert_eq!(process["user"]["uid"], 33, "{runtime}");
    assert_eq!(process["user"]["gid"], 33);
    let env: Vec<&str> = (process["env"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"GREETING=hello world"), "{env:?}");
    assert_eq!(runtime["annotations"]["tier"], "front", "{runtime}");
}

#[test]
fn a_bad_tag_or_a_tag_without_oci_is_refused_and_writes_nothing() {
    let w = app_world();
    w.ok(&["compile", "groups/plain.kdl", "--flavor", "openvz"]);
    for tag in [".hidden", "a:b", "with space", &"x".repeat(129)] {
        let err = w.fails(&oci("plain", "out", &["--tag", tag]));
        assert!(err.contains("bad tag `"), "{tag}: {err}");
        assert!(
            err.contains("a tag is 1 to 128 ASCII letters, digits, `_`, `.` and `-`"),
            "{err}"
        );
    }
    let err = w.fails(&[
        "materialise",
        "plain",
        "--flavor",
        "openvz",
        "--tag",
        "v1",
        "-o",
        "out.tar",
    ]);
    assert!(
        err.contains("--tag goes with the oci format, not tar"),
        "{err}"
    );
    assert!(!w.ws.join("out").exists() && !w.ws.join("out.tar").exists());

    // Without --tag the image is `latest`; a group without container statements gives
    // the config it always did, and its lock carries no container settings.
    w.ok(&oci("plain", "out", &[]));
    let image = format!("oci:{}:latest", w.ws.join("out").display());
    let config: Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--config", &image])).unwrap();
    assert_eq!(
        config["config"],
        serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        })
    );
    let shown: Value =
        serde_json::from_str(&w.ok(&["show", "plain", "--flavor", "openvz", "--json"])).unwrap();
    assert!(shown["lock"].get("container").is_none(), "{shown}");
}

#[test]
fn run_as_an_account_the_tree_lacks_fails_the_compile_at_the_statement() {
    let w = app_world();
    w.ok(&["compile", "groups/app.kdl", "--flavor", "openvz"]);
    let err = w.fails(&["compile", "groups/ghost.kdl", "--flavor", "openvz"]);
    assert!(
        err.contains(
            "groups/ghost.kdl:3:12: `run-as` names user `nginx`, which the tree's etc/passwd lacks"
        ),
        "{err}"
    );
    assert!(err.contains("a `user` statement makes an account"), "{err}");
    assert!(!w.ok(&["list"]).contains("ghost"), "nothing stored");

    // A changed setting is a new lock; the same statements again are not.
    let again = w.ok(&["compile", "groups/app.kdl", "--flavor", "openvz"]);
    assert!(
        again.contains("app=1.0-1[!kernel,openvz is: x86_64] unchanged"),
        "{again}"
    );
    let file = w.ws.join("groups/app.kdl");
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, text.replace("\"/var/www\"", "\"/srv\"")).unwrap();
    let changed = w.ok(&["compile", "groups/app.kdl", "--flavor", "openvz"]);
    assert!(
        changed.contains("app=1.0-2[!kernel,openvz is: x86_64]"),
        "{changed}"
    );
    let log = w.ok(&["log", "app", "--flavor", "openvz"]);
    assert!(log.contains("container config changed"), "{log}");
}
