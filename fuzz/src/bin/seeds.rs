//! Writes the seed corpora: `seeds DIR` fills `DIR/<target>/` with small valid inputs
//! made here in code (no binary seeds are committed), each named by what it shows.

use std::fs;
use std::io::Write;
use std::path::Path;

use appliance_fuzz::{AR_MAGIC, CONTROL, ar_member, control_tar, deb};

/// The examples of the language reference: a group using every statement, flavors,
/// conditions and canonical strings.
const GROUP: &str = r#"group web version="1.0" {
    summary "nginx web appliance"
    flavors xen kvm openvz
    include base
    package nginx-light
    package openssh-server version=">= 1:9.2"
    package mawk when="!kernel"
    remove exim4-base
    when kernel {
        package linux-image-amd64
        module virtio_blk virtio_net ext4
    }
    when "xen || kvm" { module xen-blkfront }
    when kernel && "!(xen || kvm)" arch=x86_64 { cmd "/bin/sh" }
    exclude "/usr/share/doc/*" "/usr/share/man/*"
    hostfile "/etc/ssl/certs/*.pem"
    hostfile "/etc/ssl/private/web.key" secret=#true
    overlay "overlays/web" secret=#false
    paths "/usr/bin/bash" "/etc/skel"
    file "/etc/hostname" mode=0o644 content="web\n"
    cmd "/usr/sbin/nginx" "-g" "daemon off;"
}
"#;

const FLAVOR: &str =
    "flavor xen {\n    arch x86_64\n    use xen=#true kernel=#true\n    format image\n}\n";

const STATUS: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\n\
Architecture: amd64\nMulti-Arch: same\nVersion: 2.36-9+deb12u4\n\
Depends: libgcc-s1, libc-bin (= 2.36-9+deb12u4)\nBreaks: hurd (<< 1:0.9.git20220301-2), nscd (<< 2.36)\n\
Conffiles:\n /etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab\n \
/etc/old.conf 0123456789abcdef0123456789abcdef obsolete\n\
Description: GNU C Library\n Contains the standard libraries.\n .\n More.\n\n\
Package: bash\nEssential: yes\nStatus: install ok installed\nArchitecture: amd64\n\
Version: 5.2.15-2+b2\nPre-Depends: libc6 (>= 2.36), libtinfo6 (>= 6)\n\
Provides: sh\nDepends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1) | busybox:any\n\n\
Package: gone\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1:0.1~rc1-1\n";

const MD5SUMS: &str = "d41d8cd98f00b204e9800998ecf8427e  usr/bin/hello\n\
0123456789abcdef0123456789abcdef  /usr/share/doc/hello/copyright\n";

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: seeds CORPUS_DIR");
        std::process::exit(2);
    };
    let dir = Path::new(&dir);
    if let Err(e) = write_all(dir) {
        eprintln!("seeds: {}: {e}", dir.display());
        std::process::exit(1);
    }
}

fn write_all(dir: &Path) -> std::io::Result<()> {
    let put = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let at = dir.join(target);
        fs::create_dir_all(&at)?;
        fs::write(at.join(name), bytes)
    };
    // lang: the first byte picks the parser (0 group, 1 flavor, 2 condition, 3 canonical).
    put("lang", "group", &[&[0u8][..], GROUP.as_bytes()].concat())?;
    put(
        "lang",
        "group-bad",
        b"\0group web version=\"1-0\" { packge x; when zen {} }",
    )?;
    put("lang", "flavor", &[&[1u8][..], FLAVOR.as_bytes()].concat())?;
    put("lang", "condition", b"\x02kernel && !(xen || arch=aarch64)")?;
    put("lang", "canonical", b"\x03[!kernel,openvz is: x86_64]")?;

    put("dpkg_status", "status", STATUS.as_bytes())?;
    put("dpkg_status", "control", CONTROL.as_bytes())?;
    put("dpkg_status", "md5sums", MD5SUMS.as_bytes())?;
    put(
        "dpkg_status",
        "versions",
        b"1.0~rc1\n1:0.9-1\n2.36-9+deb12u4\n",
    )?;

    let data = data_tar()?;
    for (name, compressed) in compressions(&data)? {
        let control = compressions(&control_tar())?;
        let mut ar = AR_MAGIC.to_vec();
        ar_member(&mut ar, "debian-binary", b"2.0\n");
        let (cname, cbytes) = &control[1];
        ar_member(&mut ar, &format!("control.tar{cname}"), cbytes);
        ar_member(&mut ar, &format!("data.tar{name}"), &compressed);
        // Even first byte: the whole archive.
        put(
            "deb",
            &format!("deb-data{name}"),
            &[&[0u8][..], &ar].concat(),
        )?;
    }
    put(
        "deb",
        "plain",
        &[&[0u8][..], &deb(&control_tar(), &data)].concat(),
    )?;
    // Odd first byte 1: the rest (after the cut byte) is data.tar under a valid control.
    put("deb", "data-tar", &[&[1u8, 0][..], &data].concat())?;
    put("overlay_tar", "rich", &data)?;
    put("overlay_tar", "empty", &tar_of(|_| Ok(()))?)?;
    for (name, compression) in [
        ("none", rpm::CompressionType::None),
        ("gzip", rpm::CompressionType::Gzip),
        ("xz", rpm::CompressionType::Xz),
        ("zstd", rpm::CompressionType::Zstd),
    ] {
        let mut bytes = Vec::new();
        rpm_package(compression)?
            .write(&mut bytes)
            .map_err(std::io::Error::other)?;
        // Even first byte: the whole archive.
        put("rpm", &format!("rpm-{name}"), &[&[0u8][..], &bytes].concat())?;
        if name == "gzip" {
            // Odd first byte: the main header alone, as an rpmdb holds it.
            let file = dir.join("rpm/.seed.rpm");
            fs::write(&file, &bytes)?;
            let archive = appliance::source::rpm::RpmArchive::open(&file);
            fs::remove_file(&file)?;
            let blob = archive.map_err(std::io::Error::other)?.header.blob();
            put("rpm", "header", &[&[1u8][..], &blob].concat())?;
        }
    }
    Ok(())
}

