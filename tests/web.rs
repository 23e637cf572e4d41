//! End to end on the real machine: `groups/web.kdl` (nginx, ssh, certificates, systemd)
//! compiled with packages the host does not have, fetched from apt's lists, run in a
//! chroot, made into an OpenVZ template that is checked entry by entry and booted, and
//! into kvm and xen images, the kvm one booted under qemu and reached from the host.
//! Needs apt lists and Debian's archive (CI runs `apt-get update` first), an installed
//! kernel (linux-image-amd64), qemu, curl and root.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    Booted, Console, differing_paths, digest, example_workspace, fake_workspace, is_root, lock_id,
    names, ok, report, tool,
};

/// The project's web group in one workspace for every test here, each flavor compiled
/// once, by the first test that needs it (a compile fetches and configures for
/// minutes): the workspace and each flavor's compile output.
static WEB: Mutex<Option<(PathBuf, BTreeMap<String, String>)>> = Mutex::new(None);

/// The shared workspace with `groups/web.kdl` compiled for `flavor`, and what that
/// compile printed. The workspace is made afresh, once a run, in the test target's
/// scratch folder; its `web.kdl` carries the VM test's probe for kvm ([`PROBE`]).
fn web(flavor: &str) -> (PathBuf, String) {
    let mut web = WEB.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (ws, compiled) = web.get_or_insert_with(|| {
        let ws = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web");
        if ws.exists() {
            fs::remove_dir_all(&ws).unwrap();
        }
        fs::create_dir_all(&ws).unwrap();
        example_workspace(&ws);
        let group = ws.join("groups/web.kdl");
        let text = fs::read_to_string(&group).unwrap();
        let end = text.rfind('}').unwrap();
        let probe = format!(
            "    // The VM test's probe.\n    when kvm {{\n        file \"/usr/local/sbin/appliance-probe\" mode=0o755 content={}\n        file \"/etc/systemd/system/appliance-probe.service\" content={}\n        enable appliance-probe.service\n    }}\n",
            kdl_string(PROBE),
            kdl_string(PROBE_UNIT)
        );
        fs::write(&group, format!("{}{probe}{}", &text[..end], &text[end..])).unwrap();
        (ws, BTreeMap::new())
    });
    if !compiled.contains_key(flavor) {
        let out = ok(ws, &["compile", "groups/web.kdl", "--flavor", flavor]);
        compiled.insert(flavor.to_string(), out);
    }
    (ws.clone(), compiled[flavor].clone())
}

/// What the VM test reads on the console once the machine is up: what systemd says of
/// the boot, since nothing else in the appliance lets the host ask it.
const PROBE: &str = "#!/bin/sh\nfailed=$(systemctl --failed --plain --no-legend --no-pager | cut -d' ' -f1 | paste -sd, -)\necho \"PROBE-SAYS multi-user.target=$(systemctl is-active multi-user.target) nginx=$(systemctl is-active nginx) failed=[$failed]\" > /dev/console\n";

/// Runs the probe once multi-user.target is reached.
const PROBE_UNIT: &str = "[Unit]\nDescription=Boot report for the VM test\nAfter=multi-user.target nginx.service\n\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/appliance-probe\n\n[Install]\nWantedBy=graphical.target\n";

