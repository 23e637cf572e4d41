//! Packages the tests of the RPM sources build with `rpm::PackageBuilder` (byte-identical
//! between runs): one with every kind of file, flag and relation the readers handle.

use rpm::{
    CompressionType, Dependency, FileOptions, Header, IndexData, IndexTag, PackageBuilder,
    PackageMetadata, Scriptlet,
};

/// The content of `/usr/bin/hello`: bigger than one read buffer.
pub fn big() -> Vec<u8> {
    (0..200_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect()
}

/// `hello-2:1.0-1.x86_64`: files with modes and owners, a hard link pair, a symlink,
/// a `%config(noreplace)`, a ghost, a doc, a license, a capability, a fifo, relations
/// of every kind and scriptlets.
pub fn hello(compression: CompressionType) -> rpm::Package {
    let mut b = PackageBuilder::new("hello", "1.0", "MIT", "x86_64", "says hello");
    b.using_config(
        rpm::BuildConfig::default()
            .compression(compression)
            .source_date(1_600_000_000),
    );
    b.epoch(2).release("1");
    let ok = "building the fixture";
    b.with_dir_entry(FileOptions::dir("/usr/share/hello").permissions(0o755))
        .expect(ok)
        .with_file_contents(
            big(),
            FileOptions::new("/usr/bin/hello").permissions(0o4755),
        )
        .expect(ok)
        .with_file_contents(
            "ping\n",
            FileOptions::new("/usr/bin/ping")
                .permissions(0o755)
                .caps("cap_net_raw=ep")
                .expect(ok),
        )
        .expect(ok)
        .with_file_contents(
            "same\n",
            FileOptions::new("/usr/lib/hello/b").hardlink("pair"),
        )
        .expect(ok)
        .with_file_contents(
            "same\n",
            FileOptions::new("/usr/lib/hello/a").hardlink("pair"),
        )
        .expect(ok)
        .with_symlink(FileOptions::symlink("/usr/bin/hi", "hello"))
        .expect(ok)
        .with_file_contents(
            "greeting=hi\n",
            FileOptions::new("/etc/hello.conf")
                .config()
                .noreplace()
                .user("hello")
                .group("adm")
                .permissions(0o640),
        )
        .expect(ok)
        .with_ghost(FileOptions::ghost("/var/log/hello.log"))
        .expect(ok)
        .with_file_contents(
            "read me\n",
            FileOptions::new("/usr/share/doc/hello/README").doc(),
        )
        .expect(ok)
        .with_file_contents(
            "MIT\n",
            FileOptions::new("/usr/share/licenses/hello/COPYING").license(),
        )
        .expect(ok)
        .with_special_file(FileOptions::fifo("/run/hello.fifo"))
        .expect(ok);
    b.provides(Dependency::any("greeter"))
        .provides(Dependency::eq("libhello.so.1()(64bit)", "1.0"))
        .requires(Dependency::any("/bin/sh"))
        .requires(Dependency::greater_eq("glibc", "2.34"))
        .requires(Dependency::script_pre("shadow-utils"))
        .requires(Dependency::any("(busybox or coreutils)"))
        .conflicts(Dependency::less("hello-old", "1:2"))
        .obsoletes(Dependency::less_eq("hello-legacy", "0.9-1"))
        .pre_install_script("getent passwd hello || useradd -r hello")
        .post_install_script(Scriptlet::new("").prog(vec!["/sbin/ldconfig"]))
        .post_trans_script(Scriptlet::new("print('done')").prog(vec!["<lua>"]))
        .file_trigger_in("/usr/lib/hello/", None, "ldconfig")
        .trans_file_trigger_in("/usr/share/hello/", None, "echo again");
    b.build().expect(ok)
}

/// The bare blob (as rpmdb stores it) of `metadata`'s main header.
pub fn blob(metadata: &PackageMetadata) -> Vec<u8> {
    metadata.header_bytes().expect("writing a header")[8..].to_vec()
}

/// `metadata` with its main header rebuilt after `edit` changed its entries (the
/// region tag is made anew).
pub fn edited(
    metadata: &PackageMetadata,
    edit: impl FnOnce(&mut Vec<(u32, IndexData)>),
) -> PackageMetadata {
    let mut entries = metadata.header.get_all_entries().expect("reading a header");
    entries.retain(|(tag, _)| *tag != IndexTag::RPMTAG_HEADERIMMUTABLE as u32);
    edit(&mut entries);
    let entries = entries
        .into_iter()
        .map(|(tag, data)| rpm::HeaderEntry::new(tag, data));
    PackageMetadata {
        header: Header::from_entries(entries, IndexTag::RPMTAG_HEADERIMMUTABLE),
        ..metadata.clone()
    }
}

/// Replaces the value of `tag` in header entries being edited.
pub fn set(entries: &mut [(u32, IndexData)], tag: IndexTag, data: IndexData) {
    let slot = entries.iter_mut().find(|(t, _)| *t == tag as u32);
    slot.expect("the fixture has the tag").1 = data;
}

/// One cpio member of a payload being edited.
pub struct Member {
    pub name: String,
    pub mode: u32,
    pub ino: u32,
    pub nlink: u32,
    pub content: Vec<u8>,
}

/// `package` (gzip-compressed) with its payload's members replaced by what `edit`
/// makes of them, recompressed; the header is kept.
pub fn with_payload(package: &rpm::Package, edit: impl FnOnce(&mut Vec<Member>)) -> rpm::Package {
    use std::io::{Read, Write};
    let mut cpio = Vec::new();
    flate2::read::GzDecoder::new(package.payload.as_slice())
        .read_to_end(&mut cpio)
        .expect("a gzip payload");
    let mut members = Vec::new();
    let mut reader: &[u8] = &cpio;
    loop {
        let mut member = cpio::NewcReader::new(reader).expect("a cpio member");
        let e = member.entry();
        if e.is_trailer() {
            break;
        }
        let (name, mode, ino, nlink) = (e.name().to_string(), e.mode(), e.ino(), e.nlink());
        let mut content = Vec::new();
        member.read_to_end(&mut content).expect("member content");
        members.push(Member {
            name,
            mode,
            ino,
            nlink,
            content,
        });
        reader = member.finish().expect("next member");
    }
    edit(&mut members);
    let mut out = Vec::new();
    for m in members {
        let mut writer = cpio::NewcBuilder::new(&m.name)
            .mode(m.mode)
            .ino(m.ino)
            .nlink(m.nlink)
            .write(&mut out, m.content.len() as u32);
        writer.write_all(&m.content).expect("writing a member");
        writer.finish().expect("finishing a member");
    }
    cpio::newc::trailer(&mut out).expect("writing the trailer");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&out).expect("compressing");
    rpm::Package {
        metadata: package.metadata.clone(),
        payload: gz.finish().expect("compressing"),
    }
}

