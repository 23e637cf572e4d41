//! `appliance materialise`: a stored lock as a chroot, tarball, template, image or OCI layout.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::present::stdout_error;
use super::{Context, Lookup};
use crate::error::{Error, Result};
use crate::lang::Flavor;
use crate::materialise::{self, Format};

/// What `appliance materialise` was asked.
pub struct MaterialiseOptions {
    /// Which lock.
    pub lookup: Lookup,
    /// `--format`.
    pub format: Option<String>,
    /// `--disk`: an image's disk kind.
    pub disk: Option<String>,
    /// `--tag`: the name of an OCI layout's image.
    pub tag: Option<String>,
    /// `-o OUT`; default named after the lock and the format in the current folder
    /// (see [`Format::default_output`]).
    pub output: Option<PathBuf>,
    /// `--if-newer`.
    pub if_newer: bool,
    /// `--lock FILE`.
    pub lock_file: Option<PathBuf>,
    /// `--force`: replace an existing OUT that appliance did not make.
    pub force: bool,
    /// More folders of `.deb` archives (`--pool DIR`).
    pub pools: Vec<PathBuf>,
}

/// Materialises a stored lock into an output of the chosen format.
pub fn materialise(ctx: &Context, opts: &MaterialiseOptions, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let (group, flavor) = ctx.name(&repo, &opts.lookup)?;
    // Without -o, the format is chosen as for an OUT without an extension, and OUT is
    // named after it, so that each format of a lock has its own default.
    let stem = format!("{group}-{}", flavor.name.as_deref().unwrap_or("custom"));
    let format = choose_format(
        opts.format.as_deref(),
        opts.disk.as_deref(),
        opts.tag.as_deref(),
        &flavor,
        opts.output.as_deref().unwrap_or(Path::new(&stem)),
    )?;
    let output = (opts.output.clone()).unwrap_or_else(|| format.default_output(&stem));
    let options = materialise::Options {
        if_newer: opts.if_newer,
        lock_file: opts.lock_file.clone(),
        mtime: source_date_epoch()?,
        force: opts.force,
        protected: ctx.protected(),
        report: ctx.report,
    };
    let sources = ctx.building_sources(&opts.pools);
    // A current output is told from the lock id and the stamp alone: reading the lock's
    // thousands of rows would take longer than the whole check. An OpenVZ template
    // named after the lock's os-release needs the lock to know its own name.
    let named = !matches!(format, Format::Openvz(_))
        || opts
            .output
            .as_ref()
            .is_some_and(|o| !o.is_dir() && !names_folder(o));
    if opts.if_newer && named {
        let located =
            repo.locate_id(&group, &flavor.canonical(), opts.lookup.version.as_deref())?;
        if materialise::is_current(&located.lock_id, &sources, &format, &output, options.mtime) {
            return up_to_date(out, &located.address(), &output);
        }
    }
    let stored = repo.load(&group, &flavor.canonical(), opts.lookup.version.as_deref())?;
    // An OpenVZ template goes by the name vzctl knows it by, in the current folder or
    // in the folder OUT names (vzctl's template cache). OUT ending in `/` names a folder
    // even before it exists, and it is made.
    let output = match (&format, &opts.output) {
        (Format::Openvz(compression), None) => PathBuf::from(materialise::template_name(
            &stored.lock,
            &sources,
            *compression,
        )?),
        (Format::Openvz(compression), Some(dir)) if dir.is_dir() || names_folder(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            dir.join(materialise::template_name(
                &stored.lock,
                &sources,
                *compression,
            )?)
        }
        _ => output,
    };
    let outcome = materialise::materialise(
        &stored.lock,
        &stored.lock_id,
        &sources,
        &format,
        &output,
        &options,
    )?;
    for warning in &outcome.warnings {
        crate::stderr::warning(warning);
    }
    let address = stored.lock.address(stored.revision);
    if !outcome.built {
        return up_to_date(out, &address, &output);
    }
    // xen.cfg names the image's files relative to its folder, where xl must run.
    let start = match format {
        Format::Image(_) if flavor.flag("xen") => format!(
            "; on a Xen host: cd {} && xl create xen.cfg",
            output.display()
        ),
        _ => String::new(),
    };
    writeln!(
        out,
        "{address} -> {} ({format}): {} entries, {} bytes{start}",
        output.display(),
        outcome.files,
        outcome.bytes
    )
    .map_err(stdout_error)
}

/// Whether OUT was written as a folder (`out/`), whether or not it exists yet.
fn names_folder(path: &Path) -> bool {
    path.as_os_str().as_encoded_bytes().ends_with(b"/")
}

/// Tells that `output` already holds lock `address`.
fn up_to_date(out: &mut dyn Write, address: &str, output: &Path) -> Result<()> {
    writeln!(out, "{address} -> {}: up to date", output.display()).map_err(stdout_error)
}

/// `--format` wins; then the flavor's own format, when OUT's name fits it (an OpenVZ
/// template is a `.tar.gz` or `.tar.xz`, the other formats are folders); then a tar
/// extension on OUT; then a chroot. `--disk` sets an image's disk kind and `--tag` an
/// OCI image's name; each goes with no other format.
fn choose_format(
    explicit: Option<&str>,
    disk: Option<&str>,
    tag: Option<&str>,
    flavor: &Flavor,
    output: &Path,
) -> Result<Format> {
    // An extension appliance does not write is told by the last choice, unless
    // `--format` names a folder.
    let by_extension = Format::choose(None, output).ok();
    let fits = |name: &str| match Format::choose(Some(name), output) {
        Ok(Format::Openvz(_)) => true,
        Ok(_) => by_extension == Some(Format::Chroot),
        Err(_) => false,
    };
    let by_name = explicit.or_else(|| flavor.format.as_deref().filter(|f| fits(f)));
    let mut format = Format::choose(by_name, output)?;
    let misplaced = |option: &str, wanted: &str, format: &Format| {
        Error::Usage(format!(
            "{option} goes with the {wanted} format, not {}",
            format.describe().0
        ))
    };
    if let Some(disk) = disk {
        match &mut format {
            Format::Image(kind) => *kind = materialise::Disk::parse(disk)?,
            other => return Err(misplaced("--disk", "image", other)),
        }
    }
    if let Some(tag) = tag {
        match &mut format {
            Format::Oci(name) => *name = materialise::Tag::parse(tag)?,
            other => return Err(misplaced("--tag", "oci", other)),
        }
    }
    Ok(format)
}

/// The mtime of entries the lock does not date: `SOURCE_DATE_EPOCH` when set (as
/// reproducible-builds.org defines it), else 0, so the same lock always gives the same
/// bytes.
pub(super) fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "SOURCE_DATE_EPOCH must be a whole number of seconds, not `{text}`"
            ))
        }),
        Err(_) => Ok(0),
    }
}
