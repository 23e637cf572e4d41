//! `appliance push` and `appliance pull` end to end through the binary against a real
//! registry: Debian's `docker-registry` (distribution 2.8) started on 127.0.0.1 by each
//! test, its storage in the test's folder. The packages' archives are in a pool folder,
//! so nothing is downloaded.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::registry::{Registry, secured};
use common::{World, build_deb, fake_workspace, refused, succeeds, travel};

const ARTIFACT: &str = "application/vnd.appliance.lock.v1+json";

/// The travelling world, every archive in the pool `debs`.
fn world() -> World {
    travel::compiled(HOSTNAME, true)
}

/// The hostname the group writes.
const HOSTNAME: &str = "pushed";

/// `appliance ARGS...` in the world, with an empty docker configuration unless the
/// test gives one, and `stdin` on standard input.
fn appliance(w: &World, args: &[&str], stdin: &str) -> Command {
    let mut command = w.command(args);
    command.env("DOCKER_CONFIG", w.dir.path().join("docker"));
    if !stdin.is_empty() {
        let file = w.dir.path().join("stdin");
        fs::write(&file, stdin).unwrap();
        command.stdin(fs::File::open(file).unwrap());
    }
    command
}

/// Pushes `base` to `target` with `more` arguments; returns the JSON it prints.
fn push(w: &World, target: &str, more: &[&str]) -> serde_json::Value {
    let args = [
        &["push", "base", target, "--pool", "debs", "--json"][..],
        more,
    ]
    .concat();
    let out = succeeds(appliance(w, &args, ""));
    serde_json::from_str(&out).unwrap()
}

/// A fresh workspace and an empty sysroot beside the world's.
fn elsewhere(w: &World) -> (PathBuf, PathBuf) {
    let ws = w.dir.path().join("elsewhere");
    fake_workspace(&ws, &[("base", &travel::group(HOSTNAME))]);
    let empty = w.dir.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    (ws, empty)
}

