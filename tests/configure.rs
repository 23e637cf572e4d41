//! End to end on the real machine: compile configures the packages with their own
//! maintainer scripts, confined. The closure comes from this host's dpkg database (its
//! essential packages, adduser) plus archives the tests build with `dpkg-deb`; running
//! scripts confined needs root, so as another user each test says it skipped.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::Path;

use common::{
    appliance, build_deb, build_deb_with, differing_paths, fails, fake_workspace, is_root, lock_id,
    ok,
};

/// The group: the host's essential packages, adduser, and `extra` from the pool.
fn group(extra: &str) -> String {
    format!(
        "group tiny version=\"1.0\" {{\n    flavors openvz\n    package adduser\n    package {extra}\n    exclude \"/usr/share/doc/*\" \"/usr/share/man/*\" \"/usr/share/locale/*\"\n}}\n"
    )
}

/// Whether this user cannot run the scripts confined, which needs root: the test then
/// says it skipped.
fn cannot_configure() -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped: configuring runs scripts in a user namespace, which needs root");
    true
}

/// `materialise` of the tiny group as a chroot `out`, with archives from `pool`.
fn chroot_args<'a>(out: &'a str, pool: &'a str) -> [&'a str; 10] {
    [
        "materialise",
        "tiny",
        "--flavor",
        "openvz",
        "--format",
        "chroot",
        "-o",
        out,
        "--pool",
        pool,
    ]
}

/// A workspace at `ws` whose tiny group asks for `name`, and a pool `debs` there
/// holding `name` at `version` with `files` and maintainer `scripts`; returns the pool.
fn one_package(
    ws: &Path,
    name: &str,
    version: &str,
    files: &[(&str, &str)],
    scripts: &[(&str, &str)],
) -> std::path::PathBuf {
    fake_workspace(ws, &[("tiny", &group(name))]);
    let pool = ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    build_deb(&pool, name, version, files, &[], scripts);
    pool
}

fn chroot(ws: &Path, out: &str, pool: &str) -> std::path::PathBuf {
    ok(ws, &chroot_args(out, pool));
    ws.join(out)
}

#[test]
fn a_pool_packages_postinst_makes_its_account_and_alternative() {
    if cannot_configure() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    // What a daemon's postinst does: a system user through a variable (which no reading
    // of the script could follow) and an alternative of higher priority than mawk's.
    let pool = one_package(
        ws,
        "tinyd",
        "1.0-1",
        &[("/usr/bin/tinyd-awk", "#!/bin/sh\n")],
        &[(
            "postinst",
            "#!/bin/sh\nset -e\nUSER=tinyd\nif [ \"$1\" = configure ]; then\n  adduser --system --quiet --home /var/lib/tinyd --no-create-home \"$USER\"\n  update-alternatives --install /usr/bin/awk awk /usr/bin/tinyd-awk 50\n  mkdir -p /var/lib/tinyd && chown tinyd /var/lib/tinyd\nfi\n",
        )],
    );
    ok(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
    let tree = chroot(ws, "tree", "debs");
    let passwd = fs::read_to_string(tree.join("etc/passwd")).unwrap();
    let tinyd = passwd
        .lines()
        .find(|l| l.starts_with("tinyd:"))
        .unwrap_or_default();
    assert!(
        tinyd.ends_with(":/var/lib/tinyd:/usr/sbin/nologin"),
        "{passwd}"
    );
    let uid: u32 = tinyd.split(':').nth(2).unwrap().parse().unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(tree.join("var/lib/tinyd")).unwrap().uid(), uid);
    assert_eq!(
        fs::read_link(tree.join("etc/alternatives/awk")).unwrap(),
        Path::new("/usr/bin/tinyd-awk")
    );
    // dpkg inside knows every package configured, and no script is left half done.
    let status = fs::read_to_string(tree.join("var/lib/dpkg/status")).unwrap();
    assert!(!status.contains(" unpacked\n"), "{status}");
    assert!(
        status.contains("Package: tinyd\nStatus: install ok installed\n"),
        "{status}"
    );
    // The guards are gone and no secret of a first boot stays.
    assert!(!tree.join("usr/sbin/policy-rc.d").exists());
    assert!(
        !tree
            .join("usr/sbin/start-stop-daemon.appliance-real")
            .exists()
    );
    assert_eq!(fs::read(tree.join("etc/machine-id")).unwrap(), b"");

    // Without the archive, and any copy of its files the materialise above kept
    // unpacked, the file can come from nowhere: a clear error, no output.
    fs::remove_dir_all(&pool).unwrap();
    fs::create_dir(&pool).unwrap();
    let _ = fs::remove_dir_all(ws.join("store/unpacked"));
    let err = fails(ws, &chroot_args("again", "debs"));
    assert!(
        err.contains(
            "/usr/bin/tinyd-awk (package tinyd): missing; no archive of tinyd 1.0-1 (amd64)"
        ),
        "{err}"
    );
    assert!(!ws.join("again").exists());
}

