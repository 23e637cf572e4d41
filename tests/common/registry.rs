//! A real registry for the tests: Debian's `docker-registry` (distribution 2.8) on
//! 127.0.0.1, started by the test with its storage in the test's folder, plain http or
//! TLS with htpasswd credentials made by `openssl` and `htpasswd`.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// TLS and htpasswd files for a registry that asks for credentials.
pub struct Secured {
    /// The registry's certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The CA that signed it, for `--ca-file`.
    pub ca: PathBuf,
    /// The htpasswd file: alice, `wonderland`.
    pub htpasswd: PathBuf,
}

/// A running `docker-registry`, killed when dropped.
pub struct Registry {
    child: Option<Child>,
    config: PathBuf,
    /// Where it keeps blobs and manifests.
    pub storage: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Registry {
    /// Starts a registry with its files below `dir`.
    pub fn start(dir: &Path, secured: Option<&Secured>) -> Registry {
        let port = free_port();
        let storage = dir.join("storage");
        fs::create_dir_all(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some(s) = secured {
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                s.cert.display(),
                s.key.display(),
                s.htpasswd.display()
            );
        }
        let path = dir.join("registry.yml");
        fs::write(&path, config).unwrap();
        let mut registry = Registry {
            child: None,
            config: path,
            storage,
            port,
        };
        registry.run();
        registry
    }

    /// Starts the registry process and waits until it listens.
    pub fn run(&mut self) {
        // Another test may take the free port first: then this registry cannot listen
        // and exits, while the other answers. Its death says so; it moves and retries.
        for _ in 0..5 {
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("docker-registry (Debian package docker-registry) runs");
            let start = Instant::now();
            while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(start.elapsed() < Duration::from_secs(20), "no registry");
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(200));
            if child.try_wait().unwrap().is_none() {
                self.child = Some(child);
                return;
            }
            let (old, port) = (self.port, free_port());
            let config = fs::read_to_string(&self.config).unwrap();
            let moved = config.replace(&format!("127.0.0.1:{old}"), &format!("127.0.0.1:{port}"));
            fs::write(&self.config, moved).unwrap();
            self.port = port;
        }
        panic!("docker-registry found no free port");
    }

    /// Kills the registry process at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:PORT/REPO`.
    pub fn at(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}", self.port)
    }

    /// The tags of `repo` as skopeo lists them, sorted (none when the repository is
    /// unknown).
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let out = Command::new("skopeo")
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{}", self.at(repo)))
            .output()
            .unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut tags: Vec<String> = (json["Tags"].as_array().cloned().unwrap_or_default())
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        // The registry lists tags in its folder's order, which differs between
        // filesystems (ext4 hashes names with a seed of its own).
        tags.sort();
        tags
    }

    /// The bytes of blob `digest` of `repository`, as the registry serves them.
    pub fn blob(&self, repository: &str, digest: &str) -> Vec<u8> {
        let url = format!(
            "http://127.0.0.1:{}/v2/{repository}/blobs/{digest}",
            self.port
        );
        let out = Command::new("curl").args(["-fsSL", &url]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The raw manifest at `reference` (`REPO:TAG`), as `skopeo inspect --raw` shows it.
    pub fn raw(&self, reference: &str) -> serde_json::Value {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://127.0.0.1:{}/{reference}", self.port))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `program args...`, failing the test when it fails.
fn run(program: &str, args: &[&str], dir: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a certificate for 127.0.0.1 it signed, and htpasswd for alice (`wonderland`).
pub fn secured(dir: &Path) -> Secured {
    fs::create_dir_all(dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_args = [
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem"],
    ];
    run(
        "openssl",
        &[
            &ca_args.concat()[..],
            &["-days", "2", "-subj", "/CN=test CA"],
        ]
        .concat(),
        dir,
    );
    run(
        "openssl",
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "req.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
        dir,
    );
    fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
        dir,
    );
    let out = Command::new("htpasswd")
        .args(["-Bbn", "alice", "wonderland"])
        .output()
        .expect("htpasswd (Debian package apache2-utils) runs");
    assert!(out.status.success());
    fs::write(dir.join("htpasswd"), out.stdout).unwrap();
    Secured {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        ca: dir.join("ca.pem"),
        htpasswd: dir.join("htpasswd"),
    }
}