/// `appliance --sysroot EMPTY ARGS...` in `ws`, with no docker configuration.
fn there(w: &World, ws: &Path, empty: &Path, args: &[&str]) -> Command {
    let mut all = vec!["--sysroot", empty.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut command = common::command(ws, &all);
    command.env("DOCKER_CONFIG", w.dir.path().join("docker"));
    command
}

const MATERIALISE: &[&str] = &[
    "materialise",
    "base",
    "--flavor",
    "openvz",
    "--format",
    "tar",
];

#[test]
fn a_pulled_lock_materialises_the_same_tar_and_a_second_push_sends_only_what_is_new() {
    let w = world();
    let registry = Registry::start(&w.dir.path().join("registry"), None);
    let repo = registry.at("team/base");
    let first = push(&w, &repo, &["--insecure"]);
    let pushed = &first["pushed"];
    let tag = "base-1.0-openvz-x86_64";
    assert_eq!(pushed["tag"], tag, "{first}");
    // The config, the lock, four archives and the blobs.
    let total = 2 + 4 + first["blobs"].as_u64().unwrap();
    assert_eq!(pushed["uploaded"]["blobs"], total, "{first}");
    assert_eq!(pushed["skipped"]["blobs"], 0, "{first}");
    // The lock's tag, and the one listing its SBOM (distribution 2.8 has no referrers API).
    let sbom_tag = pushed["digest"].as_str().unwrap().replace(':', "-");
    assert_eq!(registry.tags("team/base"), [tag, sbom_tag.as_str()]);
    let manifest = registry.raw(&format!("team/base:{tag}"));
    assert_eq!(manifest["artifactType"], ARTIFACT, "{manifest}");

    // TLS is the default: the registry speaks plain http.
    let err = refused(appliance(
        &w,
        &["push", "base", &repo, "--pool", "debs"],
        "",
    ));
    assert!(
        err.contains(&format!("registry 127.0.0.1:{}", registry.port)),
        "{err}"
    );

    w.ok(&[MATERIALISE, &["--pool", "debs", "-o", "one.tar"]].concat());
    let (ws, empty) = elsewhere(&w);
    let source = format!("{repo}:{tag}");
    let pulled = succeeds(there(&w, &ws, &empty, &["pull", &source, "--insecure"]));
    assert!(
        pulled.contains("-> base=1.0-1[!kernel,openvz is: x86_64] stored: lock "),
        "{pulled}"
    );
    assert!(
        pulled.contains(&format!("{total} blobs downloaded")),
        "{pulled}"
    );
    succeeds(there(
        &w,
        &ws,
        &empty,
        &[MATERIALISE, &["-o", "two.tar"]].concat(),
    ));
    let one = fs::read(w.ws.join("one.tar")).unwrap();
    assert!(
        one == fs::read(ws.join("two.tar")).unwrap(),
        "the tars differ"
    );
    // By digest, the same lock.
    let by_digest = format!("{repo}@{}", pushed["digest"].as_str().unwrap());
    let again = succeeds(there(
        &w,
        &ws,
        &empty,
        &["pull", &by_digest, "--insecure", "--json"],
    ));
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["unchanged"], true, "{again}");

    // A second revision with another coreutils: new are only its lock, coreutils'
    // archive and the two blobs of dpkg's database that change with it.
    let pool = w.ws.join("debs");
    fs::remove_file(pool.join("coreutils_9.1-1_amd64.deb")).unwrap();
    build_deb(
        &pool,
        "coreutils",
        "9.1-2",
        &[("/bin/ls", "fake ls, fixed\n")],
        &[],
        &[],
    );
    w.ok(&["compile", "groups/base.kdl", "--pool", "debs", "--offline"]);
    let second = push(&w, &repo, &["--insecure"]);
    assert_eq!(second["pushed"]["uploaded"]["blobs"], 4, "{second}");
    assert_eq!(second["pushed"]["skipped"]["blobs"], total - 4, "{second}");
    let new_deb = fs::metadata(pool.join("coreutils_9.1-2_amd64.deb"))
        .unwrap()
        .len();
    assert!(second["pushed"]["uploaded"]["bytes"].as_u64().unwrap() > new_deb);

    // An unknown tag is one clear error, and stores nothing.
    let unknown = format!("{repo}:nope");
    let err = refused(there(&w, &ws, &empty, &["pull", &unknown, "--insecure"]));
    assert!(
        err.contains(&format!("{unknown}: the registry has no such tag")),
        "{err}"
    );
}

