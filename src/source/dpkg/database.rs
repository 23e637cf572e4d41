//! Reading an installed package database (dpkg) under a sysroot.
//!
//! The universe is `var/lib/dpkg/status` (packages that are installed), each package's
//! `info/<name>[:<arch>].list` (the paths it owns) and `.md5sums` (read when asked for),
//! plus `var/lib/dpkg/diversions` (paths whose packaged bytes live elsewhere).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::relation::{Relation, RelationParseError, parse_dependencies};
use super::rules::{self, Broken};
use super::{MultiArch, Origin, Package};
use crate::excerpt::excerpt;

/// Fields dpkg writes itself once a package is installed: a package's own control file
/// holding one is refused, as dpkg refuses it ("not allowed in this context").
const INSTALLED_ONLY: [&str; 3] = ["Status", "Conffiles", "Config-Version"];

/// Where dpkg keeps its state, relative to the sysroot.
const DPKG_DIR: &str = "var/lib/dpkg";

/// The installed packages and diversions of one sysroot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgDatabase {
    /// Packages whose status is `install ok installed` or `hold ok installed`, in
    /// status-file order.
    pub packages: Vec<InstalledPackage>,
    /// Every diversion, in file order.
    pub diversions: Vec<Diversion>,
}

/// One installed package; the paths it owns are read from dpkg's `info/` only when
/// asked for ([`InstalledPackage::owned`]), so a compile reads the lists of the packages
/// it chooses and not of every package the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    /// Its metadata, with origin [`Origin::Installed`].
    pub package: Package,
    /// The `Conffiles` field.
    pub conffiles: Vec<Conffile>,
    /// The raw status stanza (every line with its newline), kept so dpkg state can be
    /// written into appliances later.
    pub stanza: String,
    /// dpkg's `info/` folder, where its list and other files are.
    info: PathBuf,
    /// What it owns, once read.
    owned: OnceLock<Owned>,
}

/// The paths an installed package owns, as dpkg's `info/` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    /// Paths from the `.list` file, absolute, in file order, `/.` dropped.
    pub files: Vec<String>,
    /// The `.md5sums` file, keyed by absolute path; empty when the file is absent.
    pub md5sums: BTreeMap<String, String>,
    /// The `.list` file read; the package's other info files sit beside it.
    pub list_path: PathBuf,
}

impl InstalledPackage {
    /// The package `package` of the status file of the dpkg database at `dir`, whose
    /// `info/` files are read when first asked for.
    fn new(dir: &Path, package: StatusPackage) -> InstalledPackage {
        InstalledPackage {
            package: package.package,
            conffiles: package.conffiles,
            stanza: package.stanza,
            info: dir.join("info"),
            owned: OnceLock::new(),
        }
    }

    /// A package whose owned paths are given, not read: for tests.
    #[cfg(test)]
    pub(crate) fn owning(package: Package, owned: Owned) -> InstalledPackage {
        InstalledPackage {
            package,
            conffiles: Vec::new(),
            stanza: String::new(),
            info: PathBuf::new(),
            owned: OnceLock::from(owned),
        }
    }

    /// The paths it owns and their MD5s, read from its `.list` and `.md5sums` the first
    /// time they are asked for. A missing list, or a line dpkg would not have written,
    /// is an error naming the file and line.
    pub fn owned(&self) -> Result<&Owned, DpkgError> {
        if let Some(owned) = self.owned.get() {
            return Ok(owned);
        }
        let owned = read_owned(&self.info, &self.package)?;
        // Two threads may both read it; either's copy is the same.
        Ok(self.owned.get_or_init(|| owned))
    }

    /// The bytes of control file `name` of [`super::INFO_FILES`] (`postinst`,
    /// `templates`) as dpkg keeps it beside the package's list, if it has one: a
    /// script need not be UTF-8 (exim4-config's `config` is Latin-1).
    pub fn info_file(&self, name: &str) -> Result<Option<Vec<u8>>, DpkgError> {
        let path = self.owned()?.list_path.with_extension(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DpkgError::Io { path, source }),
        }
    }
}

/// One line of a package's `Conffiles` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conffile {
    /// Absolute path of the configuration file.
    pub path: String,
    /// MD5 of the packaged content (`newconffile` while dpkg is mid-install).
    pub md5: String,
    /// The package no longer ships this conffile but dpkg still remembers it.
    pub obsolete: bool,
}

