//! The `appliance` command line: parses arguments and hands them to the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use appliance::commands::{
    self, BootOptions, CompileOptions, Context, DiffOptions, ExportOptions, GcOptions, LogOptions,
    Lookup, MaterialiseOptions, PushOptions, RemoteOptions, RmOptions, SbomOptions, ShowOptions,
};
use appliance::lock::Backend;
use appliance::progress::{Reporter, Verbosity};
use appliance::resolve::Prefer;
use appliance::sbom;
use clap::{Args, CommandFactory, Parser, Subcommand};

/// Build exact, reproducible operating-system appliances from short KDL groups.
#[derive(Parser)]
#[command(name = "appliance", version, about, long_about = None)]
struct Cli {
    /// The workspace folder (default: look upward for `groups/` or `store/`).
    #[arg(long, global = true, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// The SQLite repository (default: `store/repo.sqlite` in the workspace).
    #[arg(long, global = true, value_name = "PATH")]
    repo: Option<PathBuf>,
    /// Read the host's packages and files under this root.
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    sysroot: PathBuf,
    /// Say more: a line per finished stage on stderr, and every stale package.
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// Say nothing on stderr but warnings and errors: no progress.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// How `push` and `pull` reach the registry.
#[derive(Args)]
struct Remote {
    /// Speak plain http: TLS is the default.
    #[arg(long)]
    insecure: bool,
    /// Trust the certificate authorities of this PEM file too (a registry's own CA).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Log in as USER with the password read from standard input (else the docker
    /// config.json's credentials for the registry, if any).
    #[arg(long, value_name = "USER")]
    username: Option<String>,
}

impl From<Remote> for RemoteOptions {
    fn from(remote: Remote) -> RemoteOptions {
        RemoteOptions {
            insecure: remote.insecure,
            ca_file: remote.ca_file,
            username: remote.username,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Resolve groups into locks, one per flavor, and store them in the repository.
    #[command(
        after_help = "Example:\n  appliance compile groups/base.kdl\n  appliance compile groups/web.kdl --flavor openvz"
    )]
    Compile {
        /// Group files (or group names) to compile.
        #[arg(required = true, value_name = "GROUP.kdl")]
        groups: Vec<String>,
        /// Flavors to compile for (a flavor name or a string such as `[!kernel,openvz is: x86_64]`); default: the group's `flavors`.
        #[arg(long, value_name = "F")]
        flavor: Vec<String>,
        /// Another folder of `.deb` or `.rpm` archives, or a createrepo_c repository, to
        /// take packages from (after store/pool and /var/cache/apt/archives).
        #[arg(long, value_name = "DIR")]
        pool: Vec<PathBuf>,
        /// The package manager: `dpkg` or `rpm` (default: the sysroot's own, found by its
        /// database).
        #[arg(long, value_name = "dpkg|rpm")]
        backend: Option<Backend>,
        /// Never download: a package known only from apt's lists is an error.
        #[arg(long)]
        offline: bool,
        /// Which version of each package to take: `installed` (the host's, the default)
        /// or `newest` (from any source); replaces the groups' `prefer` statements.
        #[arg(long, value_name = "installed|newest")]
        prefer: Option<Prefer>,
        /// Print the locks made, with their warnings, as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Rehydrate a stored lock into a chroot, tarball, OpenVZ template, image or OCI layout.
    #[command(
        visible_alias = "materialize",
        after_help = "Example:\n  appliance materialise base --flavor openvz --format chroot -o /tmp/base\n  appliance materialise base --flavor openvz -o base.tar.zst"
    )]
    Materialise {
        /// The group (may be left out when the repository holds one group).
        group: Option<String>,
        /// The flavor to materialise (may be left out when the group was compiled for one).
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// Output format: chroot, tar, openvz, image or oci (default: tar for a tar
        /// extension, else the flavor's format, else chroot).
        #[arg(long, value_name = "FMT")]
        format: Option<String>,
        /// An image's root disk: raw, qcow2 or vmdk (default raw).
        #[arg(long, value_name = "KIND")]
        disk: Option<String>,
        /// The name an OCI layout gives its image, as `OUT:TAG` takes it (default latest).
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
        /// Output path (default: `GROUP-FLAVOR` in the current folder, with `.tar`, `.image`
        /// or `.oci` for those formats).
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
        /// The lock version: `1.0` (its latest revision) or `1.0-2`; default the newest.
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Return at once when OUT was built from the same lock with the same options and
        /// no host file it was built from has changed since.
        #[arg(long)]
        if_newer: bool,
        /// Serialise concurrent builds of this output on this lock file.
        #[arg(long, value_name = "FILE")]
        lock: Option<PathBuf>,
        /// Replace OUT even when appliance did not make it; never the workspace, the
        /// store, the repository, the sysroot, a mount point, nor a device, FIFO or socket.
        #[arg(long)]
        force: bool,
        /// Another folder of `.deb` archives to take packages' files from (after store/pool and /var/cache/apt/archives).
        #[arg(long, value_name = "DIR")]
        pool: Vec<PathBuf>,
    },
    /// Build a lock's image (unless current) and boot it under qemu on this terminal.
    #[command(
        after_help = "The image goes to store/images/GROUP-FLAVOR. The guest's console is this terminal \
(Ctrl-A X quits qemu); the guest powers off when its program ends, and boot exits with qemu's code. \
Without a program, input that is not a terminal is typed on the guest's console once its program has \
started, and its end as ^D: a shell there runs it and exits. \
What the guest writes to its disk is discarded: every boot starts from the lock. \
Its NIC is on qemu's user network (an address by DHCP, NAT to the host's network); --forward HOST:GUEST \
makes the guest's TCP port GUEST reachable at 127.0.0.1:HOST.\n\n\
Example:\n  appliance boot minimal --flavor kvm\n  appliance boot minimal --flavor kvm -- /bin/bash -c 'uname -a'\n  \
echo 'uname -a' | appliance boot minimal --flavor kvm\n  appliance boot web --flavor kvm --forward 8080:80 --forward 2222:22"
    )]
    Boot {
        /// The group (may be left out when the repository holds one group).
        group: Option<String>,
        /// The flavor to boot, a kernel flavor such as kvm (may be left out when the group was
        /// compiled for one).
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// The lock version: `1.0` (its latest revision) or `1.0-2`; default the newest.
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// The root disk: raw, qcow2 or vmdk (default raw).
        #[arg(long, value_name = "KIND")]
        disk: Option<String>,
        /// CPU acceleration: auto (KVM when usable, else TCG), kvm or tcg.
        #[arg(long, value_name = "A", default_value = "auto")]
        accel: String,
        /// Guest memory in MiB.
        #[arg(long, value_name = "MB", default_value_t = 512)]
        memory: u32,
        /// Forward TCP port HOST on the host's loopback to the guest's port GUEST
        /// (repeatable).
        #[arg(long, value_name = "HOST:GUEST")]
        forward: Vec<String>,
        /// The program and arguments the guest runs instead of its default.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Compare the host with a lock: every missing, changed, unreadable, wrong-type,
    /// wrong-owner or wrong-mode path of the packages it takes from the host; exit 1 when
    /// any.
    #[command(
        after_help = "Example:\n  appliance verify web --flavor openvz\n  appliance verify web --flavor openvz --json"
    )]
    Verify {
        /// The group (may be left out when the repository holds one group).
        group: Option<String>,
        /// The flavor (may be left out when the group was compiled for one).
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// The lock version; default the newest.
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Another folder of `.deb` archives that may supply drifted files.
        #[arg(long, value_name = "DIR")]
        pool: Vec<PathBuf>,
        /// Print the differences as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the stored locks.
    #[command(after_help = "Example:\n  appliance list")]
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show a group's revisions, newest first, each with what changed from the one
    /// stored before it for the same flavor.
    #[command(
        after_help = "Example:\n  appliance log web\n  appliance log web --flavor openvz --json"
    )]
    Log {
        /// The group (may be left out when the repository holds one group).
        group: Option<String>,
        /// Only this flavor's revisions (default: every flavor's).
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Compare two stored locks: packages upgraded, downgraded, added and removed with
    /// their size change, and with --files every path new, gone or changed.
    #[command(
        after_help = "A reference is GROUP=VERSION-REVISION[FLAVOR] as `appliance list` prints it, or \
shorter: GROUP=VERSION-REVISION, GROUP=VERSION (its latest revision) or GROUP (its newest), each with \
an optional [FLAVOR] (a canonical string or a flavor's name). A reference without a flavor takes \
--flavor, else the only flavor its group was compiled for.\n\n\
Example:\n  appliance diff web=1.0-1 web=1.0-2 --flavor openvz\n  appliance diff 'web[openvz]' 'web[kvm]' --files"
    )]
    Diff {
        /// The old lock.
        from: String,
        /// The new lock.
        to: String,
        /// The flavor of a reference that names none.
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// List every path new, gone or changed, and what changed.
        #[arg(long)]
        files: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write a stored lock and every byte a machine without its packages needs (the
    /// package archives, the blobs) as one bundle: an OCI image layout in a tar file.
    #[command(
        after_help = "REF is a lock reference as `appliance diff` takes it (GROUP, GROUP=VERSION, \
GROUP=VERSION-REVISION, each with an optional [FLAVOR]). Archives come from the pool folders, else \
`apt-get download` (dpkg locks only), each checked against the lock.\n\n\
Example:\n  appliance export web=1.0-2 --flavor openvz -o web.bundle\n  appliance import web.bundle"
    )]
    Export {
        /// The lock.
        reference: String,
        /// The bundle file to write.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// The flavor of a reference that names none.
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// Another folder of archives to take packages from (after store/pool and
        /// /var/cache/apt/archives).
        #[arg(long, value_name = "DIR")]
        pool: Vec<PathBuf>,
        /// Replace FILE even when appliance did not make it.
        #[arg(long)]
        force: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check a bundle whole and store its lock, blobs and package archives; nothing is
    /// stored unless every member is what the lock needs.
    #[command(after_help = "Example:\n  appliance import web.bundle")]
    Import {
        /// The bundle file.
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write a stored lock's software bill of materials: SPDX 2.3 or CycloneDX 1.6 JSON,
    /// every package with its package URL and its license where its copyright file or
    /// header says.
    #[command(
        after_help = "REF is a reference as `appliance diff` takes it: GROUP=VERSION-REVISION[FLAVOR] \
as `appliance list` prints it, or shorter. The document goes to standard output (it is the JSON \
output), or with -o to FILE, written beside it and renamed into place.\n\n\
Example:\n  appliance sbom web --flavor openvz\n  appliance sbom 'web=1.0-3[openvz]' --format cyclonedx -o web.cdx.json"
    )]
    Sbom {
        /// The lock.
        reference: String,
        /// The flavor of a reference that names none.
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// The standard: spdx (2.3) or cyclonedx (1.6).
        #[arg(long, value_name = "spdx|cyclonedx", default_value = "spdx")]
        format: sbom::Format,
        /// Write to FILE instead of standard output.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace FILE even when appliance did not make it; never the workspace, the
        /// store, the repository or the sysroot.
        #[arg(long)]
        force: bool,
        /// Another folder of package archives to read license files from.
        #[arg(long, value_name = "DIR")]
        pool: Vec<PathBuf>,
    },
    /// Remove old revisions, keeping the newest N of each group and flavor, then every
    /// blob, pool archive, unpacked file and cached image no kept revision uses; print
    /// what went.
    #[command(
        after_help = "The newest revision of a group and flavor is the one materialise takes without \
--version (the highest version, then its latest revision); it always stays. The default keeps one \
more, to go back to or diff against.\n\n\
Example:\n  appliance gc --dry-run\n  appliance gc --keep 1"
    )]
    Gc {
        /// How many revisions of each group and flavor to keep, newest first (at least 1).
        #[arg(long, value_name = "N", default_value_t = 2,
              value_parser = clap::value_parser!(u32).range(1..))]
        keep: u32,
        /// Print what would be removed, removing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove one revision, then every blob, pool archive, unpacked file and cached image
    /// no remaining revision uses.
    #[command(
        after_help = "REF names one revision exactly: GROUP=VERSION-REVISION, with [FLAVOR] or --flavor \
when the group was compiled for several. A reference that could mean several revisions (`web`, \
`web=1.0`) is refused with the revisions it could mean.\n\n\
Example:\n  appliance rm web=1.0-1 --flavor openvz\n  appliance rm 'web=1.0-1[kvm]'"
    )]
    Rm {
        /// The revision.
        #[arg(value_name = "REF")]
        reference: String,
        /// The flavor of a reference that names none.
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Push a stored lock to an OCI registry as the artifact a bundle holds: only the
    /// blobs the registry lacks are sent, then the manifest, then the tag.
    #[command(
        after_help = "REF is a lock reference as `appliance export` takes it. TARGET is \
REGISTRY/REPOSITORY[:TAG]; without a tag, GROUP-VERSION-FLAVOR (e.g. web-1.0-openvz-x86_64). \
Credentials: --username with the password on standard input, else the docker config.json \
($DOCKER_CONFIG or ~/.docker). TLS unless --insecure.\n\n\
Example:\n  appliance push web=1.0-2 registry.example.com/team/web\n  \
appliance push web registry.example.com/team/web:stable --attach application/spdx+json=web.spdx.json"
    )]
    Push {
        /// The lock.
        reference: String,
        /// REGISTRY/REPOSITORY[:TAG].
        target: String,
        /// The flavor of a reference that names none.
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// Another folder of archives to take packages from (after store/pool and
        /// /var/cache/apt/archives).
        #[arg(long, value_name = "DIR")]
        pool: Vec<PathBuf>,
        /// Attach FILE to the pushed lock as an OCI referrer of artifact and media type
        /// TYPE (repeatable).
        #[arg(long, value_name = "TYPE=FILE")]
        attach: Vec<String>,
        /// Attach no SBOM: by default the lock's SPDX 2.3 SBOM is attached as a referrer.
        #[arg(long)]
        no_sbom: bool,
        #[command(flatten)]
        remote: Remote,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Pull a lock from an OCI registry and store it as `import` stores a bundle: every
    /// layer is checked against its digest as it streams, then the whole against the lock.
    #[command(
        after_help = "SOURCE is REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST.\n\n\
Example:\n  appliance pull registry.example.com/team/web:web-1.0-openvz-x86_64"
    )]
    Pull {
        /// REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST].
        source: String,
        #[command(flatten)]
        remote: Remote,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show a stored lock: its packages, and with --files its files.
    #[command(
        after_help = "Example:\n  appliance show\n  appliance show base --flavor openvz --files"
    )]
    Show {
        /// The group (may be left out when the repository holds one group).
        group: Option<String>,
        /// The flavor (may be left out when the group was compiled for one).
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// The lock version (`1.0` or `1.0-2`); default the newest.
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// List every file too.
        #[arg(long)]
        files: bool,
        /// Print the whole lock as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the workspace's flavors with their canonical strings.
    #[command(after_help = "Example:\n  appliance flavors")]
    Flavors {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Explain why a package is in a lock: every chain of dependencies back to a group
    /// that names a package, or to the essential packages.
    #[command(
        after_help = "Chains are printed shortest first, at most 20; each ends at the first package a group \
names or that is essential.\n\n\
Example:\n  appliance why libc6\n  appliance why libc6 base --flavor openvz --json"
    )]
    Why {
        /// The package (`NAME` or `NAME:ARCH`).
        package: String,
        /// The group (may be left out when the repository holds one group).
        #[arg(conflicts_with = "group_option")]
        group: Option<String>,
        /// The group, as earlier versions took it.
        #[arg(long = "group", value_name = "G", hide = true)]
        group_option: Option<String>,
        /// The flavor (may be left out when the group was compiled for one).
        #[arg(long, value_name = "F")]
        flavor: Option<String>,
        /// The lock version; default the newest.
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Print the chains as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script for appliance on standard output.
    #[command(
        after_help = "Example:\n  appliance completions bash > /etc/bash_completion.d/appliance\n  \
appliance completions zsh > /usr/local/share/zsh/site-functions/_appliance\n  \
appliance completions fish > ~/.config/fish/completions/appliance.fish"
    )]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: appliance::manual::Shell,
    },
    /// Write appliance's man pages into DIR: appliance.1 and appliance-COMMAND.1 for
    /// each command; print their paths.
    #[command(
        after_help = "Example:\n  appliance man -o /usr/local/share/man/man1\n  man appliance-boot"
    )]
    Man {
        /// The folder to write the pages in (made if missing).
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: PathBuf,
    },
    /// Stage, configure and capture a compile's tree as root of a user namespace: what
    /// `compile` runs for a user other than root. Not for people.
    #[command(hide = true)]
    ConfigureJob {
        /// The job file compile wrote.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // Made only by the commands that work in a workspace.
    let verbosity = match (cli.verbose, cli.quiet) {
        (true, _) => Verbosity::Verbose,
        (_, true) => Verbosity::Quiet,
        _ => Verbosity::Normal,
    };
    let ctx = || {
        Context::new(
            cli.workspace.as_deref(),
            cli.repo.as_deref(),
            &cli.sysroot,
            Reporter::new(verbosity),
        )
    };
    let result = run(&ctx, cli.command, &mut out);
    let _ = out.flush();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) if err.is_closed_stdout() => ExitCode::SUCCESS,
        Err(err) => {
            commands::report(&err);
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; returns the process's exit code (qemu's for `boot`, else 0).
fn run(
    ctx: &dyn Fn() -> Result<Context, appliance::Error>,
    command: Command,
    out: &mut dyn Write,
) -> Result<i32, appliance::Error> {
    let done = |result: Result<(), appliance::Error>| result.map(|()| 0);
    match command {
        Command::Compile {
            groups,
            flavor,
            pool,
            backend,
            offline,
            prefer,
            json,
        } => done(commands::compile(
            &ctx()?,
            &CompileOptions {
                groups,
                flavors: flavor,
                pools: pool,
                backend,
                offline,
                prefer,
                json,
            },
            out,
        )),
        Command::Materialise {
            group,
            flavor,
            format,
            disk,
            tag,
            output,
            version,
            if_newer,
            lock,
            force,
            pool,
        } => done(commands::materialise(
            &ctx()?,
            &MaterialiseOptions {
                lookup: Lookup {
                    group,
                    flavor,
                    version,
                },
                format,
                disk,
                tag,
                output,
                if_newer,
                lock_file: lock,
                force,
                pools: pool,
            },
            out,
        )),
        Command::Verify {
            group,
            flavor,
            version,
            pool,
            json,
        } => done(commands::verify(
            &ctx()?,
            &Lookup {
                group,
                flavor,
                version,
            },
            &pool,
            json,
            out,
        )),
        Command::List { json } => done(commands::list(&ctx()?, json, out)),
        Command::Log {
            group,
            flavor,
            json,
        } => done(commands::log(
            &ctx()?,
            &LogOptions {
                group,
                flavor,
                json,
            },
            out,
        )),
        Command::Diff {
            from,
            to,
            flavor,
            files,
            json,
        } => done(commands::diff(
            &ctx()?,
            &DiffOptions {
                from,
                to,
                flavor,
                files,
                json,
            },
            out,
        )),
        Command::Sbom {
            reference,
            flavor,
            format,
            output,
            force,
            pool,
        } => done(commands::sbom(
            &ctx()?,
            &SbomOptions {
                reference,
                flavor,
                format,
                output,
                force,
                pools: pool,
            },
            out,
        )),
        Command::Gc {
            keep,
            dry_run,
            json,
        } => done(commands::gc(
            &ctx()?,
            &GcOptions {
                keep: keep as usize,
                dry_run,
                json,
            },
            out,
        )),
        Command::Rm {
            reference,
            flavor,
            json,
        } => done(commands::rm(
            &ctx()?,
            &RmOptions {
                reference,
                flavor,
                json,
            },
            out,
        )),
        Command::Push {
            reference,
            target,
            flavor,
            pool,
            attach,
            no_sbom,
            remote,
            json,
        } => done(commands::push(
            &ctx()?,
            &PushOptions {
                reference,
                flavor,
                target,
                pools: pool,
                attach,
                no_sbom,
                remote: remote.into(),
                json,
            },
            out,
        )),
        Command::Pull {
            source,
            remote,
            json,
        } => done(commands::pull(&ctx()?, &source, &remote.into(), json, out)),
        Command::Show {
            group,
            flavor,
            version,
            files,
            json,
        } => done(commands::show(
            &ctx()?,
            &ShowOptions {
                lookup: Lookup {
                    group,
                    flavor,
                    version,
                },
                files,
                json,
            },
            out,
        )),
        Command::Export {
            reference,
            output,
            flavor,
            pool,
            force,
            json,
        } => done(commands::export(
            &ctx()?,
            &ExportOptions {
                reference,
                flavor,
                output,
                pools: pool,
                force,
                json,
            },
            out,
        )),
        Command::Import { file, json } => done(commands::import(&ctx()?, &file, json, out)),
        Command::Flavors { json } => done(commands::flavors(&ctx()?, json, out)),
        Command::Boot {
            group,
            flavor,
            version,
            disk,
            accel,
            memory,
            forward,
            args,
        } => commands::boot(
            &ctx()?,
            &BootOptions {
                lookup: Lookup {
                    group,
                    flavor,
                    version,
                },
                disk,
                accel,
                memory_mb: memory,
                args,
                forwards: forward,
            },
            out,
        ),
        Command::Why {
            package,
            group,
            group_option,
            flavor,
            version,
            json,
        } => done(commands::why(
            &ctx()?,
            &package,
            &Lookup {
                group: group.or(group_option),
                flavor,
                version,
            },
            json,
            out,
        )),
        Command::Completions { shell } => {
            done(appliance::manual::completions(Cli::command(), shell, out))
        }
        Command::Man { output } => done(appliance::manual::man_pages(Cli::command(), &output, out)),
        Command::ConfigureJob { file } => {
            done(appliance::compile::serve_configure_job(&file, out).map_err(Into::into))
        }
    }
}
