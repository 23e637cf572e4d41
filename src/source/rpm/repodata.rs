//! createrepo_c repositories read from their metadata: `repodata/repomd.xml` names the
//! `primary` and `filelists` files (gzip, xz, zstd or plain XML), which list every
//! package with its relations, files, location and checksum. Each is read as a stream
//! (a distribution's metadata is large), and its checksum in repomd.xml is checked
//! over the same read. Packages come out as a header would describe them, with the
//! [`Listing`] their archive must match when it is opened.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Component, Path, PathBuf};

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

use super::checksum::{Hashing, algorithm_name, algorithm_named};
use super::error::RpmError;
use super::header::DigestAlgorithm;
use super::{Capability, Listing, Requirement, RpmPackage, provide_self};
use crate::excerpt::excerpt;
use crate::source::compression::Compression;
use crate::source::{Op, Origin};

/// The binary packages that the createrepo_c repository in `repository` lists, sorted
/// by archive path (as a plain pool folder's archives are); source packages are left
/// out. Refused, naming the metadata file (and the package): a file repomd.xml names
/// that is missing, malformed or does not have its checksum; a package without name,
/// version, arch, checksum or location, or whose location leaves the repository.
pub fn read(repository: &Path) -> Result<Vec<RpmPackage>, RpmError> {
    let repomd = repository.join("repodata/repomd.xml");
    let mut index = Repomd::default();
    walk(&repomd, None, |node| index.node(node))?;
    let named = |kind: &str| -> Result<Metadata, RpmError> {
        let refuse = |message: String| RpmError::Repodata {
            path: repomd.clone(),
            package: None,
            message,
        };
        let named =
            (index.files.get(kind)).ok_or_else(|| refuse(format!("names no {kind} metadata")))?;
        let href = named
            .href
            .as_deref()
            .ok_or_else(|| refuse(format!("{kind}: no location")))?;
        let path = inside(repository, href).map_err(|m| refuse(format!("{kind}: {m}")))?;
        let hex =
            (named.checksum.as_deref()).ok_or_else(|| refuse(format!("{kind}: no checksum")))?;
        let checksum =
            checksum(named.kind.as_deref(), hex).map_err(|m| refuse(format!("{kind}: {m}")))?;
        Ok(Metadata { path, checksum })
    };
    let (primary_file, filelists_file) = (named("primary")?, named("filelists")?);

    let mut primary = Primary::new(repository);
    walk(&primary_file.path, Some(&primary_file.checksum), |node| {
        primary.node(node)
    })?;
    let mut filelists = Filelists::new(&primary);
    walk(
        &filelists_file.path,
        Some(&filelists_file.checksum),
        |node| filelists.node(node),
    )?;
    let Filelists { files, filled, .. } = filelists;
    let mut packages = primary.packages;
    for ((package, files), filled) in packages.iter_mut().zip(files).zip(filled) {
        if !filled {
            return Err(RpmError::Repodata {
                path: filelists_file.path,
                package: Some(package.nevra()),
                message: "is listed in primary but not in filelists".to_string(),
            });
        }
        package.files = files;
    }
    packages.sort_by(|a, b| a.archive.cmp(&b.archive));
    Ok(packages)
}

/// A checksum: its algorithm and lower-case hex.
type Checksum = (DigestAlgorithm, String);

/// A metadata file that repomd.xml names.
struct Metadata {
    /// Where it is.
    path: PathBuf,
    /// What its (compressed) bytes must hash to.
    checksum: Checksum,
}

/// One step through an XML document.
enum Node<'e> {
    /// An element starts (an empty one starts and then ends).
    Open(&'e BytesStart<'e>),
    /// An element ends (its local name), with the text it held directly.
    Close(&'e str, &'e str),
}

/// Why a metadata file is refused, the file aside.
struct Refusal {
    /// The package concerned.
    package: Option<String>,
    /// What is wrong.
    message: String,
}

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal {
            package: None,
            message,
        }
    }
}

