//! Staging, configuring and capturing a tree takes root: the tree's files belong to many
//! users, and only root may map them into the scripts' namespace. A compile run by root
//! does it in its own process. Any other user's compile hands the job to a child
//! `appliance configure-job`, which a user namespace makes root over the caller's
//! subordinate ids (as mmdebstrap's unshare mode does): it stages, confines and captures
//! the tree as root does, with the same shifted ids, so the lock is the same whoever
//! runs it, and removes the tree itself, since only it may.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Write;
use std::panic::resume_unwind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::capture::{self, Captured};
use super::configure::{self, ConfigureError, Environment, Unpacked};
use super::error::{CompileError, Result};
use super::kept::{build_identity, decode, encode};
use super::rpm::scriptlets::{self, RpmScripts};
use super::setup::{self, UnitFile};
use super::store::Spool;
use super::{in_memory, stage};
use crate::confine::{IdShift, Subordinate};
use crate::lock::Lock;
use crate::repo::{BlobStore, Repository};
use crate::scratch::{self, Temp};
use crate::source::accounts::Accounts;

/// The stem of job files in the store.
const JOB_STEM: &str = "configure-job";

/// Everything the configure stage needs, as the child reads it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Job {
    /// Where the scratch tree is made (`store/`).
    pub scratch: PathBuf,
    /// Where capture puts the bytes configuration made: the compile's
    /// [`Spool`](super::Spool).
    pub spool: PathBuf,
    /// The root the packages' installed files are read under.
    pub sysroot: PathBuf,
    /// Folders of the archives the tree's other files come from.
    pub pools: Vec<PathBuf>,
    /// The unpacked tree to stage.
    pub staging: Lock,
    /// Bytes the staging lock takes from no package (the dpkg database).
    #[serde(with = "hex_blobs")]
    pub blobs: Vec<Vec<u8>>,
    /// The group's own unit files, put in the tree before configuring.
    pub units: Vec<UnitFile>,
    /// The packages' scripts, as their package manager runs them.
    pub scripts: Scripts,
}

/// The scripts that configure a tree.
#[derive(Clone, Serialize, Deserialize)]
pub enum Scripts {
    /// dpkg's: the packages whose `preinst install` runs, in order, and the settings.
    Dpkg {
        /// The unpacked packages.
        packages: Vec<Unpacked>,
        /// The scripts' settings.
        env: Environment,
    },
    /// rpm's scriptlets, in order.
    Rpm(RpmScripts),
}

impl Scripts {
    /// The scripts with who asked what of the tree left out (a statement's location, a
    /// flavor's name: only errors say them), so flavors asking the same share a tree.
    fn anonymous(&self) -> Scripts {
        let mut scripts = self.clone();
        let asked = match &mut scripts {
            Scripts::Dpkg { env, .. } => env.asked.iter_mut().collect::<Vec<_>>(),
            Scripts::Rpm(rpm) => rpm.sysusers.iter_mut().chain(&mut rpm.asked).collect(),
        };
        for asked in asked {
            asked.origin.clear();
        }
        scripts
    }
}

/// The configured tree, read back.
#[derive(Clone, Serialize, Deserialize)]
pub struct Done {
    /// Its entries, with the digests of the bytes configuration made (in the spool).
    pub captured: Captured,
    /// Its accounts.
    pub accounts: Accounts,
    /// What staging could not do.
    pub warnings: Vec<String>,
    /// How long the maintainer scripts ran; `None` for a tree an identical job made.
    pub took: Option<std::time::Duration>,
    /// The digest of the job that made it, which the revision stored from it records.
    #[serde(skip)]
    pub job: String,
}

/// The configured trees a compile can take instead of running the scripts again, by
/// the digest of what went into them: the flavors of a group that differ only in what
/// is laid over the packages (xen and kvm) configure once, and with a repository, a
/// tree an earlier compile by this same build of appliance made is taken from it. A
/// job [`begun`](Configurations::begin) runs on a thread of its own meanwhile: the
/// scripts run one process at a time, so a second tree (openvz's beside xen's) is
/// configured on the other core while the next recipe is prepared.
pub struct Configurations<'a> {
    /// The trees made or taken in this compile, by job digest.
    known: RefCell<HashMap<String, Done>>,
    /// The jobs running, by digest, in the order they began.
    running: RefCell<Vec<(String, JoinHandle<Result<Done>>)>>,
    /// The trees a recipe took already: the next to take one reuses it.
    taken: RefCell<HashSet<String>>,
    /// Where trees are kept across compiles.
    repo: Option<&'a Repository>,
    /// Where the bytes the trees' configuration made are.
    spool: &'a Spool,
}