#[test]
fn a_preinst_runs_after_what_its_package_pre_depends_on_is_configured_and_triggers_wait() {
    if cannot_configure() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    fake_workspace(ws, &[("tiny", &group("needer"))]);
    let pool = ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    // As mariadb-server's preinst runs adduser, whose chfn needs the PAM files
    // libpam-runtime's postinst writes: dpkg promises a preinst its Pre-Depends
    // configured, with what they depend on.
    // Both maker and needer activate a trigger made-by-postinst is interested in, the
    // first while what needer's preinst needs is configured: as apt does, that
    // configure leaves it pending, and the last one runs it once.
    let activates = [("triggers", "activate-noawait counted\n")];
    build_deb_with(
        &pool,
        "maker",
        "1.0",
        "Depends: made-by-postinst\n",
        &[("/usr/share/maker/x", "x")],
        &[],
        &activates,
    );
    build_deb(
        &pool,
        "made-by-postinst",
        "1.0",
        &[("/usr/share/made/x", "x")],
        &[],
        &[
            (
                "postinst",
                "#!/bin/sh\nset -e\nmkdir -p /etc/made\nif [ \"$1\" = triggered ]; then\n\
                 echo \"$2\" >> /etc/made/triggered\nelse\n    echo made > /etc/made/made\nfi\n",
            ),
            ("triggers", "interest-noawait counted\n"),
        ],
    );
    build_deb_with(
        &pool,
        "needer",
        "1.0",
        "Pre-Depends: maker\n",
        &[("/usr/share/needer/x", "x")],
        &[],
        &[
            (
                "preinst",
                "#!/bin/sh\nset -e\nmkdir -p /var/lib/needer\ncp /etc/made/made /var/lib/needer/seen\n",
            ),
            activates[0],
        ],
    );
    ok(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
    let tree = chroot(ws, "tree", "debs");
    assert_eq!(
        fs::read_to_string(tree.join("var/lib/needer/seen")).unwrap(),
        "made\n"
    );
    assert_eq!(
        fs::read_to_string(tree.join("etc/made/triggered")).unwrap(),
        "counted\n"
    );
}

#[test]
fn scripts_find_the_folders_a_group_excludes_and_a_package_without_files_passes_audit() {
    if cannot_configure() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    fake_workspace(ws, &[("tiny", &group("jre"))]);
    let pool = ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    // As openjdk's postinst: an alternative whose manual page links into
    // /usr/share/man/man1, which the group excludes (update-alternatives fails when
    // the folder is gone, as in Docker's slim images).
    build_deb_with(
        &pool,
        "jre",
        "1.0",
        "Depends: jre-meta\n",
        &[
            ("/usr/lib/jre/bin/java", "#!/bin/sh\n"),
            ("/usr/lib/jre/man/java.1.gz", "man"),
            ("/usr/share/man/man1/jre-tool.1.gz", "man"),
        ],
        &[],
        &[(
            "postinst",
            "#!/bin/sh\nset -e\nupdate-alternatives --install /usr/bin/java java /usr/lib/jre/bin/java 10 \\\n  --slave /usr/share/man/man1/java.1.gz java.1.gz /usr/lib/jre/man/java.1.gz\n",
        )],
    );
    // As python3-venv: no file at all, so no md5sums either; dpkg keeps an empty one.
    build_deb(&pool, "jre-meta", "1.0", &[] as &[(&str, &str)], &[], &[]);
    ok(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
    let tree = chroot(ws, "tree", "debs");
    assert_eq!(
        fs::read_link(tree.join("usr/bin/java")).unwrap(),
        Path::new("/etc/alternatives/java")
    );
    assert!(tree.join("usr/share/man").is_dir());
    assert!(!tree.join("usr/share/man/man1").exists(), "excluded");
    assert_eq!(
        fs::read(tree.join("var/lib/dpkg/info/jre-meta.md5sums")).unwrap(),
        b""
    );
}

#[test]
fn a_hostile_postinst_changes_nothing_outside_the_staged_tree() {
    if cannot_configure() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir(&ws).unwrap();
    fake_workspace(&ws, &[("tiny", &group("evil"))]);
    let victim = dir.path().join("pwned");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let v = victim.display();
    // Every way out a root process has: the path itself, PID 1's root, a chroot escape,
    // and a socket to the host.
    let postinst = format!(
        r#"#!/bin/sh
touch {v} ; echo x > /proc/1/root{v} ; echo x > /proc/self/root/../../..{v}
perl -e 'mkdir "/jail"; chroot "/jail"; chdir ".." for 1..64; chroot "."; open my $f, ">", "{v}"'
perl -MIO::Socket::INET -e 'IO::Socket::INET->new(PeerAddr => "127.0.0.1:{port}", Timeout => 2)'
mkdir -p /var/lib/evil && echo ran > /var/lib/evil/ran
perl -MIO::Socket::INET -e '$l = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0") or exit 1;
    IO::Socket::INET->new(PeerAddr => "127.0.0.1:" . $l->sockport, Timeout => 2) or exit 1' \
    && echo up > /var/lib/evil/loopback
exit 0
"#
    );
    let pool = ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    build_deb(
        &pool,
        "evil",
        "1.0",
        &[("/usr/share/evil/x", "x")],
        &[],
        &[("postinst", &postinst)],
    );
    ok(&ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
    assert!(!victim.exists(), "a script wrote {v} on the host");
    assert!(
        listener.accept().is_err(),
        "a script reached the host's network"
    );
    // It did run, confined: what it made inside is locked.
    let tree = chroot(&ws, "tree", "debs");
    assert_eq!(
        fs::read_to_string(tree.join("var/lib/evil/ran")).unwrap(),
        "ran\n"
    );
    // Its own loopback is up (a script's tools may talk to themselves), and is not the
    // host's: the connection above never arrived.
    assert_eq!(
        fs::read_to_string(tree.join("var/lib/evil/loopback")).unwrap(),
        "up\n"
    );
}

#[test]
fn configuring_twice_in_fresh_stores_gives_the_same_lock() {
    if cannot_configure() {
        return;
    }
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let ids: Vec<String> = (dirs.iter())
        .map(|dir| {
            let ws = dir.path();
            fake_workspace(ws, &[("tiny", &group("passwd"))]);
            ok(ws, &["compile", "groups/tiny.kdl"]);
            let shown = ok(ws, &["show", "tiny", "--flavor", "openvz", "--json"]);
            let lock: serde_json::Value = serde_json::from_str(&shown).unwrap();
            lock["lock_id"].as_str().unwrap().to_string()
        })
        .collect();
    let differ = differing_paths(
        (dirs[0].path(), "1.0-1"),
        (dirs[1].path(), "1.0-1"),
        "tiny",
        "openvz",
    );
    assert!(
        ids[0] == ids[1] && differ.is_empty(),
        "two configure runs differ at {differ:?}"
    );
}

#[test]
fn a_secret_a_script_makes_for_its_machine_is_never_locked() {
    if cannot_configure() {
        return;
    }
    // As ssl-cert's postinst: a new random key each time, and the hash link to its
    // certificate; and as dovecot's, links to the pair. Locked, every machine would
    // share the key and no two compiles agree.
    let postinst = "#!/bin/sh\nset -e\nmkdir -p /etc/ssl/private /etc/ssl/certs\n\
        head -c 32 /dev/urandom > /etc/ssl/private/ssl-cert-snakeoil.key\n\
        head -c 32 /dev/urandom > /etc/ssl/certs/ssl-cert-snakeoil.pem\n\
        ln -s ssl-cert-snakeoil.pem /etc/ssl/certs/ce275665.0\n\
        mkdir -p /etc/dovecot/private\n\
        ln -s /etc/ssl/certs/ssl-cert-snakeoil.pem /etc/dovecot/private/dovecot.pem\n\
        echo kept > /etc/ssl/certs/other.pem\n";
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut ids = Vec::new();
    for dir in &dirs {
        let ws = dir.path();
        one_package(
            ws,
            "snakeoil",
            "1.0",
            &[("/usr/sbin/make-ssl-cert", "#!/bin/sh\n")],
            &[("postinst", postinst)],
        );
        let compiled = ok(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
        ids.push(lock_id(&compiled).unwrap());
    }
    let ws = dirs[0].path();
    let tree = chroot(ws, "tree", "debs");
    for gone in [
        "etc/ssl/private/ssl-cert-snakeoil.key",
        "etc/ssl/certs/ssl-cert-snakeoil.pem",
        "etc/ssl/certs/ce275665.0",
    ] {
        assert!(fs::symlink_metadata(tree.join(gone)).is_err(), "{gone}");
    }
    assert!(tree.join("etc/ssl/certs/other.pem").exists());
    // dovecot's link to the pair stays: it resolves once the first boot makes them.
    let link = fs::read_link(tree.join("etc/dovecot/private/dovecot.pem")).unwrap();
    assert_eq!(link, Path::new("/etc/ssl/certs/ssl-cert-snakeoil.pem"));
    let differ = differing_paths(
        (dirs[0].path(), "1.0-1"),
        (dirs[1].path(), "1.0-1"),
        "tiny",
        "openvz",
    );
    assert!(differ.is_empty(), "two configure runs differ at {differ:?}");
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn a_script_finds_the_host_keys_it_would_make_and_none_is_locked() {
    if cannot_configure() {
        return;
    }
    // As openssh-server's postinst: each host key made only where its file is missing
    // (an RSA key takes up to a second); and as dropbear's, which would convert the
    // SSH keys (empty files then) unless it finds one of its own. This one says which
    // it found.
    let postinst = "#!/bin/sh\nset -e\nfor t in rsa ecdsa ed25519; do\n\
        f=/etc/ssh/ssh_host_${t}_key\n\
        if [ -f \"$f\" ]; then echo \"found $t\" >> /etc/keyd.log; else\n\
        head -c 32 /dev/urandom > \"$f\"; echo \"made $t\" >> /etc/keyd.log; fi\n\
        [ -e /etc/dropbear/dropbear_${t}_host_key ] && echo \"found dropbear $t\" >> /etc/keyd.log\n\
        done\n";
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    one_package(
        ws,
        "keyd",
        "1.0",
        &[
            ("/etc/ssh/sshd_config", "Port 22\n"),
            ("/etc/dropbear/run", "#!/bin/sh\n"),
        ],
        &[("postinst", postinst)],
    );
    ok(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
    let tree = chroot(ws, "tree", "debs");
    assert_eq!(
        fs::read_to_string(tree.join("etc/keyd.log")).unwrap(),
        "found rsa\nfound dropbear rsa\nfound ecdsa\nfound dropbear ecdsa\n\
         found ed25519\nfound dropbear ed25519\n"
    );
    let left = |dir: &str| -> Vec<String> {
        (fs::read_dir(tree.join(dir)).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(left("etc/ssh"), ["sshd_config"]);
    assert_eq!(left("etc/dropbear"), ["run"]);
}

#[test]
fn a_tree_is_configured_in_memory_and_on_disk_when_its_scripts_outgrow_it() {
    if cannot_configure() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let on = |path: &Path| {
        let out = std::process::Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    if on(ws) == "tmpfs" {
        eprintln!(
            "skipped: the test's folder is on a tmpfs, which cannot be told from the memory a tree is staged in"
        );
        return;
    }
    // The postinst says where its tree is staged; given `fill`, it writes more than a
    // tree in memory has room for (at most that room: only in memory), as a script
    // writing a large cache would, and fails there for room.
    let staged_on = |fill: bool| {
        let ws = ws.join(if fill { "fill" } else { "plain" });
        fake_workspace(&ws, &[("tiny", &group("where"))]);
        let pool = ws.join("debs");
        fs::create_dir_all(&pool).unwrap();
        let mut postinst = String::from("#!/bin/sh\nset -e\n");
        if fill {
            postinst.push_str(
                "if [ \"$(stat -f -c %T /)\" = tmpfs ]; then\n\
                 head -c $(( $(df -k --output=avail / | tail -1) * 1024 + 4096 )) /dev/zero > /var/tmp/fill\n\
                 fi\n",
            );
        }
        postinst.push_str("stat -f -c %T / > /etc/staged-on\n");
        build_deb(
            &pool,
            "where",
            "1.0",
            &[("/usr/sbin/where", "#!/bin/sh\n")],
            &[],
            &[("postinst", &postinst)],
        );
        ok(&ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
        let root = chroot(&ws, "out", "debs");
        fs::read_to_string(root.join("etc/staged-on")).unwrap()
    };
    assert_eq!(staged_on(false), "tmpfs\n");
    // Configured again on disk, with nothing of the first try left.
    let disk = staged_on(true);
    assert_ne!(disk, "tmpfs\n");
    assert_eq!(disk.trim(), on(ws));
    let store = fs::read_dir(ws.join("fill/store")).unwrap();
    let left: Vec<_> = (store.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_private_key_a_script_made_that_the_lock_keeps_is_named_in_a_warning() {
    if cannot_configure() {
        return;
    }
    // As ircd-hybrid's or epoptes's postinst: a key appliance knows no first-boot unit
    // for. Compile says so, naming it; once the group excludes it, it says nothing.
    let postinst = "#!/bin/sh\nset -e\nmkdir -p /etc/keyd\n\
        { echo '-----BEGIN PRIVATE KEY-----'; od -An -tx1 -N48 /dev/urandom; \
        echo '-----END PRIVATE KEY-----'; } > /etc/keyd/key.pem\n\
        echo 'no key' > /etc/keyd/keyd.conf\n";
    let warned = |postinst: &str, excluded: bool| {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        let mut text = group("keyd");
        if excluded {
            text = text.replace("    exclude ", "    exclude \"/etc/keyd/key.pem\" ");
        }
        fake_workspace(ws, &[("tiny", &text)]);
        let pool = ws.join("debs");
        fs::create_dir_all(&pool).unwrap();
        build_deb(
            &pool,
            "keyd",
            "1.0",
            &[("/usr/sbin/keyd", "#!/bin/sh\n")],
            &[],
            &[("postinst", postinst)],
        );
        let out = appliance(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let stderr = warned(postinst, false);
    assert!(
        stderr.contains(
            "warning: group tiny for flavor [!kernel,openvz is: x86_64]: /etc/keyd/key.pem holds a private key a maintainer script made"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("keyd.conf"), "{stderr}");
    let stderr = warned(postinst, true);
    assert!(!stderr.contains("private key"), "{stderr}");
    // A hostile script's name for its key cannot forge a line of the warning's own (a
    // newline is refused in any path; a carriage return would overwrite the line).
    let forging = postinst.replace("/etc/keyd/key.pem", "'/etc/keyd/k\rwarning: forged'");
    let stderr = warned(&forging, false);
    assert!(
        stderr.contains("/etc/keyd/k\\rwarning: forged holds a private key"),
        "{stderr}"
    );
    assert!(!stderr.contains("\rwarning: forged"), "{stderr:?}");
}

/// The user the test below compiles as: made (once) with 65536 subordinate ids, as an
/// admin gives them to whoever builds appliances without root.
const BUILDER: &str = "appliance-test";

fn builder_with_subordinate_ids() -> (u32, u32) {
    let known = std::process::Command::new("id")
        .arg(BUILDER)
        .output()
        .unwrap();
    if !known.status.success() {
        let made = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(BUILDER)
            .status()
            .unwrap();
        assert!(made.success());
    }
    let subuid = fs::read_to_string("/etc/subuid").unwrap_or_default();
    if !subuid
        .lines()
        .any(|l| l.starts_with(&format!("{BUILDER}:")))
    {
        let given = std::process::Command::new("usermod")
            .args([
                "--add-subuids",
                "3000000-3065535",
                "--add-subgids",
                "3000000-3065535",
            ])
            .arg(BUILDER)
            .status()
            .unwrap();
        assert!(given.success());
    }
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .args([flag, BUILDER])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

#[test]
fn a_user_with_subordinate_ids_configures_and_gets_roots_lock() {
    if !is_root() {
        eprintln!("skipped: the test makes a user with subordinate ids, which needs root");
        return;
    }
    if std::process::Command::new("newuidmap").output().is_err() {
        eprintln!("skipped: newuidmap is not installed (Debian's uidmap; .ci/run installs it)");
        return;
    }
    let (uid, gid) = builder_with_subordinate_ids();
    let as_root = tempfile::tempdir().unwrap();
    fake_workspace(as_root.path(), &[("tiny", &group("passwd"))]);
    let by_root = ok(as_root.path(), &["compile", "groups/tiny.kdl"]);

    // Nobody has no subordinate ids: the error says what an admin gives.
    let denied = tempfile::tempdir().unwrap();
    fake_workspace(denied.path(), &[("tiny", &group("passwd"))]);
    std::os::unix::fs::chown(denied.path(), Some(65534), Some(65534)).unwrap();
    for sub in ["groups", "flavors"] {
        for entry in fs::read_dir(denied.path().join(sub)).unwrap() {
            std::os::unix::fs::chown(entry.unwrap().path(), Some(65534), Some(65534)).unwrap();
        }
    }
    let refused = common::refused(common::through(
        common::AS_NOBODY,
        denied.path(),
        &["compile", "groups/tiny.kdl"],
    ));
    assert!(
        refused.contains("subordinate") && refused.contains("/etc/subuid"),
        "{refused}"
    );

    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    fake_workspace(ws, &[("tiny", &group("passwd"))]);
    let chowned = std::process::Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(ws)
        .status()
        .unwrap();
    assert!(chowned.success());
    let (uid, gid) = (format!("--reuid={uid}"), format!("--regid={gid}"));
    let as_builder = ["setpriv", &uid, &gid, "--clear-groups"];
    let by_builder = common::succeeds(common::through(
        &as_builder,
        ws,
        &["compile", "groups/tiny.kdl"],
    ));
    assert_eq!(lock_id(&by_root), lock_id(&by_builder), "{by_builder}");
    // The staged tree, owned by the builder's subordinate ids, was removed by the child
    // that could: the store holds only what a compile keeps.
    let left: Vec<String> = common::names(&ws.join("store"));
    assert!(
        left.iter()
            .all(|n| ["blobs", "repo.sqlite", "pool"].contains(&n.as_str())
                || n.starts_with("repo.sqlite-")),
        "{left:?}"
    );
}

#[test]
fn a_file_a_script_gives_to_an_account_the_tree_lacks_is_refused() {
    if cannot_configure() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    // A postinst that chowns its file to ids no account of the tree has: the lock would
    // hand the file to whatever account a machine later makes with those ids.
    one_package(
        ws,
        "strange",
        "1.0-1",
        &[("/usr/share/strange/data", "x\n")],
        &[(
            "postinst",
            "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  chown 4242:4243 /usr/share/strange/data\nfi\n",
        )],
    );
    let err = fails(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
    assert!(
        err.contains(
            "the configured tree has entries owned by ids its own /etc/passwd and /etc/group \
             do not name, which no fresh install of its packages makes: \
             /usr/share/strange/data (package strange) has group id 4243; \
             /usr/share/strange/data (package strange) has user id 4242"
        ),
        "{err}"
    );
    assert!(!ws.join("store/repo.sqlite").exists());
}

#[test]
fn group_statements_make_accounts_debconf_answers_and_unit_links() {
    if cannot_configure() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let pool = ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    let unit = "[Unit]\nDescription=tiny\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n";
    // What deb-systemd-helper does for a unit enabled by default: the group disables it.
    build_deb(
        &pool,
        "tinyd",
        "1.0-1",
        &[
            ("/usr/lib/systemd/system/tinyd.service", unit),
            ("/usr/lib/systemd/system/tinyd-old.service", unit),
        ],
        &[],
        &[(
            "postinst",
            "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  mkdir -p /etc/systemd/system/multi-user.target.wants\n  ln -sf /lib/systemd/system/tinyd-old.service /etc/systemd/system/multi-user.target.wants/\nfi\n",
        )],
    );
    let text = |statements: &str| {
        format!(
            "group tiny version=\"1.0\" {{\n    flavors openvz\n    package adduser\n    package debconf\n    package systemd\n    package tinyd\n    exclude \"/usr/share/doc/*\" \"/usr/share/man/*\" \"/usr/share/locale/*\"\n{statements}}}\n"
        )
    };
    let statements = "    user app uid=2000 group=\"media\" home=\"/var/lib/app\" system=#true\n    group media gid=2001\n    user alice\n    user www-data\n    debconf \"tinyd tinyd/greeting string hello world\"\n    enable tinyd\n    disable tinyd-old.service\n    file \"/etc/systemd/system/mine.service\" content=\"[Service]\\nExecStart=/bin/true\\n[Install]\\nWantedBy=multi-user.target\\n\"\n    enable mine\n";
    fake_workspace(ws, &[("tiny", &text(statements))]);
    ok(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
    let tree = chroot(ws, "tree", "debs");
    let lines = |path: &str, names: &[&str]| -> Vec<String> {
        let text = fs::read_to_string(tree.join(path)).unwrap();
        (text.lines())
            .filter(|l| names.iter().any(|n| l.starts_with(&format!("{n}:"))))
            .map(|l| l.to_string())
            .collect()
    };
    let passwd = lines("etc/passwd", &["app", "alice", "www-data"]);
    assert_eq!(
        passwd[0],
        "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin"
    );
    assert_eq!(passwd[1], "app:x:2000:2001::/var/lib/app:/usr/sbin/nologin");
    assert!(passwd[2].starts_with("alice:x:") && passwd[2].ends_with(":/home/alice:/bin/sh"));
    let group = lines("etc/group", &["media", "alice"]);
    assert_eq!(group[0], "media:x:2001:");
    assert!(group[1].starts_with("alice:x:"), "{group:?}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(tree.join("var/lib/app")).unwrap().uid(), 2000);
    assert!(
        tree.join("home/alice/.bashrc").is_file(),
        "a user's home is made from /etc/skel"
    );
    // Passwords stay locked.
    assert!(lines("etc/shadow", &["alice"])[0].starts_with("alice:!:"));
    let config = fs::read_to_string(tree.join("var/cache/debconf/config.dat")).unwrap();
    assert!(
        config.contains("Name: tinyd/greeting\nTemplate: tinyd/greeting\nValue: hello world\n"),
        "{config}"
    );
    let wants = tree.join("etc/systemd/system/multi-user.target.wants");
    assert_eq!(
        fs::read_link(wants.join("tinyd.service")).unwrap(),
        Path::new("/lib/systemd/system/tinyd.service")
    );
    assert!(fs::symlink_metadata(wants.join("tinyd-old.service")).is_err());
    // A unit the group brings itself is enabled too.
    assert_eq!(
        fs::read_link(wants.join("mine.service")).unwrap(),
        Path::new("/etc/systemd/system/mine.service")
    );

    // What the tree cannot do fails the compile at the statement, and stores nothing.
    let before = ok(ws, &["list"]);
    let uid = statements.replace("user www-data\n", "user www-data uid=2002\n");
    fs::write(ws.join("groups/tiny.kdl"), text(&uid)).unwrap();
    let err = fails(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
    assert!(
        err.contains("groups/tiny.kdl:11:5: user www-data exists already with id 33 (a package made it), not 2002"),
        "{err}"
    );
    let unit = statements.replace("enable tinyd\n", "enable tinyd nosuch\n");
    fs::write(ws.join("groups/tiny.kdl"), text(&unit)).unwrap();
    let err = fails(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
    assert!(
        err.contains("groups/tiny.kdl:13:18: systemctl enable nosuch: ")
            && err.contains("nosuch.service does not exist"),
        "{err}"
    );
    let tool = "    enable tinyd\n";
    let text = format!(
        "group tiny version=\"1.0\" {{\n    flavors openvz\n    package adduser\n{tool}}}\n"
    );
    fs::write(ws.join("groups/tiny.kdl"), text).unwrap();
    let err = fails(ws, &["compile", "groups/tiny.kdl"]);
    assert!(
        err.contains("groups/tiny.kdl:4:12: `enable` needs /usr/bin/systemctl in the tree: add `package systemd`"),
        "{err}"
    );
    assert_eq!(ok(ws, &["list"]), before);
}

#[test]
fn flavors_with_the_same_tree_configure_it_once() {
    if cannot_configure() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    fake_workspace(ws, &[("tiny", &group("systemd"))]);
    // xen and kvm differ only in what is laid over the packages and in the flavor named
    // where systemd-networkd is asked for, so the second reuses the first's
    // configuration.
    let out = ok(
        ws,
        &[
            "compile",
            "groups/tiny.kdl",
            "--flavor",
            "xen",
            "--flavor",
            "kvm",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("[kernel,xen is: x86_64] stored") && lines[0].contains("configured in"),
        "{out}"
    );
    assert!(
        lines[1].contains("[kernel,kvm is: x86_64] stored") && !lines[1].contains("configured in"),
        "{out}"
    );
}

/// Makes the tiny group of `ws` ask for passwd and lay a `/etc/motd` of `content` over
/// the packages.
fn motd_of_passwd(ws: &Path, content: &str) {
    let text = group("passwd").replace(
        "flavors openvz\n",
        &format!("flavors openvz\n    file \"/etc/motd\" mode=0o644 content=\"{content}\"\n"),
    );
    fs::write(ws.join("groups/tiny.kdl"), text).unwrap();
}

#[test]
fn a_group_edited_outside_its_packages_takes_its_kept_tree() {
    if cannot_configure() {
        return;
    }
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let ws = dirs[0].path();
    fake_workspace(ws, &[("tiny", &group("passwd"))]);
    let first = ok(ws, &["compile", "groups/tiny.kdl"]);
    assert!(first.contains("configured in"), "{first}");
    // A file laid over the packages is no part of what the scripts configure.
    motd_of_passwd(ws, "edited");
    let edited = ok(ws, &["compile", "groups/tiny.kdl"]);
    assert!(
        edited.contains("1.0-2") && !edited.contains("configured in"),
        "{edited}"
    );
    // The lock is the one a store that never configured it makes.
    let fresh = dirs[1].path();
    fake_workspace(fresh, &[("tiny", &group("passwd"))]);
    motd_of_passwd(fresh, "edited");
    let configured = ok(fresh, &["compile", "groups/tiny.kdl"]);
    assert!(configured.contains("configured in"), "{configured}");
    assert_eq!(lock_id(&edited), lock_id(&configured));
    // Kept bytes no appliance wrote are not taken: the scripts run again.
    let repo = rusqlite::Connection::open(ws.join("store/repo.sqlite")).unwrap();
    let kept = repo
        .execute("UPDATE configurations SET tree = x'28b52ffd00'", [])
        .unwrap();
    assert_eq!(kept, 1);
    drop(repo);
    motd_of_passwd(ws, "again");
    let again = ok(ws, &["compile", "groups/tiny.kdl"]);
    assert!(
        again.contains("1.0-3") && again.contains("configured in"),
        "{again}"
    );
    // The tree goes with the revisions made from it.
    ok(ws, &["gc", "--keep", "1"]);
    let repo = rusqlite::Connection::open(ws.join("store/repo.sqlite")).unwrap();
    let trees: i64 =
        (repo.query_row("SELECT COUNT(*) FROM configurations", [], |r| r.get(0))).unwrap();
    assert_eq!(trees, 1);
    drop(repo);
    ok(ws, &["rm", "tiny=1.0-3"]);
    let repo = rusqlite::Connection::open(ws.join("store/repo.sqlite")).unwrap();
    let trees: i64 =
        (repo.query_row("SELECT COUNT(*) FROM configurations", [], |r| r.get(0))).unwrap();
    assert_eq!(trees, 0);
}

#[test]
fn a_tree_that_fails_while_another_is_configured_fails_the_compile_and_leaves_nothing() {
    if cannot_configure() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    // Two trees, configured at once: xen's succeeds, openvz's postinst fails.
    let text = "group tiny version=\"1.0\" {\n    flavors xen openvz\n    package adduser\n    \
                when openvz { package broken; }\n}\n";
    fake_workspace(ws, &[("tiny", text)]);
    let pool = ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    build_deb(
        &pool,
        "broken",
        "1.0-1",
        &[("/usr/share/broken/data", "x\n")],
        &[],
        &[(
            "postinst",
            "#!/bin/sh\necho 'broken: cannot configure' >&2\nexit 3\n",
        )],
    );
    // A store that has a lock already: the failed compile adds none.
    let other = group("passwd").replace("group tiny", "group other");
    fake_workspace(ws, &[("other", &other)]);
    ok(ws, &["compile", "groups/other.kdl"]);
    let listed = ok(ws, &["list"]);
    let err = fails(ws, &["compile", "groups/tiny.kdl", "--pool", "debs"]);
    assert!(
        err.contains("broken") && err.contains("cannot configure"),
        "{err}"
    );
    assert_eq!(ok(ws, &["list"]), listed);
    // Both jobs ended before the compile did, and each removed its scratch tree; the
    // spool went with the bytes the tree that worked made.
    let store: Vec<String> = (fs::read_dir(ws.join("store")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !store.iter().any(|name| name.contains(".tmp-")),
        "{store:?}"
    );
}

#[test]
fn a_kept_tree_whose_bytes_were_swept_is_configured_again() {
    if cannot_configure() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    fake_workspace(ws, &[("tiny", &group("passwd"))]);
    let first = ok(ws, &["compile", "groups/tiny.kdl"]);
    assert!(first.contains("configured in"), "{first}");
    // The bytes configuring made are in the blob store, and the kept tree names them.
    let blobs = ws.join("store/blobs");
    assert!(fs::read_dir(&blobs).unwrap().count() > 0);
    fs::remove_dir_all(&blobs).unwrap();
    motd_of_passwd(ws, "swept");
    let again = ok(ws, &["compile", "groups/tiny.kdl"]);
    assert!(
        again.contains("1.0-2") && again.contains("configured in"),
        "{again}"
    );
    // Every byte the new revision needs is there, and the spool went.
    let root = ws.join("out");
    ok(
        ws,
        &[
            "materialise",
            "tiny",
            "--flavor",
            "openvz",
            "--format",
            "chroot",
            "-o",
            "out",
        ],
    );
    assert!(
        fs::read_to_string(root.join("var/lib/dpkg/status"))
            .unwrap()
            .contains("Package: passwd")
    );
    assert_eq!(fs::read_to_string(root.join("etc/motd")).unwrap(), "swept");
    let left: Vec<_> = (fs::read_dir(ws.join("store")).unwrap().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