#[test]
fn the_sbom_and_attached_documents_are_referrers_under_the_fallback_tag() {
    let w = world();
    let registry = Registry::start(&w.dir.path().join("registry"), None);
    // Every push attaches the lock's SPDX SBOM; --attach adds more.
    let notes = w.ws.join("notes.json");
    fs::write(&notes, r#"{"reviewed":true}"#).unwrap();
    let attach = format!("application/vnd.example.notes+json={}", notes.display());
    let out = push(
        &w,
        &registry.at("base"),
        &["--insecure", "--attach", &attach],
    );
    let digest = out["pushed"]["digest"].as_str().unwrap();
    let referrers = out["pushed"]["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 2, "{out}");
    // distribution 2.8 has no referrers API: the index is under the fallback tag.
    let fallback = digest.replace(':', "-");
    assert_eq!(referrers[0]["fallback_tag"], fallback.as_str(), "{out}");
    let index = registry.raw(&format!("base:{fallback}"));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let listed = index["manifests"].as_array().unwrap();
    let types: Vec<&str> = (listed.iter())
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "application/spdx+json",
            "application/vnd.example.notes+json"
        ],
        "{index}"
    );
    let sbom = &referrers[0]["digest"];
    assert_eq!(listed[0]["digest"], *sbom, "{index}");
    let manifest = registry.raw(&format!("base@{}", sbom.as_str().unwrap()));
    assert_eq!(manifest["subject"]["digest"], digest, "{manifest}");
    assert_eq!(manifest["layers"][0]["mediaType"], "application/spdx+json");
    // The SBOM is `appliance sbom`'s, byte for byte.
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let document = registry.blob("base", layer);
    let expected = w.ok(&["sbom", "base"]);
    assert_eq!(String::from_utf8(document).unwrap(), expected);
    // Pushing again lists each once; --no-sbom attaches none.
    push(
        &w,
        &registry.at("base"),
        &["--insecure", "--attach", &attach],
    );
    let index = registry.raw(&format!("base:{fallback}"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    let out = push(&w, &registry.at("base"), &["--insecure", "--no-sbom"]);
    assert_eq!(
        out["pushed"]["referrers"].as_array().unwrap().len(),
        0,
        "{out}"
    );
}

#[test]
fn credentials_are_checked_over_tls_from_the_docker_config_or_stdin() {
    let w = world();
    let secured = secured(&w.dir.path().join("tls"));
    let registry = Registry::start(&w.dir.path().join("registry"), Some(&secured));
    let repo = registry.at("base");
    let ca = secured.ca.to_str().unwrap();
    let name = format!("registry 127.0.0.1:{}", registry.port);
    let args = ["push", "base", &repo, "--pool", "debs", "--ca-file", ca];

    let err = refused(appliance(&w, &args, ""));
    assert!(
        err.contains(&format!("{name} refused access without credentials")),
        "{err}"
    );
    let wrong = [&args[..], &["--username", "alice"]].concat();
    let err = refused(appliance(&w, &wrong, "mad hatter\n"));
    assert!(
        err.contains(&format!(
            "{name} refused the credentials of alice (--username): "
        )),
        "{err}"
    );
    assert!(
        registry.storage.join("docker").read_dir().is_err() || {
            // Nothing got in: no repository's manifests.
            !registry
                .storage
                .join("docker/registry/v2/repositories/base/_manifests")
                .exists()
        }
    );
    let out = succeeds(appliance(&w, &wrong, "wonderland\n"));
    assert!(out.contains("blobs uploaded"), "{out}");

    // The docker configuration's credentials, for a pull elsewhere.
    let docker = w.dir.path().join("docker");
    fs::create_dir_all(&docker).unwrap();
    let registry_host = format!("127.0.0.1:{}", registry.port);
    fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{registry_host}":{{"auth":"YWxpY2U6d29uZGVybGFuZA=="}}}}}}"#),
    )
    .unwrap();
    let (ws, empty) = elsewhere(&w);
    let source = format!("{repo}:base-1.0-openvz-x86_64");
    let pulled = succeeds(there(&w, &ws, &empty, &["pull", &source, "--ca-file", ca]));
    assert!(pulled.contains("stored: lock"), "{pulled}");
    // Without the CA, the certificate is not trusted.
    let err = refused(there(&w, &ws, &empty, &["pull", &source]));
    assert!(err.contains(&name), "{err}");
}

/// A proxy in front of a registry that kills it (SIGKILL) when the `after`-th blob
/// upload's request arrives, before passing it on. A connection whose registry side ends
/// is closed for the client too, as the dead registry's own would be: push has several
/// requests in flight, and one left waiting for an answer would wait for good.
fn killing_proxy(registry: Arc<std::sync::Mutex<Registry>>, after: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let uploads = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let upstream_port = registry.lock().unwrap().port;
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                continue;
            };
            let (mut client_in, mut server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (registry, uploads) = (registry.clone(), uploads.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0; 1 << 16];
                while let Ok(n @ 1..) = client_in.read(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let upload = text.starts_with("PUT /v2/") && text.contains("/blobs/uploads/");
                    if upload && uploads.fetch_add(1, Ordering::SeqCst) + 1 == after {
                        registry.lock().unwrap().kill();
                        return;
                    }
                    if server_out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

#[test]
fn a_registry_that_dies_mid_push_leaves_no_tag_and_the_next_push_completes() {
    let w = world();
    let registry = Registry::start(&w.dir.path().join("registry"), None);
    let registry = Arc::new(std::sync::Mutex::new(registry));
    let proxy = killing_proxy(registry.clone(), 4);
    let target = format!("127.0.0.1:{proxy}/base");
    let args = ["push", "base", &target, "--pool", "debs", "--insecure"];
    let err = refused(appliance(&w, &args, ""));
    // Several blobs are in flight when it dies: whichever failure comes first (its upload,
    // or the HEAD before it) names its blob's member.
    let prefix = format!("registry 127.0.0.1:{proxy}: ");
    assert!(
        err.contains(&format!("{prefix}uploading "))
            || err.contains(&format!("{prefix}asking for ")),
        "{err}"
    );
    assert!(err.contains("blobs/sha256/"), "{err}");

    registry.lock().unwrap().run();
    assert_eq!(registry.lock().unwrap().tags("base"), Vec::<String>::new());
    let out = push(&w, &registry.lock().unwrap().at("base"), &["--insecure"]);
    // The uploads sent before the registry died may or may not have landed (they were in
    // flight together): the second push sends exactly what it lacks, and nothing twice.
    let skipped = out["pushed"]["skipped"]["blobs"].as_u64().unwrap();
    assert!(skipped <= 3, "{out}");
    let total = 2 + 4 + out["blobs"].as_u64().unwrap();
    assert_eq!(out["pushed"]["uploaded"]["blobs"], total - skipped, "{out}");
    let sbom_tag = out["pushed"]["digest"].as_str().unwrap().replace(':', "-");
    assert_eq!(
        registry.lock().unwrap().tags("base"),
        ["base-1.0-openvz-x86_64", sbom_tag.as_str()]
    );
    // The proxy's thread holds the registry for good: it is stopped here, not dropped.
    registry.lock().unwrap().kill();
}

/// A registry that answers a blob's HEAD with a server error (a killed registry can
/// leave a blob's link in the repository empty) is sent that blob again, which repairs
/// it; only that blob.
#[test]
fn a_blob_the_registry_cannot_answer_for_is_sent_again() {
    let w = world();
    let registry = Registry::start(&w.dir.path().join("registry"), None);
    let first = push(&w, &registry.at("team/base"), &["--insecure"]);
    let layers =
        (registry.storage).join("docker/registry/v2/repositories/team/base/_layers/sha256");
    // A layer of the lock's artifact, whose sends the push counts (not its SBOM's,
    // which a referrer sends), whichever the store's time made first in the folder.
    let tag = first["pushed"]["tag"].as_str().unwrap();
    let manifest = registry.raw(&format!("team/base:{tag}"));
    let digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let broken = layers.join(digest.strip_prefix("sha256:").unwrap());
    fs::write(broken.join("link"), "").unwrap();
    let head = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I"])
        .arg(format!(
            "http://{}/blobs/{digest}",
            registry.at("v2/team/base")
        ))
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&head.stdout).to_string();
    assert!(
        code.starts_with('5'),
        "HEAD of the broken blob answered {code}"
    );

    let again = push(&w, &registry.at("team/base"), &["--insecure"]);
    let total = 2 + 4 + first["blobs"].as_u64().unwrap();
    assert_eq!(again["pushed"]["uploaded"]["blobs"], 1, "{again}");
    assert_eq!(again["pushed"]["skipped"]["blobs"], total - 1, "{again}");
    assert!(!registry.blob("team/base", &digest).is_empty());
}

#[test]
fn a_tampered_layer_is_refused_by_name_and_nothing_is_stored() {
    let w = world();
    let registry = Registry::start(&w.dir.path().join("registry"), None);
    let out = push(&w, &registry.at("base"), &["--insecure"]);
    let digest = out["pushed"]["digest"].as_str().unwrap();
    let manifest = registry.raw(&format!("base@{digest}"));
    let bash = (manifest["layers"].as_array().unwrap().iter())
        .find(|l| l["annotations"]["dev.appliance.package.name"] == "bash")
        .unwrap();
    let hex = bash["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let data = registry.storage.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut bytes = fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&data, bytes).unwrap();

    let (ws, empty) = elsewhere(&w);
    let source = format!("{}:base-1.0-openvz-x86_64", registry.at("base"));
    let err = refused(there(&w, &ws, &empty, &["pull", &source, "--insecure"]));
    assert!(
        err.contains("the archive of bash 5.2.15-2+b2 (amd64)")
            && err.contains("not to its digest"),
        "{err}"
    );
    assert!(
        !ws.join("store/repo.sqlite").exists() || {
            let list = succeeds(there(&w, &ws, &empty, &["list"]));
            !list.contains("base")
        }
    );
}