impl<'a> Configurations<'a> {
    /// Also takes the trees `repo` keeps whose bytes the blob store holds, and keeps
    /// there the ones made, whose bytes go to `spool`.
    pub fn kept_in(repo: &'a Repository, spool: &'a Spool) -> Configurations<'a> {
        Configurations {
            known: RefCell::default(),
            running: RefCell::default(),
            taken: RefCell::default(),
            repo: Some(repo),
            spool,
        }
    }

    /// The spool a job's capture puts the bytes in.
    pub fn spool(&self) -> &'a Spool {
        self.spool
    }

    /// Starts `job` on a thread of its own, unless its tree is known, kept or being
    /// made, and returns the key [`get`](Configurations::get) takes the tree by. At
    /// most one job a core runs: beyond that, the oldest is waited for first. A thread
    /// that cannot be made leaves the job for `get` to run.
    pub fn begin(&self, job: &Job) -> Result<Begun> {
        let digest = digest(job, build_identity())?;
        let running = self.running.borrow().iter().any(|(d, _)| *d == digest);
        if running || self.is_known(&digest)? {
            return Ok(Begun(digest));
        }
        while self.running.borrow().len() >= side_by_side() {
            self.settle(0)?;
        }
        let owned = job.clone();
        let thread = std::thread::Builder::new().name("configure".into());
        if let Ok(handle) = thread.spawn(move || run(&owned)) {
            self.running.borrow_mut().push((digest.clone(), handle));
        }
        Ok(Begun(digest))
    }

    /// The tree of `job`, [`begun`](Configurations::begin) as `begun`: its thread's,
    /// one an identical job made or the repository keeps, or run now (and kept). Only
    /// the first recipe to take a tree made in this compile says how long its scripts
    /// ran.
    pub fn get(&self, begun: &Begun, job: &Job) -> Result<Done> {
        let digest = &begun.0;
        let running = (self.running.borrow().iter()).position(|(d, _)| d == digest);
        if let Some(at) = running {
            self.settle(at)?;
        }
        let known = match self.is_known(digest)? {
            true => self.known.borrow().get(digest).cloned(),
            false => None,
        };
        let done = match known {
            Some(done) => done,
            None => self.keep(digest, run(job)?)?,
        };
        let first = self.taken.borrow_mut().insert(digest.clone());
        Ok(Done {
            took: done.took.filter(|_| first),
            ..done
        })
    }

    /// Waits for the job `at` in `running` and keeps its tree.
    fn settle(&self, at: usize) -> Result<()> {
        let (digest, handle) = self.running.borrow_mut().remove(at);
        // A job that panicked panics here, as it would have run here.
        let done = handle.join().unwrap_or_else(|panic| resume_unwind(panic))?;
        self.keep(&digest, done)?;
        Ok(())
    }

    /// Keeps `done`, the tree of job `digest`, known and in the repository.
    fn keep(&self, digest: &str, done: Done) -> Result<Done> {
        if let Some((repo, tree)) = self.keeping().zip(encode(&done)) {
            repo.keep_configured(digest, &tree)?;
        }
        let done = Done {
            job: digest.to_string(),
            ..done
        };
        (self.known.borrow_mut()).insert(digest.to_string(), done.clone());
        Ok(done)
    }

    /// Whether the tree of job `digest` is known: made in this compile, or kept in the
    /// repository (taken into `known` then).
    fn is_known(&self, digest: &str) -> Result<bool> {
        if self.known.borrow().contains_key(digest) {
            return Ok(true);
        }
        let Some(repo) = self.keeping() else {
            return Ok(false);
        };
        // A tree whose bytes a sweep took since (those of files its lock left out) is
        // made again.
        let kept = repo
            .configured(digest)?
            .and_then(|tree| decode::<Done>(&tree));
        let Some(done) = kept.filter(|done| self.spool.holds(&done.captured.spooled)) else {
            return Ok(false);
        };
        let done = Done {
            took: None,
            job: digest.to_string(),
            ..done
        };
        (self.known.borrow_mut()).insert(digest.to_string(), done);
        Ok(true)
    }

    /// The repository trees are kept in: none without this build's identity, since a
    /// kept tree could then be another build's.
    fn keeping(&self) -> Option<&'a Repository> {
        self.repo.filter(|_| build_identity().is_some())
    }
}

/// How many jobs [`Configurations`] runs at once: one a core, since each runs its
/// scripts one process at a time.
fn side_by_side() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A job [`Configurations::begin`] was given: the digest its tree is known by.
pub struct Begun(String);

impl Drop for Configurations<'_> {
    /// A compile that fails while a job runs waits for it: the job removes its scratch
    /// tree when it ends, and a thread cut off by the process's exit would leave it.
    fn drop(&mut self) {
        for (_, running) in self.running.get_mut().drain(..) {
            let _ = running.join();
        }
    }
}

/// The digest of everything that goes into `job`'s tree but where the tree is made and
/// who asked what of it: its entries, bytes, scripts, settings, whether it is staged
/// as root, and the build of appliance that stages, confines and captures it.
fn digest(job: &Job, build: Option<&str>) -> Result<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    let json = serde_json::to_vec(&(
        &job.sysroot,
        &job.pools,
        &job.staging.files,
        (job.blobs.iter())
            .map(|b| blake3::hash(b).to_hex().to_string())
            .collect::<Vec<_>>(),
        &job.units,
        &job.scripts.anonymous(),
        as_root,
        build,
    ))
    .map_err(CompileError::Job)?;
    Ok(blake3::hash(&json).to_hex().to_string())
}