/// Reads the XML file at `path` (compressed as its name says), handing `visit` each
/// element's start and end. With `checksum`, the file's bytes must have it: checked
/// over the same read, and reported before any other problem (a damaged file is
/// refused for its checksum, not for what the damage did to its XML).
fn walk(
    path: &Path,
    checksum: Option<&Checksum>,
    mut visit: impl FnMut(Node) -> Result<(), Refusal>,
) -> Result<(), RpmError> {
    let refuse = |refusal: Refusal| RpmError::Repodata {
        path: path.to_path_buf(),
        package: refusal.package,
        message: refusal.message,
    };
    let io_error = |source: io::Error| RpmError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let compression = (name.rfind(".xml"))
        .and_then(|at| Compression::of(&name, &name[..at + 4]))
        .ok_or_else(|| {
            refuse(
                "not XML, or compressed in a way that is not read"
                    .to_string()
                    .into(),
            )
        })?;
    let algorithm = checksum.map_or(DigestAlgorithm::Sha256, |(algorithm, _)| *algorithm);
    let mut raw = Hashing::new(
        BufReader::new(File::open(path).map_err(io_error)?),
        algorithm,
    );
    let walked = compression
        .decoder(&mut raw)
        .map_err(|e| Refusal::from(format!("cannot decompress: {e}")))
        .and_then(|decoder| nodes(decoder, &mut visit));
    if let Some((algorithm, expected)) = checksum {
        let actual = raw.finish().map_err(io_error)?;
        if actual != *expected {
            return Err(refuse(
                format!(
                    "{} checksum is {actual}, repomd.xml says {expected}",
                    algorithm_name(*algorithm)
                )
                .into(),
            ));
        }
    }
    walked.map_err(refuse)
}

/// Parses the XML `source` to its end, handing `visit` each element's start and end.
fn nodes(
    source: impl io::Read,
    visit: &mut impl FnMut(Node) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    let mut reader = quick_xml::Reader::from_reader(BufReader::new(source));
    reader.config_mut().expand_empty_elements = true;
    let mut buffer = Vec::new();
    let mut text = String::new();
    loop {
        let malformed = |e: &dyn std::fmt::Display, at: u64| {
            Refusal::from(format!("malformed XML at byte {at}: {e}"))
        };
        let event = reader
            .read_event_into(&mut buffer)
            .map_err(|e| malformed(&e, reader.error_position()))?;
        match event {
            Event::Start(start) => {
                text.clear();
                visit(Node::Open(&start))?;
            }
            Event::End(end) => {
                visit(Node::Close(end.local_name().into_inner(), &text))?;
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| format!("unknown entity &{};", excerpt(&r)))?
                        .to_string(),
                    Err(e) => return Err(malformed(&e, reader.buffer_position())),
                };
                text.push_str(&resolved);
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
        buffer.clear();
    }
}

/// The value of attribute `key` of `element`, unescaped.
fn attribute(element: &BytesStart, key: &str) -> Result<Option<String>, String> {
    let bad = |e: &dyn std::fmt::Display| format!("attribute {key}: {e}");
    match element.try_get_attribute(key).map_err(|e| bad(&e))? {
        None => Ok(None),
        Some(value) => (value.normalized_value(XmlVersion::Implicit1_0))
            .map(|v| Some(v.into_owned()))
            .map_err(|e| bad(&e)),
    }
}

/// The path of `href` in `repository`: a relative path that stays inside it.
fn inside(repository: &Path, href: &str) -> Result<PathBuf, String> {
    let relative = Path::new(href);
    let stays =
        (relative.components()).all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if href.is_empty() || !stays {
        return Err(format!(
            "location `{}` leaves the repository {}",
            excerpt(href),
            repository.display()
        ));
    }
    Ok(repository.join(relative))
}

