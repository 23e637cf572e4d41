//! The `appliance` command line: parses arguments and hands them to the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use appliance::commands::{
    self, BootOptions, CompileOptions, Context, Lookup, MaterialiseOptions, ShowOptions,
};
use appliance::resolve::Prefer;
use appliance::source::backend::Backend;
use clap::{Parser, Subcommand};

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
    #[command(subcommand)]
    command: Command,
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
        /// Name every locked package older than apt's lists' candidate, not the first few.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Rehydrate a stored lock into a chroot, tarball, OpenVZ template, image or OCI layout.
    #[command(
        after_help = "Example:\n  appliance materialise base --flavor openvz --format chroot -o /tmp/base\n  appliance materialise base --flavor openvz -o base.tar.zst"
    )]
    Materialise {
        /// The group (may be left out when the repository holds one group).
        group: Option<String>,
        /// The flavor to materialise.
        #[arg(long, value_name = "F")]
        flavor: String,
        /// Output format: chroot, tar, openvz, image or oci (default: tar for a tar
        /// extension, else the flavor's format, else chroot).
        #[arg(long, value_name = "FMT")]
        format: Option<String>,
        /// An image's root disk: raw, qcow2 or vmdk (default raw).
        #[arg(long, value_name = "KIND")]
        disk: Option<String>,
        /// Output path (default: `GROUP-FLAVOR` in the current folder).
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
What the guest writes to its disk is discarded: every boot starts from the lock. \
Its NIC is on qemu's user network (an address by DHCP, NAT to the host's network); --forward HOST:GUEST \
makes the guest's TCP port GUEST reachable at 127.0.0.1:HOST.\n\n\
Example:\n  appliance boot minimal --flavor kvm\n  appliance boot minimal --flavor kvm -- /bin/bash -c 'uname -a'\n  appliance boot web --flavor kvm --forward 8080:80 --forward 2222:22"
    )]
    Boot {
        /// The group (may be left out when the repository holds one group).
        group: Option<String>,
        /// The flavor to boot (a kernel flavor such as kvm).
        #[arg(long, value_name = "F")]
        flavor: String,
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
        /// The flavor.
        #[arg(long, value_name = "F")]
        flavor: String,
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
    /// Show a stored lock: its packages, and with --files its files.
    #[command(after_help = "Example:\n  appliance show base --flavor openvz --files")]
    Show {
        /// The group.
        group: String,
        /// The flavor.
        #[arg(long, value_name = "F")]
        flavor: String,
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
    /// Explain why a package is in a lock: the chain back to the group that named it.
    #[command(after_help = "Example:\n  appliance why libc6 --group base --flavor openvz")]
    Why {
        /// The package.
        package: String,
        /// The group.
        #[arg(long, value_name = "G")]
        group: String,
        /// The flavor.
        #[arg(long, value_name = "F")]
        flavor: String,
        /// The lock version; default the newest.
        #[arg(long, value_name = "V")]
        version: Option<String>,
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
    let ctx = || Context::new(cli.workspace.as_deref(), cli.repo.as_deref(), &cli.sysroot);
    let result = run(&ctx, cli.command, &mut out);
    let _ = out.flush();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
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
            verbose,
        } => done(commands::compile(
            &ctx()?,
            &CompileOptions {
                groups,
                flavors: flavor,
                pools: pool,
                backend,
                offline,
                prefer,
                verbose,
            },
            out,
        )),
        Command::Materialise {
            group,
            flavor,
            format,
            disk,
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
                    group: Some(group),
                    flavor,
                    version,
                },
                files,
                json,
            },
            out,
        )),
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
            flavor,
            version,
        } => done(commands::why(
            &ctx()?,
            &package,
            &Lookup {
                group: Some(group),
                flavor,
                version,
            },
            out,
        )),
        Command::ConfigureJob { file } => {
            appliance::compile::serve_configure_job(&file, out).map(|()| 0)
        }
    }
}
