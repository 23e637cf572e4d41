//! How long a no-op `materialise --if-newer` takes on a real lock: a benchmark, not a
//! test (`cargo bench --bench if_newer`; `-- base web --runs=N` picks the groups and
//! the number of timed runs).
//!
//! For each group it compiles `groups/GROUP.kdl` of this repository from this host
//! (web fetches what the host lacks, so it needs apt's lists and the archive; a group
//! that does not compile is reported and skipped) into a temporary workspace for the
//! openvz flavor, materialises it once as a chroot and as a tarball, then times N
//! no-op runs of the real binary (a whole process: start, repository lookup, stamp
//! check) and of the library calls, and prints median and p95 against supermin.
//! Supermin's own `--if-newer` no-op took about 5 ms on this kind of machine; when
//! `supermin` is installed it is measured in the same run, on base's packages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use appliance::materialise::{self, Format, Options, Sources};
use appliance::repo::Repository;

/// Supermin 5.2's no-op `--build --if-newer`, as measured before this benchmark
/// existed: the reference when supermin is not installed.
const SUPERMIN_REFERENCE: Duration = Duration::from_millis(5);

const FLAVOR: &str = "openvz";

fn main() {
    let mut groups = Vec::new();
    let mut runs = 200;
    // cargo bench passes `--bench`; other flags are cargo's business too.
    for arg in std::env::args().skip(1) {
        if let Some(n) = arg.strip_prefix("--runs=") {
            runs = n.parse().expect("--runs=N takes a number");
        } else if !arg.starts_with('-') {
            groups.push(arg);
        }
    }
    if groups.is_empty() {
        groups = vec!["base".to_string(), "web".to_string()];
    }
    let dir = tempfile::tempdir().expect("a temporary workspace");
    let ws = dir.path();
    let repo_root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in ["groups", "flavors"] {
        copy_dir(&repo_root.join(folder), &ws.join(folder));
    }
    // Timings on a shared machine are only as quiet as the machine.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average: {}", load.trim());
    }
    let supermin = measure_supermin(ws, runs);
    let reference = supermin.as_ref().map_or(SUPERMIN_REFERENCE, |t| t.median);
    match &supermin {
        Some(t) => println!("supermin --build --if-newer -f chroot (base's packages): {t}"),
        None => println!(
            "supermin is not installed: the reference is its measured ~{} ms",
            SUPERMIN_REFERENCE.as_millis()
        ),
    }
    for group in &groups {
        bench_group(ws, group, runs, reference);
    }
}

/// Compiles, materialises and times one group.
fn bench_group(ws: &Path, group: &str, runs: usize, reference: Duration) {
    let kdl = format!("groups/{group}.kdl");
    let compiled = appliance(ws, &["compile", &kdl, "--flavor", FLAVOR]);
    if !compiled.status.success() {
        println!(
            "{group}: skipped, it does not compile here: {}",
            String::from_utf8_lossy(&compiled.stderr).trim()
        );
        return;
    }
    let repo = Repository::open_read_only(&ws.join("store/repo.sqlite")).expect("the repository");
    let canonical = appliance::workspace::Workspace::discover(ws, Some(ws))
        .and_then(|w| w.flavor(FLAVOR))
        .expect("the openvz flavor")
        .canonical();
    let stored = repo
        .load(group, &canonical, None)
        .expect("the compiled lock");
    let regular = (stored.lock.files.iter())
        .filter(|f| f.kind == appliance::lock::FileKind::File)
        .count();
    println!(
        "\n{}: {} entries, {regular} regular files",
        stored.lock.address(stored.revision),
        stored.lock.files.len()
    );
    let sources = Sources {
        sysroot: PathBuf::from("/"),
        pool: vec![ws.join("store/pool")],
        blobs: Some(ws.join("store/blobs")),
        unpacked: Some(ws.join("store/unpacked")),
    };
    for (cli_format, name, format) in [
        ("chroot", format!("{group}-root"), Format::Chroot),
        (
            "tar",
            format!("{group}.tar"),
            Format::Tar(materialise::Compression::None),
        ),
    ] {
        let out = ws.join(&name);
        let out_arg = out.to_str().expect("a UTF-8 temporary path");
        let args = [
            "materialise",
            group,
            "--flavor",
            FLAVOR,
            "--format",
            cli_format,
            "-o",
            out_arg,
            "--if-newer",
        ];
        let first = appliance(ws, &args);
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let stamp = ws.join(format!(".{name}.appliance-stamp"));
        let stamp_size = std::fs::metadata(&stamp).expect("the stamp").len();
        println!("  {cli_format}: stamp {stamp_size} bytes");

        let binary = time(runs, Cpu::Children, || {
            let run = appliance(ws, &args);
            let stdout = String::from_utf8_lossy(&run.stdout);
            assert!(stdout.contains("up to date"), "not a no-op: {stdout}");
        });
        println!(
            "    binary   materialise --if-newer      {binary}  ({:.2}x supermin)",
            binary.ratio(reference)
        );
        let check = time(runs * 5, Cpu::Own, || {
            assert!(materialise::is_current(
                &stored.lock_id,
                &sources,
                &format,
                &out,
                0
            ));
        });
        println!(
            "    library  materialise::is_current     {check}  ({:.2}x supermin)",
            check.ratio(reference)
        );
        let opts = Options {
            if_newer: true,
            ..Options::default()
        };
        let call = time(runs * 5, Cpu::Own, || {
            let outcome = materialise::materialise(
                &stored.lock,
                &stored.lock_id,
                &sources,
                &format,
                &out,
                &opts,
            )
            .expect("a no-op");
            assert!(!outcome.built);
        });
        println!(
            "    library  materialise(if_newer)       {call}  ({:.2}x supermin)",
            call.ratio(reference)
        );
    }
}