/// `text` as a quoted KDL string.
fn kdl_string(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// A TCP port of the host's loopback that nothing listens on now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// How long the kvm image of web may take, from `appliance boot` (which builds the
/// image) to nginx answering through the forward; under TCG it boots in about 70 s.
const VM_LIMIT: Duration = Duration::from_secs(240);

#[test]
fn web_vm_boots_to_nginx_that_the_host_reaches_through_a_forward() {
    if !is_root() {
        eprintln!("skipped: compiling the web appliance configures it confined, which needs root");
        return;
    }
    let (ws, _) = web("kvm");
    let (http, ssh) = (free_port(), free_port());
    let forwards = [format!("{http}:80"), format!("{ssh}:22")];
    let started = Instant::now();
    let deadline = started + VM_LIMIT;
    let mut console = Console::start(
        &ws,
        &[
            "boot",
            "web",
            "--flavor",
            "kvm",
            "--forward",
            &forwards[0],
            "--forward",
            &forwards[1],
        ],
    );
    let probed = console.wait_for("PROBE-SAYS", deadline);
    assert!(
        probed,
        "no boot report within {VM_LIMIT:?}; console:\n{}",
        console.output
    );
    let line = console
        .output
        .lines()
        .rev()
        .find(|l| l.contains("PROBE-SAYS"));
    let report_line = line
        .and_then(|l| l.split_once("PROBE-SAYS"))
        .map(|(_, r)| r.trim());
    assert_eq!(
        report_line,
        Some("multi-user.target=active nginx=active failed=[]"),
        "console:\n{}",
        console.output
    );
    // The guest's network may come up a moment after multi-user.target.
    let page = loop {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", "-w", "\n%{http_code}"])
            .arg(format!("http://127.0.0.1:{http}/"))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.ends_with("\n200") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no 200 through --forward {} within {VM_LIMIT:?}: {text}\nconsole:\n{}",
            forwards[0],
            console.output
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let up = started.elapsed();
    assert!(page.contains("<title>Welcome to nginx!</title>"), "{page}");
    let mut banner = String::new();
    let stream = TcpStream::connect(("127.0.0.1", ssh)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    std::io::BufReader::new(stream)
        .read_line(&mut banner)
        .unwrap();
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner:?}");

    // qemu's own quit key on its console: Ctrl-A x.
    console.send(b"\x01x");
    let (output, code) = console.finish(Instant::now() + Duration::from_secs(30));
    assert_eq!(code, Some(0), "appliance boot's exit; console:\n{output}");
    report(&format!(
        "measured: web kvm image built, booted and answering through --forward in {:.1} s",
        up.as_secs_f64()
    ));
}

#[test]
fn web_xen_image_is_a_kernel_an_initramfs_a_disk_and_an_xl_config() {
    if !is_root() {
        eprintln!("skipped: compiling the web appliance configures it confined, which needs root");
        return;
    }
    let (ws, compiled) = web("xen");
    assert!(
        compiled.contains("web=1.0-1[kernel,xen is: x86_64] stored"),
        "{compiled}"
    );
    ok(
        &ws,
        &["materialise", "web", "--flavor", "xen", "-o", "web-xen"],
    );
    let out = fs::canonicalize(ws.join("web-xen")).unwrap();
    assert_eq!(
        names(&out),
        ["cmdline", "disk.raw", "initrd.img", "vmlinuz", "xen.cfg"]
    );
    let kernel = fs::read(out.join("vmlinuz")).unwrap();
    assert_eq!(&kernel[0x202..0x206], b"HdrS", "vmlinuz is a bzImage");
    let cfg = fs::read_to_string(out.join("xen.cfg")).unwrap();
    for line in [
        "kernel = \"vmlinuz\"",
        "ramdisk = \"initrd.img\"",
        "extra = \"console=hvc0 root=/dev/xvda panic=-1\"",
        "vif = [ \"\" ]",
    ] {
        assert!(cfg.lines().any(|l| l == line), "{line} not in:\n{cfg}");
    }
    assert!(cfg.contains("target=disk.raw\""), "{cfg}");
    let initrd = tool(
        "cpio",
        &["-t", "-F", out.join("initrd.img").to_str().unwrap()],
    );
    for module in ["xen-blkfront.ko", "xen-netfront.ko", "ext4.ko"] {
        assert!(initrd.contains(module), "{module} not in:\n{initrd}");
    }
    let disk = out.join("disk.raw");
    let disk = disk.to_str().unwrap();
    tool("e2fsck", &["-fn", disk]);
    let network = tool(
        "debugfs",
        &[
            "-R",
            "cat /etc/systemd/network/90-appliance-dhcp.network",
            disk,
        ],
    );
    assert!(network.contains("DHCP=yes"), "{network}");
    let wants = tool(
        "debugfs",
        &[
            "-R",
            "stat /etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
            disk,
        ],
    );
    assert!(
        wants.contains("Type: symlink"),
        "systemd-networkd is enabled: {wants}"
    );
}

#[test]
fn web_appliance_serves_config_users_dpkg_and_alternatives() {
    if !is_root() {
        eprintln!("skipped: the web appliance test runs nginx in a chroot, which needs root");
        return;
    }
    let (ws, compiled) = web("openvz");
    let ws = ws.as_path();
    assert!(
        compiled.contains("web=1.0-1[!kernel,openvz is: x86_64] stored"),
        "{compiled}"
    );
    // A second compile in a fresh store (its pool copied: the same archives, no
    // download) configures again and must lock the same tree.
    let fresh = tempfile::tempdir().unwrap();
    fs::copy(ws.join("groups/web.kdl"), {
        example_workspace(fresh.path());
        fresh.path().join("groups/web.kdl")
    })
    .unwrap();
    fs::create_dir(fresh.path().join("store")).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(ws.join("store/pool"))
        .arg(fresh.path().join("store/pool"))
        .status()
        .unwrap();
    assert!(copied.success());
    let again = ok(
        fresh.path(),
        &["compile", "groups/web.kdl", "--flavor", "openvz"],
    );
    assert_eq!(
        lock_id(&compiled),
        lock_id(&again),
        "two compiles in fresh stores differ at {:?}",
        differing_paths((ws, "1.0-1"), (fresh.path(), "1.0-1"), "web", "openvz")
    );
    let lock: serde_json::Value =
        serde_json::from_str(&ok(ws, &["show", "web", "--flavor", "openvz", "--json"])).unwrap();
    let packages = lock["lock"]["packages"].as_array().unwrap();
    let nginx = packages
        .iter()
        .find(|p| p["name"] == "nginx-light")
        .unwrap();
    if Command::new("dpkg")
        .args(["-s", "nginx-light"])
        .output()
        .unwrap()
        .status
        .success()
    {
        eprintln!("nginx-light is installed on this host: it comes from there");
    } else {
        assert_eq!(nginx["source"], "aptlist", "{nginx}");
    }

    ok(ws, &common::materialise("web", "chroot", "web"));
    let root = ws.join("web");
    let inside = |script: &str| {
        let out = Command::new("chroot")
            .arg(&root)
            .args(["/bin/sh", "-c", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8_lossy(&out.stderr)
    };
    assert!(inside("nginx -t").contains("test is successful"));
    assert!(inside("getent passwd www-data").starts_with("www-data:x:33:33:"));
    // openssh-server's postinst makes sshd with adduser; the lock carries the account.
    let sshd = inside("getent passwd sshd");
    assert!(
        sshd.starts_with("sshd:x:") && sshd.contains(":/run/sshd:/usr/sbin/nologin"),
        "{sshd}"
    );
    let installed = inside("dpkg -l | grep '^ii'");
    assert_eq!(installed.lines().count(), packages.len(), "{installed}");
    for line in inside("dpkg -V").lines() {
        let excluded = [
            "/usr/share/doc/",
            "/usr/share/man/",
            "/usr/share/info/",
            "/usr/share/locale/",
        ]
        .iter()
        .any(|p| line.contains(p));
        assert!(line.starts_with("missing") && excluded, "dpkg -V: {line}");
    }
    assert!(inside("ls -l /usr/bin/awk").contains("/usr/bin/awk -> /etc/alternatives/awk"));
    assert_eq!(inside("readlink -f /usr/bin/awk"), "/usr/bin/mawk\n");
    // The locked ld.so.cache is the one libc-bin's trigger would write inside.
    let locked = std::fs::read(root.join("etc/ld.so.cache")).unwrap();
    inside("ldconfig -C /tmp/ld.so.cache");
    assert!(locked == std::fs::read(root.join("tmp/ld.so.cache")).unwrap());
    assert!(inside("ldconfig -p").contains("libssl.so.3 (libc6,x86-64)"));

    openvz_template_fits_a_container(ws);
}

#[test]
fn a_second_service_gets_its_account_and_runs() {
    if !is_root() {
        eprintln!("skipped: booting a container needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    // redis-server's postinst makes its user through a variable (`USER="redis"`).
    let group = "group cache version=\"1.0\" {\n    flavors openvz\n    package systemd-sysv\n    package redis-server\n    exclude \"/usr/share/doc/*\" \"/usr/share/man/*\"\n}\n";
    fake_workspace(ws, &[("cache", group)]);
    ok(ws, &["compile", "groups/cache.kdl"]);
    ok(ws, &common::materialise("cache", "chroot", "root"));
    let root = ws.join("root");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("redis:")), "{passwd}");
    let booted = Booted::start(&root);
    booted.is_running();
    assert_eq!(
        booted.inside(&["systemctl", "is-active", "redis-server"]),
        "active\n"
    );
    let pong = booted.net(&[
        "bash",
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/6379; printf 'PING\\r\\n' >&3; head -c 7 <&3",
    ]);
    assert_eq!(pong, "+PONG\r\n");
}

/// One member of a template: its header fields and, for a regular file, its bytes.
struct Member {
    kind: tar::EntryType,
    uname: Vec<u8>,
    gname: Vec<u8>,
    link: Option<String>,
    content: Vec<u8>,
}

fn members(template: &Path) -> BTreeMap<String, Member> {
    let file = std::fs::File::open(template).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut members = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let header = entry.header().clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let path = name
            .trim_start_matches('.')
            .trim_end_matches('/')
            .to_string();
        members.insert(
            if path.is_empty() {
                "/".to_string()
            } else {
                path
            },
            Member {
                kind: header.entry_type(),
                uname: header.username_bytes().unwrap_or_default().to_vec(),
                gname: header.groupname_bytes().unwrap_or_default().to_vec(),
                link,
                content,
            },
        );
    }
    members
}

/// The openvz flavor's default format: a template vzctl takes, checked as a container
/// needs it, unpacked as vzctl does, where nginx's configuration still tests good.
fn openvz_template_fits_a_container(ws: &Path) {
    let cache = ws.join("template-cache");
    std::fs::create_dir(&cache).unwrap();
    let made = ok(
        ws,
        &[
            "materialise",
            "web",
            "--flavor",
            "openvz",
            "-o",
            "template-cache",
        ],
    );
    let template = cache.join("debian-12-x86_64-web.tar.gz");
    assert!(template.is_file(), "{made}");

    let members = members(&template);
    for (path, m) in &members {
        assert!(
            m.uname.is_empty() && m.gname.is_empty(),
            "{path}: owners must be numeric only"
        );
        assert!(
            !path.starts_with("/boot")
                && !path.starts_with("/usr/lib/modules/")
                && path != "/usr/lib/modules"
                && path != "/vmlinuz",
            "{path}: a container has no kernel"
        );
        assert!(
            !path.starts_with("/etc/ssh/ssh_host_"),
            "{path}: a shared host key"
        );
        if path.starts_with("/var/log/") && m.kind == tar::EntryType::Regular {
            assert!(m.content.is_empty(), "{path}: logs start empty");
        }
    }
    let text = |path: &str| {
        let m = members
            .get(path)
            .unwrap_or_else(|| panic!("{path} is missing"));
        String::from_utf8(m.content.clone()).unwrap()
    };
    for line in text("/etc/fstab").lines().filter(|l| !l.starts_with('#')) {
        let source = line.split_whitespace().next().unwrap();
        assert!(
            !source.starts_with("/dev/") && !source.contains('='),
            "fstab mounts a block device: {line}"
        );
    }
    assert_eq!(text("/etc/machine-id"), "");
    let hosts = text("/etc/hosts");
    assert!(
        hosts.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tweb\n"),
        "{hosts}"
    );
    assert!(members.contains_key("/etc/resolv.conf"));
    assert!(text("/etc/systemd/system/appliance-ssh-hostkeys.service").contains("ssh-keygen -A"));
    let getty = &members["/etc/systemd/system/getty.target.wants/console-getty.service"];
    assert_eq!(
        getty.link.as_deref(),
        Some("/lib/systemd/system/console-getty.service")
    );
    assert!(
        members.contains_key("/usr/sbin/init"),
        "vzctl starts /sbin/init"
    );

    // vzctl unpacks templates with numeric owners and modes as they are.
    let root = ws.join("container");
    std::fs::create_dir(&root).unwrap();
    let untar = Command::new("tar")
        .args(["--numeric-owner", "-xpzf"])
        .arg(&template)
        .arg("-C")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        untar.status.success(),
        "{}",
        String::from_utf8_lossy(&untar.stderr)
    );
    let nginx = Command::new("chroot")
        .arg(&root)
        .args(["nginx", "-t"])
        .output()
        .unwrap();
    assert!(
        nginx.status.success(),
        "{}",
        String::from_utf8_lossy(&nginx.stderr)
    );
    let first_key = {
        let booted = Booted::start(&root);
        booted.is_running();
        assert!(
            booted
                .net(&["curl", "-s", "http://127.0.0.1/"])
                .contains("Welcome to nginx!"),
            "nginx does not answer"
        );
        let banner = booted.net(&["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/22; head -1 <&3"]);
        assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner}");
        booted.inside(&["sshd", "-t"]);
        let id = booted.inside(&["su", "-s", "/bin/sh", "nobody", "-c", "id"]);
        assert!(id.starts_with("uid=65534(nobody)"), "{id}");
        booted.inside(&[
            "openssl",
            "verify",
            "-CAfile",
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/ssl/certs/ISRG_Root_X1.pem",
        ]);
        std::fs::read(root.join("etc/ssh/ssh_host_ed25519_key.pub")).unwrap()
    };
    // A second container of the same template makes keys of its own on its first boot.
    let second = ws.join("container-2");
    std::fs::create_dir(&second).unwrap();
    let untar = Command::new("tar")
        .args(["--numeric-owner", "-xpzf"])
        .arg(&template)
        .arg("-C")
        .arg(&second)
        .status()
        .unwrap();
    assert!(untar.success());
    Booted::start(&second).is_running();
    let second_key = std::fs::read(second.join("etc/ssh/ssh_host_ed25519_key.pub")).unwrap();
    assert_ne!(first_key, second_key, "two containers share a host key");

    ok(
        ws,
        &[
            "materialise",
            "web",
            "--flavor",
            "openvz",
            "-o",
            "again.tar.gz",
        ],
    );
    assert_eq!(
        digest(&template),
        digest(&ws.join("again.tar.gz")),
        "byte-identical"
    );
}

/// Web travels as Conary's groups did: pushed to a real registry (plain http, then TLS
/// with htpasswd credentials), pulled into a fresh workspace whose sysroot is an empty
/// folder, and materialised there into the very OpenVZ template this machine makes.
#[test]
fn web_travels_through_a_registry_to_a_machine_without_its_packages() {
    if !is_root() {
        eprintln!("skipped: compiling web configures it as root");
        return;
    }
    let (ws, _) = web("openvz");
    let dir = tempfile::tempdir().unwrap();
    let template = |ws: &Path, sysroot: &Path, out: &Path| {
        let mut args = vec!["--sysroot", sysroot.to_str().unwrap()];
        args.extend(["materialise", "web", "--flavor", "openvz"]);
        args.extend(["--format", "openvz", "-o", out.to_str().unwrap()]);
        ok(ws, &args);
        digest(out)
    };
    let here = template(&ws, Path::new("/"), &dir.path().join("here.tar.gz"));
    let docker = dir.path().join("docker");
    let tls = common::registry::secured(&dir.path().join("tls"));
    let password = dir.path().join("password");
    fs::write(&password, "wonderland\n").unwrap();
    for secured in [None, Some(&tls)] {
        let name = if secured.is_some() {
            "secured"
        } else {
            "plain"
        };
        let registry = common::registry::Registry::start(&dir.path().join(name), secured);
        let ca = tls.ca.to_str().unwrap();
        let remote: &[&str] = match secured {
            None => &["--insecure"],
            Some(_) => &["--ca-file", ca, "--username", "alice"],
        };
        let appliance = |ws: &Path, args: &[&str]| {
            let mut command = common::command(ws, &[args, remote].concat());
            command.env("DOCKER_CONFIG", &docker);
            command.stdin(fs::File::open(&password).unwrap());
            common::succeeds(command)
        };
        let target = registry.at("team/web");
        let pushed = appliance(&ws, &["push", "web", &target, "--flavor", "openvz"]);
        assert!(
            pushed.contains(":web-1.0-openvz-x86_64 (sha256:"),
            "{pushed}"
        );
        if secured.is_none() {
            let manifest = registry.raw("team/web:web-1.0-openvz-x86_64");
            let artifact = "application/vnd.appliance.lock.v1+json";
            assert_eq!(manifest["artifactType"], artifact, "{manifest}");
        }

        let there = dir.path().join(format!("{name}-workspace"));
        example_workspace(&there);
        let empty = dir.path().join(format!("{name}-empty"));
        fs::create_dir(&empty).unwrap();
        let source = format!("{target}:web-1.0-openvz-x86_64");
        let sysroot = ["--sysroot", empty.to_str().unwrap()];
        appliance(&there, &[&sysroot[..], &["pull", &source]].concat());
        let out = dir.path().join(format!("{name}.tar.gz"));
        assert_eq!(
            template(&there, &empty, &out),
            here,
            "{name}: another template"
        );
        assert!(
            names(&empty).is_empty(),
            "materialise wrote into the sysroot"
        );
    }
}