/// A dpkg diversion: `from` as packaged is installed at `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diversion {
    /// The path packages list.
    pub from: String,
    /// Where the diverted bytes actually are.
    pub to: String,
    /// The diverting package; `None` for a local (administrator) diversion.
    pub by: Option<String>,
}

/// Why the dpkg database of a sysroot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DpkgError {
    /// A database file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A line of a database file does not follow dpkg's format.
    #[error("{}:{line}: {}{message}", path.display(), in_package(package.as_deref()))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The package the line belongs to, when known.
        package: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// An installed package has no `.list` file.
    #[error("package {package} is installed but its file list {} is missing", path.display())]
    MissingList {
        /// The package (`name` or `name:arch`).
        package: String,
        /// The list file looked for.
        path: PathBuf,
    },
    /// The diversions file ends in the middle of a three-line entry.
    #[error("{}:{line}: truncated diversion (each takes three lines: from, to, package)", path.display())]
    TruncatedDiversion {
        /// The diversions file.
        path: PathBuf,
        /// The line the incomplete entry starts on.
        line: usize,
    },
}

fn in_package(package: Option<&str>) -> String {
    package
        .map(|p| format!("package {}: ", excerpt(p)))
        .unwrap_or_default()
}

impl DpkgDatabase {
    /// Reads `var/lib/dpkg` under `sysroot` (`/` for the host).
    pub fn read(sysroot: &Path) -> Result<DpkgDatabase, DpkgError> {
        let dir = sysroot.join(DPKG_DIR);
        let status_path = dir.join("status");
        let status = read_text(&status_path)?;
        // The whole status file is checked here; a package's list is read only when a
        // compile chooses it.
        let packages = (parse_status(&status, &status_path)?.into_iter())
            .map(|p| InstalledPackage::new(&dir, p))
            .collect();
        let diversions = read_diversions(&dir.join("diversions"))?;
        Ok(DpkgDatabase {
            packages,
            diversions,
        })
    }
}

/// One installed package of a status file, before its file list is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPackage {
    /// Its metadata, with origin [`Origin::Installed`].
    pub package: Package,
    /// The `Conffiles` field.
    pub conffiles: Vec<Conffile>,
    /// The raw stanza, with `\n` line ends and a final newline.
    pub stanza: String,
}

/// Parses the text of a dpkg status file (read from `path`, which only names it in
/// errors) into its installed packages, in file order; stanzas of packages that are not
/// installed are checked and skipped. Any malformed line is an error naming the line.
pub fn parse_status(text: &str, path: &Path) -> Result<Vec<StatusPackage>, DpkgError> {
    let mut installed = Vec::new();
    for stanza in stanzas(text) {
        let fields = Fields::parse(&stanza, path)?;
        if let Some(package) = fields.installed_package()? {
            let mut text = stanza.lines.join("\n");
            text.push('\n');
            installed.push(StatusPackage {
                package,
                conffiles: fields.conffiles()?,
                stanza: text,
            });
        }
    }
    Ok(installed)
}

fn read_text(path: &Path) -> Result<String, DpkgError> {
    std::fs::read_to_string(path).map_err(|source| DpkgError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Like [`read_text`], but a missing file reads as `None`.
fn read_optional(path: &Path) -> Result<Option<String>, DpkgError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DpkgError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// One paragraph of a deb822 file (the status file or an apt package index), borrowed
/// from the file's text.
pub(crate) struct Stanza<'a> {
    /// Line number of its first line.
    pub(crate) first_line: usize,
    /// Its lines, without newlines or trailing carriage returns.
    pub(crate) lines: Vec<&'a str>,
}

/// Splits deb822 text into paragraphs separated by blank (or whitespace-only) lines.
/// Every trailing `\r` of a line goes, not only a CRLF's: a line kept as `abc\r` would
/// read back as `abc` once written with `\n`, so a stanza would not be a fixed point.
pub(crate) fn stanzas(text: &str) -> Vec<Stanza<'_>> {
    let mut out = Vec::new();
    let mut current: Option<Stanza> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            out.extend(current.take());
            continue;
        }
        let stanza = current.get_or_insert_with(|| Stanza {
            first_line: i + 1,
            lines: Vec::new(),
        });
        stanza.lines.push(line);
    }
    out.extend(current);
    out
}

/// One field of a stanza: continuation lines are joined with `\n`, each trimmed; a
/// one-line field borrows its value from the text.
pub(crate) struct Field<'a> {
    name: &'a str,
    value: Cow<'a, str>,
    /// The line the field starts on.
    pub(crate) line: usize,
}

