//! `appliance boot`: a lock's image, built unless current, under qemu.

use std::io::Write;

use super::materialise::source_date_epoch;
use super::present::stdout_error;
use super::{Context, Lookup};
use crate::error::{Error, Result};
use crate::gc;
use crate::materialise::{self, Format};

/// What `appliance boot` was asked.
pub struct BootOptions {
    /// Which lock.
    pub lookup: Lookup,
    /// `--disk`: the image's disk kind (default raw).
    pub disk: Option<String>,
    /// `--accel`: auto, kvm or tcg.
    pub accel: String,
    /// `--memory`, in MiB.
    pub memory_mb: u32,
    /// What the guest runs instead of its default program (after `--`).
    pub args: Vec<String>,
    /// `--forward HOST:GUEST`, as given.
    pub forwards: Vec<String>,
}

/// Materialises the lock's image into `store/images/GROUP-FLAVOR` (unless it is current)
/// and boots it under qemu on this terminal; returns qemu's exit code.
pub fn boot(ctx: &Context, opts: &BootOptions, out: &mut dyn Write) -> Result<i32> {
    let accel = crate::boot::Accel::parse(&opts.accel)?.resolve()?;
    let forwards = crate::boot::Forward::parse_all(&opts.forwards)?;
    let repo = ctx.existing_repo()?;
    let (stored, flavor) = ctx.load(&repo, &opts.lookup)?;
    let group = &stored.lock.group;
    let flavor_name = flavor.name.clone().unwrap_or_else(|| "custom".into());
    let images = gc::images_dir(&ctx.workspace.store_dir());
    let name = format!("{group}-{flavor_name}");
    let output = images.join(&name);
    if flavor.flag("xen") {
        return Err(Error::Usage(format!(
            "flavor {flavor_name} is a Xen guest, which qemu does not boot: build it with \
             `appliance materialise {group} --flavor {flavor_name} --format image -o OUT` and \
             start it on a Xen host with `cd OUT && xl create xen.cfg`"
        )));
    }
    let disk = match opts.disk.as_deref() {
        Some(name) => materialise::Disk::parse(name)?,
        None => materialise::Disk::Raw,
    };
    let options = materialise::Options {
        if_newer: true,
        lock_file: Some(gc::image_lock(&images, &name)),
        mtime: source_date_epoch()?,
        force: false,
        protected: ctx.protected(),
        report: ctx.report,
    };
    let sources = ctx.building_sources(&[]);
    std::fs::create_dir_all(&images).map_err(|source| Error::Io {
        path: images.clone(),
        source,
    })?;
    let outcome = materialise::materialise(
        &stored.lock,
        &stored.lock_id,
        &sources,
        &Format::Image(disk),
        &output,
        &options,
    )?;
    for warning in &outcome.warnings {
        crate::stderr::warning(warning);
    }
    let state = if outcome.built { "built" } else { "up to date" };
    writeln!(
        out,
        "{} -> {}: image {state}, booting",
        stored.lock.address(stored.revision),
        output.display()
    )
    .and_then(|()| out.flush())
    .map_err(stdout_error)?;
    crate::stderr::line(format_args!("boot: {accel}"));
    let guest = crate::boot::Guest {
        image: output,
        disk,
        accel,
        memory_mb: opts.memory_mb,
        args: opts.args.clone(),
        forwards,
    };
    Ok(guest.run(out)?)
}