/// A small package with what the RPM reader checks: a folder, files (one set-uid, two
/// hard-linked), a symlink, a config file, a ghost, relations and scriptlets.
fn rpm_package(compression: rpm::CompressionType) -> std::io::Result<rpm::Package> {
    use rpm::FileOptions;
    let mut b = rpm::PackageBuilder::new("seed", "1.0", "MIT", "x86_64", "a seed");
    b.using_config(
        rpm::BuildConfig::default()
            .compression(compression)
            .source_date(1_600_000_000),
    );
    let built = (|| {
        b.with_dir_entry(FileOptions::dir("/usr/share/seed"))?
            .with_file_contents("hello\n", FileOptions::new("/usr/bin/seed").permissions(0o4755))?
            .with_file_contents("same\n", FileOptions::new("/usr/lib/seed/a").hardlink("pair"))?
            .with_file_contents("same\n", FileOptions::new("/usr/lib/seed/b").hardlink("pair"))?
            .with_symlink(FileOptions::symlink("/usr/bin/sd", "seed"))?
            .with_file_contents("x=1\n", FileOptions::new("/etc/seed.conf").config().noreplace())?
            .with_ghost(FileOptions::ghost("/var/log/seed.log"))?
            .requires(rpm::Dependency::any("/bin/sh"))
            .requires(rpm::Dependency::any("(a or b)"))
            .provides(rpm::Dependency::eq("seed-api", "2"))
            .obsoletes(rpm::Dependency::less("oldseed", "2"))
            .pre_install_script("echo pre")
            .post_install_script("echo post");
        b.build()
    })();
    built.map_err(std::io::Error::other)
}

/// `bytes` as each member compression a `.deb` may use, with its name suffix.
fn compressions(bytes: &[u8]) -> std::io::Result<Vec<(&'static str, Vec<u8>)>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes)?;
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(bytes)?;
    Ok(vec![
        ("", bytes.to_vec()),
        (".gz", gz.finish()?),
        (".xz", xz.finish()?),
        (".zst", zstd::encode_all(bytes, 1)?),
    ])
}

fn tar_of(
    fill: impl FnOnce(&mut tar::Builder<Vec<u8>>) -> std::io::Result<()>,
) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    fill(&mut b)?;
    b.into_inner()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(0);
    h
}

/// A data tree with every kind of entry the readers take: directories, a file, a
/// symlink, a hard link, a device, a fifo, a long name and a PAX path.
fn data_tar() -> std::io::Result<Vec<u8>> {
    tar_of(|b| {
        use tar::EntryType as T;
        b.append_data(&mut header(T::Directory, 0o755, 0), "./", &b""[..])?;
        b.append_data(&mut header(T::Directory, 0o755, 0), "./usr/", &b""[..])?;
        b.append_data(&mut header(T::Directory, 0o755, 0), "./usr/bin/", &b""[..])?;
        b.append_data(
            &mut header(T::Regular, 0o755, 6),
            "./usr/bin/hello",
            &b"hello\n"[..],
        )?;
        b.append_link(&mut header(T::Symlink, 0o777, 0), "./usr/bin/hi", "hello")?;
        b.append_link(
            &mut header(T::Link, 0o755, 0),
            "./usr/bin/hey",
            "./usr/bin/hello",
        )?;
        let mut dev = header(T::Char, 0o666, 0);
        dev.set_device_major(1)?;
        dev.set_device_minor(3)?;
        b.append_data(&mut dev, "./usr/null", &b""[..])?;
        b.append_data(&mut header(T::Fifo, 0o644, 0), "./usr/pipe", &b""[..])?;
        let long = format!("./usr/{}", "l".repeat(120));
        b.append_data(&mut header(T::Regular, 0o644, 1), &long, &b"x"[..])?;
        b.append_pax_extensions([("path", &b"./usr/pax-name"[..])])?;
        b.append_data(&mut header(T::Regular, 0o644, 1), "./usr/short", &b"y"[..])
    })
}