/// The parsed fields of one stanza, with what error messages need.
pub(crate) struct Fields<'a> {
    fields: Vec<Field<'a>>,
    /// The `Package` value, for error messages.
    package: Option<&'a str>,
    path: &'a Path,
}

impl<'a> Fields<'a> {
    /// Splits `stanza`, read from `path`, into fields; a malformed line is an error
    /// naming `path`, the line and the package.
    pub(crate) fn parse(stanza: &Stanza<'a>, path: &'a Path) -> Result<Fields<'a>, DpkgError> {
        // The package name is found leniently first so that any error below can name it,
        // even when the malformed line comes before `Package:`.
        let package = stanza.lines.iter().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("Package").then(|| value.trim())
        });
        let mut parsed = Fields {
            fields: Vec::with_capacity(stanza.lines.len()),
            package,
            path,
        };
        for (offset, line) in stanza.lines.iter().enumerate() {
            let number = stanza.first_line + offset;
            if line.starts_with([' ', '\t']) {
                let Some(field) = parsed.fields.last_mut() else {
                    return Err(parsed.error(number, "continuation line before any field"));
                };
                let value = field.value.to_mut();
                value.push('\n');
                value.push_str(line.trim());
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                let message = format!("malformed line `{}`", excerpt(line));
                return Err(parsed.error(number, message));
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                let message = format!("malformed field name in `{}`", excerpt(line));
                return Err(parsed.error(number, message));
            }
            if name.starts_with('-') {
                let message = format!("field name `{}` starts with a hyphen", excerpt(name));
                return Err(parsed.error(number, message));
            }
            if parsed.get(name).is_some() {
                let message = format!("duplicate field {}", excerpt(name));
                return Err(parsed.error(number, message));
            }
            parsed.fields.push(Field {
                name,
                value: Cow::Borrowed(value.trim()),
                line: number,
            });
        }
        Ok(parsed)
    }

    /// A syntax error at `line` of this stanza's file, naming its package.
    pub(crate) fn error(&self, line: usize, message: impl Into<String>) -> DpkgError {
        DpkgError::Syntax {
            path: self.path.to_path_buf(),
            line,
            package: self.package.map(str::to_string),
            message: message.into(),
        }
    }

    /// The field called `name` (case-insensitive).
    pub(crate) fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(|f| f.value.as_ref())
    }

    /// The value of a field every stanza of its kind must have.
    pub(crate) fn required(&self, name: &str, stanza_line: usize) -> Result<&str, DpkgError> {
        self.value(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| self.error(stanza_line, format!("missing field {name}")))
    }

    /// The value of required field `name`, checked with dpkg's `rule` for it; a broken
    /// value is an error at the field's line naming the field and the value.
    fn checked(
        &self,
        name: &str,
        rule: fn(&str) -> Result<(), Broken>,
    ) -> Result<String, DpkgError> {
        let value = self.required(name, self.first_line())?;
        rule(value).map_err(|broken| {
            let line = self.get(name).map_or(self.first_line(), |f| f.line);
            self.error(line, format!("{name}: {broken}"))
        })?;
        Ok(value.to_string())
    }

    /// Parses a relation field with `parse`; an absent field is empty.
    fn relations<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Result<Vec<T>, RelationParseError>,
    ) -> Result<Vec<T>, DpkgError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(field) => {
                parse(&field.value).map_err(|e| self.error(field.line, format!("{name}: {e}")))
            }
        }
    }

    /// The line the stanza starts on, for errors about a field it lacks.
    pub(crate) fn first_line(&self) -> usize {
        self.fields.first().map_or(0, |f| f.line)
    }

    /// The package this stanza describes, or `None` when it is not installed.
    fn installed_package(&self) -> Result<Option<Package>, DpkgError> {
        let status = self.required("Status", self.first_line())?;
        let words: Vec<&str> = status.split_whitespace().collect();
        if !matches!(words.as_slice(), ["install" | "hold", "ok", "installed"]) {
            return Ok(None);
        }
        self.package(Origin::Installed).map(Some)
    }

    /// The package metadata of a status or package-index stanza, marked `origin`. The
    /// name, version and architecture, and those in its relations, must follow dpkg's
    /// rules ([`rules`]).
    pub(crate) fn package(&self, origin: Origin) -> Result<Package, DpkgError> {
        let name = self.checked("Package", rules::package_name)?;
        let version = self.checked("Version", rules::version)?;
        let arch = self.checked("Architecture", rules::architecture)?;
        let multi_arch = match self.get("Multi-Arch") {
            None => MultiArch::No,
            Some(field) => match field.value.as_ref() {
                "no" => MultiArch::No,
                "same" => MultiArch::Same,
                "foreign" => MultiArch::Foreign,
                "allowed" => MultiArch::Allowed,
                other => {
                    let message = format!("unknown Multi-Arch `{}`", excerpt(other));
                    return Err(self.error(field.line, message));
                }
            },
        };
        // dpkg refuses the pair: a `name:all` instance per arch makes no sense.
        if multi_arch == MultiArch::Same && arch == "all" {
            let line = self.get("Multi-Arch").map_or(self.first_line(), |f| f.line);
            let message = "Multi-Arch: same with Architecture: all, which dpkg refuses";
            return Err(self.error(line, message));
        }
        let essential = match self.get("Essential") {
            None => false,
            Some(field) => match field.value.as_ref() {
                "yes" => true,
                "no" => false,
                other => {
                    let message = format!("unknown Essential `{}`", excerpt(other));
                    return Err(self.error(field.line, message));
                }
            },
        };
        Ok(Package {
            name,
            version,
            arch,
            multi_arch,
            essential,
            depends: self.relations("Depends", parse_dependencies)?,
            pre_depends: self.relations("Pre-Depends", parse_dependencies)?,
            provides: self.relations("Provides", Relation::parse_list)?,
            conflicts: self.relations("Conflicts", Relation::parse_list)?,
            breaks: self.relations("Breaks", Relation::parse_list)?,
            origin,
        })
    }

    /// The `Conffiles` field: `path md5 [obsolete] [remove-on-upgrade]` per line.
    fn conffiles(&self) -> Result<Vec<Conffile>, DpkgError> {
        let Some(field) = self.get("Conffiles") else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        // The value's first line is the (empty) text after `Conffiles:`.
        for (offset, line) in field.value.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            // dpkg reads the flags and the hash from the end, so paths may hold spaces.
            let mut rest = line;
            let mut take = |word: &str| match rest.rsplit_once(' ') {
                Some((head, last)) if last == word => {
                    rest = head.trim_end();
                    true
                }
                _ => false,
            };
            take("remove-on-upgrade");
            let obsolete = take("obsolete");
            match rest.rsplit_once(' ') {
                Some((path, md5)) if path.starts_with('/') && !md5.is_empty() => {
                    out.push(Conffile {
                        path: path.trim_end().to_string(),
                        md5: md5.to_string(),
                        obsolete,
                    })
                }
                _ => {
                    return Err(self.error(
                        field.line + offset,
                        format!("malformed Conffiles line `{}`", excerpt(line)),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// What `package` owns, from its `.list` (arch-qualified or not, as dpkg names it) and
/// the `.md5sums` beside it, in the dpkg `info/` folder `info`.
fn read_owned(info: &Path, package: &Package) -> Result<Owned, DpkgError> {
    let qualified = package.qualified_name();
    let mut list_path = info.join(format!("{qualified}.list"));
    let mut list = read_optional(&list_path)?;
    if list.is_none() {
        list_path = info.join(format!("{}.list", package.name));
        list = read_optional(&list_path)?;
    }
    let Some(list) = list else {
        return Err(DpkgError::MissingList {
            package: qualified,
            path: list_path,
        });
    };
    let mut files = Vec::new();
    for (i, line) in list.lines().enumerate() {
        match line {
            "" | "/." => {}
            path if path.starts_with('/') => files.push(path.to_string()),
            other => {
                return Err(DpkgError::Syntax {
                    path: list_path,
                    line: i + 1,
                    package: Some(qualified),
                    message: format!("path `{}` is not absolute", excerpt(other)),
                });
            }
        }
    }
    // The md5sums file sits beside whichever list file was found.
    let md5_path = list_path.with_extension("md5sums");
    let md5sums = parse_md5sums(
        &read_optional(&md5_path)?.unwrap_or_default(),
        &md5_path,
        &qualified,
    )?;
    Ok(Owned {
        files,
        md5sums,
        list_path,
    })
}

/// Parses the control file of a binary package (`DEBIAN/control`: one stanza, none of
/// the fields dpkg writes on installing it, such as `Status`) into its metadata, marked
/// as coming from `origin`. `path` names the file in error messages.
pub fn parse_control(text: &str, path: &Path, origin: Origin) -> Result<Package, DpkgError> {
    let syntax = |line: usize, message: &str| DpkgError::Syntax {
        path: path.to_path_buf(),
        line,
        package: None,
        message: message.to_string(),
    };
    match stanzas(text).as_slice() {
        [] => Err(syntax(1, "empty control file")),
        [stanza] => {
            let fields = Fields::parse(stanza, path)?;
            for name in INSTALLED_ONLY {
                if let Some(field) = fields.get(name) {
                    let message = format!("field {name} is not allowed in a control file");
                    return Err(fields.error(field.line, message));
                }
            }
            fields.package(origin)
        }
        [_, second, ..] => Err(syntax(
            second.first_line,
            "a control file holds one paragraph but this one has more",
        )),
    }
}

/// Parses an md5sums file (`<md5>  <path>` per line, paths relative or absolute) into
/// MD5s keyed by absolute path. `path` and `package` are for error messages.
pub fn parse_md5sums(
    text: &str,
    path: &Path,
    package: &str,
) -> Result<BTreeMap<String, String>, DpkgError> {
    let mut md5sums = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let malformed = || DpkgError::Syntax {
            path: path.to_path_buf(),
            line: i + 1,
            package: Some(package.to_string()),
            message: format!("malformed line `{}`", excerpt(line)),
        };
        let Some((md5, file)) = line.split_once(char::is_whitespace) else {
            return Err(malformed());
        };
        let file = file.trim_start();
        if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) || file.is_empty() {
            return Err(malformed());
        }
        md5sums.insert(
            format!("/{}", file.trim_start_matches('/')),
            md5.to_string(),
        );
    }
    Ok(md5sums)
}

fn read_diversions(path: &Path) -> Result<Vec<Diversion>, DpkgError> {
    let Some(text) = read_optional(path)? else {
        return Ok(Vec::new());
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, triple) in lines.chunks(3).enumerate() {
        let [from, to, by] = triple else {
            return Err(DpkgError::TruncatedDiversion {
                path: path.to_path_buf(),
                line: i * 3 + 1,
            });
        };
        out.push(Diversion {
            from: from.to_string(),
            to: to.to_string(),
            by: (*by != ":").then(|| by.to_string()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn status_text_is_parsed_without_a_sysroot() {
        let text = "Package: aa\r\nStatus: install ok installed\r\nArchitecture: all\r\n\
            Version: 1\r\n\r\nPackage: bb\nStatus: deinstall ok config-files\n\
            Architecture: all\nVersion: 2";
        let found = parse_status(text, Path::new("status")).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].package.name, "aa");
        assert_eq!(
            found[0].stanza,
            "Package: aa\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n"
        );
        // Found by fuzzing: `\r\r\n` kept one `\r`, so the stanza written into an
        // appliance read back differently; a stanza is now a fixed point.
        let odd = "Package: aa\r\r\nStatus: install ok installed\nArchitecture: all\r\r\r\n\
            Version: 1\r";
        let first = parse_status(odd, Path::new("status")).unwrap();
        assert_eq!(
            first[0].stanza,
            "Package: aa\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n"
        );
        assert_eq!(
            parse_status(&first[0].stanza, Path::new("status")).unwrap(),
            first
        );
        let err = parse_status("Package: aa\nnonsense\n", Path::new("s"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "s:2: package aa: malformed line `nonsense`");
    }

    #[test]
    fn stanzas_keep_dpkgs_rules() {
        let status = |arch: &str, fields: &str| {
            let text = format!(
                "Package: aa\nStatus: install ok installed\nVersion: 1\nArchitecture: {arch}\n{fields}"
            );
            parse_status(&text, Path::new("status")).map_err(|e| e.to_string())
        };
        status(
            "amd64",
            "Multi-Arch: same\nDepends: bb (>= 1:2.0~rc1-1), cc:any\n",
        )
        .unwrap();
        for (arch, fields, message) in [
            (
                "all",
                "Multi-Arch: same\n",
                "status:5: package aa: Multi-Arch: same with Architecture: all, which dpkg refuses",
            ),
            (
                "amd64",
                "-Evil: x\n",
                "status:5: package aa: field name `-Evil` starts with a hyphen",
            ),
            (
                "amd64",
                "Depends: bb (>= 1 2)\n",
                "status:5: package aa: Depends: malformed relation `bb (>= 1 2)`: \
                 bad version `1 2`: version string has embedded spaces",
            ),
            (
                "amd_64",
                "",
                "status:4: package aa: Architecture: bad architecture `amd_64`: \
                 character `_` is not allowed (only lowercase letters, digits and `-`)",
            ),
        ] {
            assert_eq!(status(arch, fields).unwrap_err(), message);
        }
        // What dpkg writes on installing a package is not the package's to say.
        let control = "Package: aa\nVersion: 1\nArchitecture: all\nstatus: purge ok installed\n";
        assert_eq!(
            parse_control(control, Path::new("x.deb:control"), Origin::Pool)
                .unwrap_err()
                .to_string(),
            "x.deb:control:4: package aa: field Status is not allowed in a control file"
        );
    }

    /// Writes `files` (path relative to the sysroot, content) under a new tempdir.
    fn sysroot(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    const STATUS: &str = "\
Package: base-files
Status: install ok installed
Essential: yes
Architecture: amd64
Version: 12.4+deb12u5
Conffiles:
 /etc/debian_version 1ee6a3c1d0f2e3ba3fc5e4f8a6b2c1d0
 /etc/old.conf 0123456789abcdef0123456789abcdef obsolete
 /etc/dpkg/hook 0123456789abcdef0123456789abcdef remove-on-upgrade
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy
 .
 of a Debian system.

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libc6
Status: hold ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u4
Depends: libgcc-s1,
 tzdata (>= 2020a) | time-zone
Pre-Depends: libcrypt1 (>= 1:4.4.10-10~)
Provides: libc6-amd64 (= 2.36), glibc
Breaks: hurd (>= 1:0.9)
Conflicts: old-libc
";

    fn fixture() -> tempfile::TempDir {
        sysroot(&[
            ("var/lib/dpkg/status", STATUS),
            (
                "var/lib/dpkg/info/base-files.list",
                "/.\n/etc\n/etc/debian_version\n",
            ),
            (
                "var/lib/dpkg/info/base-files.md5sums",
                "1ee6a3c1d0f2e3ba3fc5e4f8a6b2c1d0  etc/debian_version\n",
            ),
            // A plain list for libc6 that must lose against the qualified one.
            ("var/lib/dpkg/info/libc6.list", "/wrong\n"),
            (
                "var/lib/dpkg/info/libc6:amd64.list",
                "/.\n/lib\n/lib/x86_64-linux-gnu/libc.so.6\n",
            ),
            (
                "var/lib/dpkg/diversions",
                "/bin/sh\n/bin/sh.distrib\ndash\n/etc/motd\n/etc/motd.local\n:\n",
            ),
        ])
    }

    #[test]
    fn reads_installed_packages() {
        let root = fixture();
        let db = DpkgDatabase::read(root.path()).unwrap();
        let names: Vec<&str> = db
            .packages
            .iter()
            .map(|p| p.package.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["base-files", "libc6"],
            "deinstalled package skipped"
        );

        let base = &db.packages[0];
        assert!(base.package.essential);
        assert_eq!(base.package.origin, Origin::Installed);
        let owned = base.owned().unwrap();
        assert_eq!(owned.files, ["/etc", "/etc/debian_version"]);
        assert_eq!(
            owned.md5sums.get("/etc/debian_version").map(String::as_str),
            Some("1ee6a3c1d0f2e3ba3fc5e4f8a6b2c1d0")
        );
        assert_eq!(base.conffiles.len(), 3);
        assert_eq!(base.conffiles[0].path, "/etc/debian_version");
        assert!(!base.conffiles[0].obsolete);
        assert_eq!(base.conffiles[1].path, "/etc/old.conf");
        assert!(base.conffiles[1].obsolete);
        assert_eq!(base.conffiles[2].path, "/etc/dpkg/hook");
        assert!(base.stanza.starts_with("Package: base-files\n"));
        assert!(base.stanza.ends_with(" of a Debian system.\n"));

        let libc = &db.packages[1];
        assert_eq!(libc.package.multi_arch, MultiArch::Same);
        assert_eq!(libc.package.version, "2.36-9+deb12u4");
        let owned = libc.owned().unwrap();
        assert_eq!(owned.files, ["/lib", "/lib/x86_64-linux-gnu/libc.so.6"]);
        assert!(owned.md5sums.is_empty(), "missing md5sums reads as empty");
        assert_eq!(libc.package.depends.len(), 2, "continuation line joined");
        assert_eq!(libc.package.depends[1][1].name, "time-zone");
        assert_eq!(libc.package.pre_depends[0][0].name, "libcrypt1");
        assert_eq!(libc.package.provides[1].name, "glibc");
        assert_eq!(libc.package.breaks[0].name, "hurd");
        assert_eq!(libc.package.conflicts[0].name, "old-libc");

        assert_eq!(
            db.diversions,
            [
                Diversion {
                    from: "/bin/sh".into(),
                    to: "/bin/sh.distrib".into(),
                    by: Some("dash".into()),
                },
                Diversion {
                    from: "/etc/motd".into(),
                    to: "/etc/motd.local".into(),
                    by: None,
                },
            ]
        );
    }

    #[test]
    fn malformed_status_line_names_file_line_and_package() {
        let status = STATUS.replace("Version: 2.36-9+deb12u4", "this line has no colon");
        let root = sysroot(&[("var/lib/dpkg/status", &status)]);
        let err = DpkgDatabase::read(root.path()).unwrap_err().to_string();
        let line = status
            .lines()
            .position(|l| l == "this line has no colon")
            .unwrap()
            + 1;
        assert!(
            err.contains(&format!("var/lib/dpkg/status:{line}: package libc6:")),
            "{err}"
        );
    }

    #[test]
    fn malformed_relation_names_line_and_package() {
        let status = STATUS.replace("Conflicts: old-libc", "Conflicts: old-libc (>= )");
        let root = sysroot(&[("var/lib/dpkg/status", &status)]);
        let err = DpkgDatabase::read(root.path()).unwrap_err().to_string();
        let line = status
            .lines()
            .position(|l| l.starts_with("Conflicts"))
            .unwrap()
            + 1;
        assert!(
            err.contains(&format!("status:{line}: package libc6: Conflicts")),
            "{err}"
        );
    }

    #[test]
    fn continuation_before_any_field_is_an_error() {
        let root = sysroot(&[("var/lib/dpkg/status", " stray\nPackage: x\n")]);
        let err = DpkgDatabase::read(root.path()).unwrap_err().to_string();
        assert!(err.contains("status:1: package x: continuation"), "{err}");
    }

    #[test]
    fn a_missing_list_fails_only_the_package_it_belongs_to() {
        let root = fixture();
        fs::remove_file(root.path().join("var/lib/dpkg/info/base-files.list")).unwrap();
        let db = DpkgDatabase::read(root.path()).unwrap();
        assert!(db.packages[1].owned().is_ok(), "libc6's list is there");
        let err = db.packages[0].owned().unwrap_err().to_string();
        assert!(err.contains("package base-files:amd64"), "{err}");
        assert!(err.contains("info/base-files.list"), "{err}");
    }

    #[test]
    fn diversions_file_is_optional_but_must_be_whole() {
        let root = fixture();
        let diversions = root.path().join("var/lib/dpkg/diversions");
        fs::remove_file(&diversions).unwrap();
        assert!(
            DpkgDatabase::read(root.path())
                .unwrap()
                .diversions
                .is_empty()
        );

        fs::write(&diversions, "/a\n/a.real\npkg\n/b\n/b.real\n").unwrap();
        let err = DpkgDatabase::read(root.path()).unwrap_err().to_string();
        assert!(err.contains("diversions:4: truncated"), "{err}");
    }

    #[test]
    fn reads_the_real_database_when_present() {
        if !Path::new("/var/lib/dpkg/status").exists() {
            eprintln!("no /var/lib/dpkg/status on this machine: skipped");
            return;
        }
        let db = DpkgDatabase::read(Path::new("/")).unwrap();
        for name in ["bash", "coreutils", "libc6"] {
            let package = db
                .packages
                .iter()
                .find(|p| p.package.name == name)
                .unwrap_or_else(|| panic!("{name} not installed"));
            let files = &package.owned().unwrap().files;
            assert!(!files.is_empty(), "{name} lists no files");
            assert!(files.iter().all(|f| f.starts_with('/')));
        }
        let bash = db
            .packages
            .iter()
            .find(|p| p.package.name == "bash")
            .unwrap();
        let owned = bash.owned().unwrap();
        assert!(owned.files.iter().any(|f| f.ends_with("bin/bash")));
        assert!(owned.md5sums.keys().any(|f| f.ends_with("bin/bash")));
    }
}