/// A `<checksum type="...">HEX</checksum>`: its algorithm (from the start) and value.
fn checksum(kind: Option<&str>, hex: &str) -> Result<Checksum, String> {
    let kind = kind.unwrap_or_default();
    let algorithm = algorithm_named(kind)
        .ok_or_else(|| format!("checksum type `{}` is not one rpm uses", excerpt(kind)))?;
    let hex = hex.trim().to_ascii_lowercase();
    if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{}` is not a {kind} checksum", excerpt(&hex)));
    }
    Ok((algorithm, hex))
}

/// What repomd.xml says of one metadata file.
#[derive(Default)]
struct Named {
    /// Its `<checksum type>`.
    kind: Option<String>,
    /// Its `<checksum>`.
    checksum: Option<String>,
    /// Its `<location href>`.
    href: Option<String>,
}

/// What repomd.xml says of each metadata file, by type.
#[derive(Default)]
struct Repomd {
    files: HashMap<String, Named>,
    /// The `<data>` being read: its type.
    data: Option<String>,
}

impl Repomd {
    fn node(&mut self, node: Node) -> Result<(), Refusal> {
        let Some(data) = &self.data else {
            if let Node::Open(e) = node
                && e.local_name().into_inner() == "data"
            {
                self.data = attribute(e, "type")?;
            }
            return Ok(());
        };
        let named = self.files.entry(data.clone()).or_default();
        match node {
            Node::Open(e) => match e.local_name().into_inner() {
                "checksum" => named.kind = attribute(e, "type")?,
                "location" => named.href = attribute(e, "href")?,
                _ => {}
            },
            Node::Close("checksum", text) => named.checksum = Some(text.to_string()),
            Node::Close("data", _) => self.data = None,
            Node::Close(..) => {}
        }
        Ok(())
    }
}

/// Which relation list the `<rpm:entry>`s being read belong to.
#[derive(Clone, Copy)]
enum Relation {
    Provides,
    Requires,
    Conflicts,
    Obsoletes,
    /// Weak dependencies, which are not read.
    Ignored,
}

/// One `<package>` of primary.xml, being read.
#[derive(Default)]
struct Draft {
    name: String,
    arch: String,
    evr: Option<String>,
    checksum: Option<Checksum>,
    /// The type attribute of its `<checksum>`, until the value is read.
    kind: Option<String>,
    archive: Option<PathBuf>,
    provides: Vec<Capability>,
    requires: Vec<Requirement>,
    conflicts: Vec<Capability>,
    obsoletes: Vec<Capability>,
    relation: Option<Relation>,
}

impl Draft {
    /// How errors name the package: `name-evr.arch` as far as it is known.
    fn label(&self) -> String {
        match &self.evr {
            Some(evr) => format!("{}-{evr}.{}", self.name, self.arch),
            None => self.name.clone(),
        }
    }
}

/// primary.xml's packages, read.
struct Primary<'r> {
    repository: &'r Path,
    /// The binary packages so far, files not yet known.
    packages: Vec<RpmPackage>,
    /// Each package's index in `packages`, by its checksum.
    by_pkgid: HashMap<String, Vec<usize>>,
    draft: Option<Draft>,
}

impl<'r> Primary<'r> {
    fn new(repository: &'r Path) -> Primary<'r> {
        Primary {
            repository,
            packages: Vec::new(),
            by_pkgid: HashMap::new(),
            draft: None,
        }
    }

    fn node(&mut self, node: Node) -> Result<(), Refusal> {
        if let Node::Open(e) = node
            && e.local_name().into_inner() == "package"
        {
            self.draft = Some(Draft::default());
            return Ok(());
        }
        let Some(draft) = &mut self.draft else {
            return Ok(());
        };
        let repository = self.repository;
        let of_package = |draft: &Draft, message: String| Refusal {
            package: Some(draft.label()),
            message,
        };
        match node {
            Node::Open(e) => {
                let read = read_open(draft, repository, e);
                read.map_err(|message| of_package(draft, message))?
            }
            Node::Close("name", text) => draft.name = text.to_string(),
            Node::Close("arch", text) => draft.arch = text.to_string(),
            Node::Close("checksum", text) => {
                let value = checksum(draft.kind.as_deref(), text);
                draft.checksum = Some(value.map_err(|message| of_package(draft, message))?);
            }
            Node::Close("provides" | "requires" | "conflicts" | "obsoletes", _)
            | Node::Close("recommends" | "suggests" | "supplements" | "enhances", _) => {
                draft.relation = None
            }
            Node::Close("package", _) => {
                let Some(draft) = self.draft.take() else {
                    return Ok(());
                };
                self.finish(draft)?;
            }
            Node::Close(..) => {}
        }
        Ok(())
    }

    /// Adds the package `draft` describes, unless it is a source package.
    fn finish(&mut self, draft: Draft) -> Result<(), Refusal> {
        let missing = |what: &str| Refusal {
            package: Some(draft.label()),
            message: format!("has no {what}"),
        };
        if draft.name.is_empty() {
            return Err(missing("name"));
        }
        if draft.arch.is_empty() {
            return Err(missing("arch"));
        }
        if matches!(draft.arch.as_str(), "src" | "nosrc") {
            return Ok(());
        }
        let evr = draft.evr.clone().ok_or_else(|| missing("version"))?;
        let (algorithm, checksum) = draft.checksum.clone().ok_or_else(|| missing("checksum"))?;
        let archive = draft.archive.clone().ok_or_else(|| missing("location"))?;
        let mut provides = draft.provides;
        provide_self(&mut provides, &draft.name, &evr);
        let index = self.packages.len();
        self.by_pkgid
            .entry(checksum.clone())
            .or_default()
            .push(index);
        self.packages.push(RpmPackage {
            name: draft.name,
            evr,
            arch: draft.arch,
            provides,
            requires: draft.requires,
            conflicts: draft.conflicts,
            obsoletes: draft.obsoletes,
            files: Vec::new(),
            origin: Origin::Pool,
            archive: Some(archive),
            listing: Some(Listing {
                repository: self.repository.to_path_buf(),
                algorithm,
                checksum,
            }),
        });
        Ok(())
    }
}

/// Reads what the start of element `e` of a `<package>` says into `draft`.
fn read_open(draft: &mut Draft, repository: &Path, e: &BytesStart) -> Result<(), String> {
    match e.local_name().into_inner() {
        "version" => {
            let version = |key| attribute(e, key);
            let ver = version("ver")?.unwrap_or_default();
            let rel = version("rel")?.unwrap_or_default();
            if ver.is_empty() || rel.is_empty() {
                return Err("<version> without ver or rel".to_string());
            }
            draft.evr = Some(evr(version("epoch")?.as_deref(), &ver, Some(&rel))?);
        }
        "checksum" => draft.kind = attribute(e, "type")?,
        "location" => {
            if let Some(base) = attribute(e, "xml:base")? {
                return Err(format!(
                    "location has xml:base `{}`: packages are taken from the repository folder",
                    excerpt(&base)
                ));
            }
            let href = attribute(e, "href")?.unwrap_or_default();
            draft.archive = Some(inside(repository, &href)?);
        }
        "provides" => draft.relation = Some(Relation::Provides),
        "requires" => draft.relation = Some(Relation::Requires),
        "conflicts" => draft.relation = Some(Relation::Conflicts),
        "obsoletes" => draft.relation = Some(Relation::Obsoletes),
        "recommends" | "suggests" | "supplements" | "enhances" => {
            draft.relation = Some(Relation::Ignored)
        }
        "entry" => {
            let (capability, pre) = entry(e)?;
            match draft.relation {
                Some(Relation::Provides) => draft.provides.push(capability),
                Some(Relation::Requires) => draft.requires.push(Requirement { capability, pre }),
                Some(Relation::Conflicts) => draft.conflicts.push(capability),
                Some(Relation::Obsoletes) => draft.obsoletes.push(capability),
                Some(Relation::Ignored) | None => {}
            }
        }
        _ => {}
    }
    Ok(())
}

/// An `<rpm:entry name flags epoch ver rel pre>`: the capability, and whether it is a
/// `Requires(pre)`.
fn entry(e: &BytesStart) -> Result<(Capability, bool), String> {
    let name = attribute(e, "name")?.unwrap_or_default();
    if name.is_empty() {
        return Err("an <rpm:entry> without a name".to_string());
    }
    let op = match attribute(e, "flags")?.as_deref() {
        None => None,
        Some("EQ") => Some(Op::Eq),
        Some("LT") => Some(Op::Lt),
        Some("LE") => Some(Op::Le),
        Some("GT") => Some(Op::Gt),
        Some("GE") => Some(Op::Ge),
        Some(other) => {
            return Err(format!(
                "{}: flags `{}` are not a relation",
                excerpt(&name),
                excerpt(other)
            ));
        }
    };
    let ver = attribute(e, "ver")?.unwrap_or_default();
    // As in a header, a relation without a version compares nothing.
    let constraint = match op {
        Some(op) if !ver.is_empty() => {
            let rel = attribute(e, "rel")?;
            let epoch = attribute(e, "epoch")?;
            let evr = evr(epoch.as_deref(), &ver, rel.as_deref())
                .map_err(|m| format!("{}: {m}", excerpt(&name)))?;
            Some((op, evr))
        }
        _ => None,
    };
    let pre = attribute(e, "pre")?.as_deref() == Some("1");
    Ok((Capability { name, constraint }, pre))
}

/// `[EPOCH:]VERSION[-RELEASE]` as a header spells it. createrepo_c writes epoch 0
/// where the header has none, and rpm orders a missing epoch as 0, so 0 is left out.
fn evr(epoch: Option<&str>, version: &str, release: Option<&str>) -> Result<String, String> {
    let mut evr = String::new();
    match epoch.unwrap_or_default() {
        "" | "0" => {}
        e if e.bytes().all(|b| b.is_ascii_digit()) => evr = format!("{e}:"),
        e => return Err(format!("epoch `{}` is not a number", excerpt(e))),
    }
    evr.push_str(version);
    if let Some(release) = release.filter(|r| !r.is_empty()) {
        evr.push('-');
        evr.push_str(release);
    }
    Ok(evr)
}

/// filelists.xml's files, given to the packages of primary.xml by checksum.
struct Filelists<'p> {
    by_pkgid: &'p HashMap<String, Vec<usize>>,
    /// Per package of primary: its sorted files, and whether filelists listed it.
    files: Vec<Vec<String>>,
    filled: Vec<bool>,
    /// The `<package>` being read: its indices in primary, and files so far.
    current: Option<(&'p [usize], Vec<String>)>,
}

impl<'p> Filelists<'p> {
    fn new(primary: &'p Primary) -> Filelists<'p> {
        Filelists {
            by_pkgid: &primary.by_pkgid,
            files: vec![Vec::new(); primary.packages.len()],
            filled: vec![false; primary.packages.len()],
            current: None,
        }
    }

    fn node(&mut self, node: Node) -> Result<(), Refusal> {
        match node {
            Node::Open(e) if e.local_name().into_inner() == "package" => {
                let pkgid = attribute(e, "pkgid")?
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                // A package primary left out (a source package) is skipped.
                self.current = (self.by_pkgid.get(&pkgid)).map(|at| (at.as_slice(), Vec::new()));
            }
            Node::Close("file", text) => {
                if let Some((_, files)) = &mut self.current {
                    files.push(text.to_string());
                }
            }
            Node::Close("package", _) => {
                if let Some((at, mut files)) = self.current.take() {
                    files.sort();
                    for &i in at {
                        self.files[i] = files.clone();
                        self.filled[i] = true;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::{Read, Write};

    use rpm::CompressionType;

    use super::super::archive::RpmArchive;
    use super::super::checksum::digest;
    use super::super::fixture::{createrepo, hello, world};
    use super::super::pool::RpmPool;
    use super::*;

    /// A repository `repo` below `dir` holding `hello` and `world` in `Packages/`, made
    /// by createrepo_c with `args`.
    fn repository(dir: &Path, args: &[&str]) -> PathBuf {
        let repo = dir.join("repo");
        fs::create_dir_all(repo.join("Packages")).unwrap();
        (hello(CompressionType::Xz))
            .write_file(repo.join("Packages/hello.rpm"))
            .unwrap();
        world().write_file(repo.join("Packages/world.rpm")).unwrap();
        createrepo(&repo, args);
        repo
    }

    /// Rewrites metadata file `kind` of `repo` to what `edit` makes of its XML,
    /// compressed as `suffix` says (`gz`, `zst`), and points repomd.xml at it with its
    /// new checksum.
    fn rewrite(repo: &Path, kind: &str, suffix: &str, edit: impl FnOnce(String) -> String) {
        let repomd_path = repo.join("repodata/repomd.xml");
        let repomd = fs::read_to_string(&repomd_path).unwrap();
        let start = repomd.find(&format!("<data type=\"{kind}\">")).unwrap();
        let block = &repomd[start..start + repomd[start..].find("</data>").unwrap()];
        let between = |open: &str, close: &str| {
            let from = block.find(open).unwrap() + open.len();
            block[from..from + block[from..].find(close).unwrap()].to_string()
        };
        let (href, checksum) = (
            between("<location href=\"", "\""),
            between("<checksum type=\"sha256\">", "<"),
        );
        let name = href.rsplit('/').next().unwrap();
        let stem = &name[..name.rfind(".xml").unwrap() + 4];
        let compression = Compression::of(name, stem).unwrap();
        let mut xml = String::new();
        (compression.decoder(File::open(repo.join(&href)).unwrap()))
            .unwrap()
            .read_to_string(&mut xml)
            .unwrap();
        let xml = edit(xml);
        let bytes = match suffix {
            "gz" => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                gz.write_all(xml.as_bytes()).unwrap();
                gz.finish().unwrap()
            }
            "zst" => zstd::encode_all(xml.as_bytes(), 3).unwrap(),
            other => panic!("no compression {other}"),
        };
        let new_href = format!("repodata/rewritten-{kind}.xml.{suffix}");
        fs::write(repo.join(&new_href), &bytes).unwrap();
        let new_checksum = digest(DigestAlgorithm::Sha256, &bytes);
        let new_block = (block.replace(&href, &new_href))
            .replace(&format!(">{checksum}<"), &format!(">{new_checksum}<"));
        fs::write(&repomd_path, repomd.replace(block, &new_block)).unwrap();
    }

    /// `package`, read from its header, without the requires createrepo_c leaves out of
    /// primary.xml: `rpmlib(...)` ones, and those the package meets itself (by a
    /// provide of that name or a file it owns).
    fn as_primary_lists(mut package: RpmPackage) -> RpmPackage {
        let provided: Vec<String> = package.provides.iter().map(|c| c.name.clone()).collect();
        let (files, provided) = (package.files.clone(), provided);
        package.requires.retain(|r| {
            let name = &r.capability.name;
            !name.starts_with("rpmlib(") && !provided.contains(name) && !files.contains(name)
        });
        package
    }

    /// `package` with its relations sorted and `pre` cleared (primary.xml marks
    /// `Requires(post)` as `pre` too: checked apart), its listing left out.
    fn comparable(mut package: RpmPackage) -> RpmPackage {
        let by_text = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
            format!("{a:?}").cmp(&format!("{b:?}"))
        };
        package.provides.sort_by(|a, b| by_text(a, b));
        package.requires.iter_mut().for_each(|r| r.pre = false);
        package.requires.sort_by(|a, b| by_text(a, b));
        package.conflicts.sort_by(|a, b| by_text(a, b));
        package.obsoletes.sort_by(|a, b| by_text(a, b));
        package.listing = None;
        package
    }

    #[test]
    fn metadata_describes_packages_as_their_archives_do_in_every_compression() {
        let dir = tempfile::tempdir().unwrap();
        let gz = repository(&dir.path().join("gz"), &[]);
        let xz = repository(&dir.path().join("xz"), &["--general-compress-type", "xz"]);
        // Debian 12's createrepo_c writes no zstd: its gzip files are recompressed.
        let zst = repository(&dir.path().join("zst"), &[]);
        rewrite(&zst, "primary", "zst", |xml| xml);
        rewrite(&zst, "filelists", "zst", |xml| xml);
        for (repo, suffix) in [(gz, ".xml.gz"), (xz, ".xml.xz"), (zst, ".xml.zst")] {
            let repomd = fs::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
            assert!(repomd.contains(&format!("primary{suffix}\"")), "{repomd}");
            let listed = read(&repo).unwrap();
            let names: Vec<_> = listed.iter().map(RpmPackage::nevra).collect();
            assert_eq!(names, ["hello-2:1.0-1.x86_64", "world-1.0-3.noarch"]);
            for package in listed {
                let path = package.archive.clone().unwrap();
                let listing = package.listing.clone().unwrap();
                assert_eq!(listing.repository, repo);
                assert_eq!(
                    listing.checksum,
                    digest(listing.algorithm, &fs::read(&path).unwrap())
                );
                let opened = as_primary_lists(RpmArchive::open(&path).unwrap().package);
                for pre in opened.requires.iter().filter(|r| r.pre) {
                    assert!(package.requires.contains(pre), "{pre:?}");
                }
                assert_eq!(
                    comparable(package),
                    comparable(opened),
                    "{}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn source_packages_of_the_metadata_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repository(dir.path(), &[]);
        rewrite(&repo, "primary", "gz", |xml| {
            xml.replace("<arch>noarch</arch>", "<arch>src</arch>")
        });
        let listed = read(&repo).unwrap();
        let names: Vec<_> = listed.iter().map(RpmPackage::nevra).collect();
        assert_eq!(names, ["hello-2:1.0-1.x86_64"]);
    }

    #[test]
    fn a_repository_is_surveyed_from_its_metadata_opening_no_archive() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repository(dir.path(), &[]);
        // Opened, this would be unreadable; the metadata is what is read.
        fs::write(repo.join("Packages/world.rpm"), b"junk").unwrap();
        let pool = RpmPool::survey(std::slice::from_ref(&repo));
        assert!(pool.unreadable.is_empty(), "{:?}", pool.unreadable);
        let found: Vec<_> = (pool.archives.iter())
            .map(|p| (p.nevra(), p.archive.clone().unwrap(), p.listing.is_some()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "hello-2:1.0-1.x86_64".to_string(),
                    repo.join("Packages/hello.rpm"),
                    true
                ),
                (
                    "world-1.0-3.noarch".to_string(),
                    repo.join("Packages/world.rpm"),
                    true
                ),
            ]
        );
    }

    #[test]
    fn a_swapped_archive_is_refused_naming_it_the_repository_and_both_values() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repository(dir.path(), &[]);
        let [hello, world] = <[RpmPackage; 2]>::try_from(read(&repo).unwrap()).unwrap();
        let (hello_rpm, world_rpm) = (
            hello.archive.clone().unwrap(),
            world.archive.clone().unwrap(),
        );
        assert!(RpmArchive::open_as(&world_rpm, &world).is_ok());
        fs::copy(&hello_rpm, &world_rpm).unwrap();
        let swapped_sha = digest(DigestAlgorithm::Sha256, &fs::read(&world_rpm).unwrap());
        let err = RpmArchive::open_as(&world_rpm, &world).unwrap_err();
        assert!(matches!(err, RpmError::Unlisted { .. }), "{err}");
        let listed_sha = &world.listing.as_ref().unwrap().checksum;
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not the archive repository {} lists: its checksum is sha256:{swapped_sha}, \
                 the metadata says sha256:{listed_sha}",
                world_rpm.display(),
                repo.display()
            )
        );
        // Metadata whose checksum matches the file but whose NEVRA does not.
        let mut lying = world.clone();
        lying.listing.as_mut().unwrap().checksum = swapped_sha;
        let err = RpmArchive::open_as(&world_rpm, &lying)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "its NEVRA is hello-2:1.0-1.x86_64, the metadata says world-1.0-3.noarch"
            ),
            "{err}"
        );
        assert!(RpmArchive::open_as(&hello_rpm, &hello).is_ok());
    }

    #[test]
    fn damaged_metadata_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repository(dir.path(), &[]);
        rewrite(&repo, "primary", "gz", |xml| xml);
        let primary = repo.join("repodata/rewritten-primary.xml.gz");
        let mut bytes = fs::read(&primary).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs::write(&primary, &bytes).unwrap();
        let pool = RpmPool::survey(std::slice::from_ref(&repo));
        assert!(pool.archives.is_empty(), "{:?}", pool.archives);
        let [(path, why)] = pool.unreadable.as_slice() else {
            panic!("{:?}", pool.unreadable);
        };
        assert_eq!(*path, primary);
        let expected = format!("{}: sha256 checksum is ", primary.display());
        assert!(why.starts_with(&expected), "{why}");
        assert!(why.contains(", repomd.xml says "), "{why}");
    }

    #[test]
    fn a_location_leaving_the_repository_is_refused_naming_the_package() {
        // REPO stands for the repository folder, made anew for each case.
        let leaves = |href: &str| format!("location `{href}` leaves the repository REPO");
        for (location, why) in [
            ("href=\"../world.rpm\"", leaves("../world.rpm")),
            ("href=\"/tmp/world.rpm\"", leaves("/tmp/world.rpm")),
            (
                "xml:base=\"file:///srv\" href=\"Packages/world.rpm\"",
                "location has xml:base `file:///srv`: packages are taken from the repository \
                 folder"
                    .to_string(),
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let repo = repository(dir.path(), &[]);
            rewrite(&repo, "primary", "gz", |xml| {
                xml.replace("href=\"Packages/world.rpm\"", location)
            });
            let pool = RpmPool::survey(std::slice::from_ref(&repo));
            let [(path, message)] = pool.unreadable.as_slice() else {
                panic!("{:?}", pool.unreadable);
            };
            let primary = repo.join("repodata/rewritten-primary.xml.gz");
            assert_eq!(*path, primary);
            let why = why.replace("REPO", &repo.display().to_string());
            let expected = format!("{}: package world-1.0-3.noarch: {why}", primary.display());
            assert_eq!(*message, expected);
        }
    }
}