/// `world-1.0-3.noarch`: no epoch, a versioned require of `hello` with its epoch, a
/// file require another package meets, a `Requires(pre)`, an obsolete with a release.
pub fn world() -> rpm::Package {
    let mut b = PackageBuilder::new("world", "1.0", "MIT", "noarch", "the world");
    b.using_config(rpm::BuildConfig::default().source_date(1_600_000_000));
    b.release("3");
    let ok = "building the fixture";
    b.with_file_contents("earth\n", FileOptions::new("/usr/share/world/earth"))
        .expect(ok)
        .with_file_contents("a & b <c>\n", FileOptions::new("/etc/world & more.conf"))
        .expect(ok);
    b.requires(Dependency::greater_eq("hello", "2:1.0"))
        .requires(Dependency::any("/usr/bin/hello"))
        .requires(Dependency::script_pre("/bin/sh"))
        .requires(Dependency::any("(hello if greeter)"))
        .obsoletes(Dependency::less("planet", "1.0-1"))
        .provides(Dependency::eq("globe", "1.0-3"));
    b.build().expect(ok)
}

/// Makes `dir` a createrepo_c repository of the `.rpm` files below it (with `args`,
/// such as `--general-compress-type xz`), with the real `createrepo_c`.
pub fn createrepo(dir: &std::path::Path, args: &[&str]) {
    let made = std::process::Command::new("createrepo_c")
        .args(["--quiet", "--no-database"])
        .args(args)
        .arg(dir)
        .output()
        .expect("running createrepo_c");
    assert!(made.status.success(), "createrepo_c: {made:?}");
}