/// Runs `job` as root: here when this process is root, else in a child made root of a
/// user namespace over the caller's subordinate ids.
fn run(job: &Job) -> Result<Done> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return run_here(job);
    }
    let subordinate = Subordinate::of_caller().map_err(ConfigureError::from)?;
    std::fs::create_dir_all(&job.scratch).map_err(CompileError::io_at(&job.scratch))?;
    scratch::remove_stale(&job.scratch, |stem| stem == JOB_STEM);
    let (temp, mut file): (Temp, _) = Temp::file(&job.scratch, OsStr::new(JOB_STEM), 0o600)
        .map_err(CompileError::io_at(&job.scratch))?;
    let json = serde_json::to_vec(job).map_err(CompileError::Job)?;
    file.write_all(&json)
        .map_err(CompileError::io_at(&temp.path))?;
    let exe = std::env::current_exe().map_err(CompileError::io_at(Path::new("/proc/self/exe")))?;
    let mut command = Command::new(exe);
    command.arg("configure-job").arg(&temp.path);
    let output =
        (subordinate.run_as_root(command, IdShift::DEFAULT)).map_err(ConfigureError::from)?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said.trim();
        return Err(
            ConfigureError::Child(said.strip_prefix("error: ").unwrap_or(said).into()).into(),
        );
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| ConfigureError::Child(format!("its answer could not be read: {e}")).into())
}

/// Runs `job` in this process, which is root: staged in memory where the tree fits
/// ([`in_memory`](super::in_memory)), else, or when its scripts filled the memory
/// given, on disk.
fn run_here(job: &Job) -> Result<Done> {
    let bytes = (job.staging.files.iter()).fold(0u64, |sum, f| sum.saturating_add(f.size));
    if let Some(room) = in_memory::room_for(bytes, side_by_side()) {
        let ran = in_memory::isolated(|| -> Result<Option<Done>> {
            let scratch = stage::Scratch::new(&job.scratch, Some(room))?;
            match configure_in(&scratch, job) {
                Err(_) if scratch.is_full() => Ok(None),
                done => done.map(Some),
            }
        });
        match ran {
            Ok(Ok(Some(done))) => return Ok(done),
            Ok(Err(e)) => return Err(e),
            // No namespace to mount in, or the tree outgrew its room.
            Ok(Ok(None)) | Err(_) => {}
        }
    }
    configure_in(&stage::Scratch::new(&job.scratch, None)?, job)
}

/// Stages `job`'s tree in `scratch`, runs its scripts and captures it.
fn configure_in(scratch: &stage::Scratch, job: &Job) -> Result<Done> {
    let staged = stage::stage(
        scratch,
        &job.sysroot,
        job.pools.clone(),
        &job.staging,
        &job.blobs,
    )?;
    setup::place_units(&job.units, &staged.root, staged.ids)?;
    let took = match &job.scripts {
        Scripts::Dpkg { packages, env } => {
            configure::configure(&staged.root, staged.ids, packages, env, &staged.log)?
        }
        Scripts::Rpm(scripts) => {
            scriptlets::configure(&staged.root, staged.ids, scripts, &staged.log)?
        }
    };
    let spool = BlobStore::scratch(&job.spool)?;
    let captured = capture::capture(&staged.root, staged.ids, &job.staging.files, &spool)?;
    Ok(Done {
        captured,
        accounts: Accounts::read(&staged.root)?,
        warnings: staged.warnings.clone(),
        took: Some(took),
        job: String::new(),
    })
}

/// The child's side: reads the job in `file`, runs it and writes what it made to `out`.
pub fn serve(file: &Path, out: &mut dyn Write) -> Result<()> {
    let io = |source| CompileError::Io {
        path: file.to_path_buf(),
        source,
    };
    let json = std::fs::read(file).map_err(io)?;
    let job: Job = serde_json::from_slice(&json).map_err(|reason| CompileError::NotAJob {
        path: file.to_path_buf(),
        reason,
    })?;
    let done = run_here(&job)?;
    serde_json::to_writer(&mut *out, &done).map_err(CompileError::Job)?;
    out.flush().map_err(CompileError::io_at(Path::new("-")))
}

/// File contents as hex strings in the job's JSON.
pub(crate) mod hex_blobs {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes each blob as a hex string.
    pub fn serialize<S: Serializer>(blobs: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(blobs.iter().map(hex::encode))
    }

    /// Reads blobs written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let hexes: Vec<String> = Vec::deserialize(d)?;
        (hexes.iter())
            .map(|h| hex::decode(h).map_err(D::Error::custom))
            .collect()
    }
}