/// Runs `appliance` in `ws`, as the CLI would be run there.
fn appliance(ws: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_appliance"))
        .args(args)
        .current_dir(ws)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run appliance")
}

/// Prepares a supermin appliance of base's packages, builds it once and times its
/// no-op rebuilds; `None` when supermin is not installed or fails.
fn measure_supermin(ws: &Path, runs: usize) -> Option<Timing> {
    let packages = [
        "base-files",
        "base-passwd",
        "bash",
        "coreutils",
        "dpkg",
        "libc-bin",
    ];
    let prepared = ws.join("supermin.d");
    let appliance = ws.join("supermin-appliance");
    let supermin = |args: &[&std::ffi::OsStr]| {
        Command::new("supermin")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let prepare: Vec<&std::ffi::OsStr> = ["--prepare", "--use-installed"]
        .iter()
        .chain(packages.iter())
        .map(std::ffi::OsStr::new)
        .chain(["-o".as_ref(), prepared.as_os_str()])
        .collect();
    let build: Vec<&std::ffi::OsStr> = vec![
        "--build".as_ref(),
        "-f".as_ref(),
        "chroot".as_ref(),
        "--if-newer".as_ref(),
        "-o".as_ref(),
        appliance.as_os_str(),
        prepared.as_os_str(),
    ];
    if !(supermin(&prepare) && supermin(&build)) {
        return None;
    }
    Some(time(runs, Cpu::Children, || assert!(supermin(&build))))
}

/// Median and 95th percentile of some runs, and the CPU time they took on average:
/// on a busy machine wall times grow with the queue, CPU times much less.
struct Timing {
    median: Duration,
    p95: Duration,
    cpu: Duration,
    runs: usize,
}

/// Whose CPU time a timing counts: this process's threads (library calls) or its
/// waited-for children (the binary, supermin).
#[derive(Clone, Copy)]
enum Cpu {
    Own,
    Children,
}

impl Cpu {
    /// User plus system time so far.
    fn used(self) -> Duration {
        let who = match self {
            Cpu::Own => libc::RUSAGE_SELF,
            Cpu::Children => libc::RUSAGE_CHILDREN,
        };
        // SAFETY: getrusage fills the struct it is given and nothing else.
        let usage = unsafe {
            let mut usage = std::mem::zeroed::<libc::rusage>();
            libc::getrusage(who, &mut usage);
            usage
        };
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        time(usage.ru_utime) + time(usage.ru_stime)
    }
}

impl Timing {
    fn ratio(&self, reference: Duration) -> f64 {
        self.median.as_secs_f64() / reference.as_secs_f64()
    }
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "median {:.3} ms  p95 {:.3} ms  cpu {:.3} ms  ({} runs)",
            ms(self.median),
            ms(self.p95),
            ms(self.cpu),
            self.runs
        )
    }
}

/// Times `runs` calls of `work`, after one untimed call that warms the caches.
fn time(runs: usize, cpu: Cpu, mut work: impl FnMut()) -> Timing {
    work();
    let cpu_before = cpu.used();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .collect();
    let cpu = (cpu.used() - cpu_before) / runs as u32;
    times.sort();
    Timing {
        median: times[runs / 2],
        p95: times[(runs * 95).div_ceil(100) - 1],
        cpu,
        runs,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a workspace folder");
    for entry in std::fs::read_dir(from).expect("read the repository's folder") {
        let entry = entry.expect("a folder entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a file");
    }
}
