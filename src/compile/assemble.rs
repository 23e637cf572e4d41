//! The assemble stage: the packages' configured tree, the machine files no install
//! makes, the group's own statements (hostfiles, overlays, `file`) and, for a tree with
//! apt, the host's apt sources, laid over each other into one lock, trimmed to the
//! recipe's `paths`.

use std::collections::HashMap;

use super::Settings;
use super::apt_sources;
use super::error::{CompileError, OwnerKind, Result};
use super::extra;
use super::gather::Tree;
use super::store::Spool;
use crate::excerpt::{excerpt, first_few};
use crate::lang::diag::{nearest, suggest};
use crate::lang::{FileStatement, RunAs, Site};
use crate::lock::extra::{ExtraError, Layers, Statement};
use crate::lock::{
    self, Documentation, Exclusion, FileEntry, FileKind, Lock, LockedPackage, Parts, TrimError,
};
use crate::resolve::RESOLVER_VERSION;
use crate::source::accounts::Accounts;
use crate::system;
use crate::workspace::Recipe;

/// The packages' tree as the configure stage left it (or unpacked, without dpkg).
pub struct Configured {
    /// The packages' entries.
    pub entries: Vec<FileEntry>,
    /// The entries no package owns that the tree holds (the dpkg database and `/dev` of
    /// a tree that was not configured; a configured tree's are among `entries`).
    pub system: Vec<FileEntry>,
    /// The bytes of the entries no package supplies, but those of `spooled`.
    pub blobs: Vec<Vec<u8>>,
    /// The digests of the files configuration made or changed, whose bytes are in the
    /// compile's [`Spool`].
    pub spooled: Vec<String>,
    /// Those of `spooled` that are text holding a private key.
    pub script_keys: Vec<String>,
    /// The tree's accounts, which owners in the group's statements name.
    pub accounts: Accounts,
    /// What the user should know about the configuration.
    pub warnings: Vec<String>,
    /// How long the maintainer scripts ran, when they did.
    pub took: Option<std::time::Duration>,
}

/// The assembled lock and the bytes its entries point at that compile made.
pub struct Assembled {
    /// The lock.
    pub lock: Lock,
    /// Contents for the blob store (possibly more than the lock uses).
    pub blobs: Vec<Vec<u8>>,
    /// Digests of contents in the compile's [`Spool`] for the blob store (possibly more
    /// than the lock uses).
    pub spooled: Vec<String>,
    /// What the user should know about the lock: private keys scripts made in it.
    pub warnings: Vec<String>,
}

/// Lays the machine files and the group's statements over `configured` and assembles
/// the lock; `tree` gives the packages' bytes when `paths` trims the lock, and `spool`
/// the bytes configuration made.
pub fn assemble(
    settings: &Settings,
    recipe: &Recipe,
    packages: Vec<LockedPackage>,
    configured: Configured,
    tree: &Tree,
    spool: &Spool,
) -> Result<Assembled> {
    let Configured {
        entries: package_entries,
        system: mut group_files,
        mut blobs,
        spooled,
        script_keys,
        accounts,
        warnings: _,
        took: _,
    } = configured;
    if let Some(run_as) = &recipe.run_as {
        check_run_as(&accounts, run_as)?;
    }
    let present = |path: &str| package_entries.iter().any(|e| e.path == path);
    let machine_files = system::machine_files(machine(recipe), present);
    group_files.extend(machine_files.entries);
    blobs.extend(machine_files.blobs);
    // Where the group's statements begin among `group_files`.
    let statements = group_files.len();
    // Hostfiles, then overlays, then `file` statements: the most specific statement wins
    // at a path (the recipe keeps each kind in its own list, so this is the order).
    // What the statements are laid over: the packages' entries that stay (an excluded
    // one cannot be cut off) and the generated system files.
    let excludes = exclusion(recipe)?;
    let mut layers = Layers::new(
        (package_entries.iter())
            .filter(|e| !excludes.drops(e))
            .chain(&group_files),
    );
    let hostfiles = (recipe.hostfiles.iter()).flat_map(|h| {
        (h.globs.iter()).map(|glob| (Statement::Hostfile(glob.clone()), h.secret, &h.site))
    });
    let overlays =
        (recipe.overlays.iter()).map(|o| (Statement::Overlay(o.path.clone()), o.secret, &o.site));
    for (statement, secret, site) in hostfiles.chain(overlays) {
        let made = match &statement {
            Statement::Hostfile(glob) => extra::hostfiles(
                &settings.sysroot,
                std::slice::from_ref(glob),
                &accounts,
                secret,
            ),
            Statement::Overlay(path) => extra::overlay(path, &accounts, secret),
        };
        let made = made
            .and_then(|made| layers.add(&statement, &made).map(|()| made))
            .map_err(|err| at_statement(err, site))?;
        group_files.extend(made.entries);
        blobs.extend(made.blobs);
    }
    if packages.iter().any(|p| p.name == "apt") {
        let taken = |path: &str| {
            excludes.drops_path(path)
                || present(path)
                || group_files.iter().any(|e| e.path == path)
                || recipe.files.iter().any(|f| f.path == path)
        };
        let made = apt_sources::host_sources(&settings.sysroot, &accounts, &mut layers, taken)?;
        group_files.extend(made.entries);
        blobs.extend(made.blobs);
    }
    for file in &recipe.files {
        group_files.push(file_entry(settings, &accounts, file)?);
        blobs.push(file.content.clone());
    }
    let tree_hosts = || {
        let (laid, given) = group_files.split_at(statements);
        if given.iter().any(|e| e.path == HOSTS_PATH) {
            return None;
        }
        (laid.iter().rfind(|e| e.path == HOSTS_PATH)).or_else(|| {
            (package_entries.iter()).find(|e| e.path == HOSTS_PATH && !excludes.drops(e))
        })
    };
    let hostname = (recipe.files.iter()).rfind(|f| f.path == "/etc/hostname");
    let named = hostname.and_then(|h| hosts_naming_the_machine(&h.content, tree_hosts()));
    if let Some((entry, content)) = named {
        group_files.push(entry);
        blobs.push(content);
    }
    let mut lock = lock::assemble(parts(
        recipe,
        settings.backend,
        packages,
        package_entries,
        group_files,
    )?)?;
    if !recipe.paths.is_empty() {
        // Bytes of entries no package owns are the blobs compile made for them.
        let made: HashMap<String, &[u8]> = (blobs.iter())
            .map(|b| (blake3::hash(b).to_hex().to_string(), b.as_slice()))
            .collect();
        let content = |entry: &FileEntry| match (&entry.package, entry.digest.as_deref()) {
            (_, Some(digest)) if made.contains_key(digest) => Ok(made[digest].to_vec()),
            (_, Some(digest)) if spooled.binary_search_by(|s| s.as_str().cmp(digest)).is_ok() => {
                spool.read(digest)
            }
            (Some(_), _) => tree.bytes(&settings.sysroot, entry),
            (None, Some(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no bytes were made for it",
            )),
            (None, None) => Ok(Vec::new()),
        };
        let globs: Vec<String> = recipe.paths.iter().map(|p| p.glob.clone()).collect();
        lock::trim(&mut lock, &globs, content).map_err(|err| at_glob(err, recipe))?;
        lock.normalise();
    }
    let warnings = shared_keys(recipe, &lock, &script_keys)
        .into_iter()
        .collect();
    Ok(Assembled {
        lock,
        blobs,
        spooled,
        warnings,
    })
}

/// The warning for the private keys maintainer scripts made that `lock` still holds
/// (`script_keys`, by digest): a key capture knows is made on first boot instead (see
/// [`system::SECRETS`]), and this names the rest, which every machine made from the
/// lock would share. A key the group excludes, or replaces with its own statement, is
/// not one.
fn shared_keys(recipe: &Recipe, lock: &Lock, script_keys: &[String]) -> Option<String> {
    let paths: Vec<&str> = (lock.files.iter())
        .filter(|e| e.package.is_none())
        .filter(|e| e.digest.as_ref().is_some_and(|d| script_keys.contains(d)))
        .map(|e| e.path.as_str())
        .collect();
    let (holds, it) = match paths.len() {
        0 => return None,
        1 => ("holds", "it"),
        _ => ("each hold", "each"),
    };
    Some(format!(
        "group {} for flavor {}: {} {holds} a private key a maintainer script made while \
         configuring, which every machine made from this lock would share: exclude {it} and \
         make it on first boot, or give the machine's own with a `file` statement",
        recipe.group,
        recipe.flavor.canonical(),
        // Scripts may make any number of keys, and name them: the first few are named,
        // each quoted on one line.
        first_few(paths.iter().map(|p| excerpt(p)), 8),
    ))
}

/// The kind of machine `recipe`'s flavor makes: a virtual one for a kernel flavor.
pub fn machine(recipe: &Recipe) -> system::Machine {
    if recipe.flavor.flag("kernel") {
        system::Machine::Virtual
    } else {
        system::Machine::Container
    }
}

/// The machine's name and address table.
const HOSTS_PATH: &str = "/etc/hosts";

/// `/etc/hosts` naming the machine whose `/etc/hostname` (a group's `file`) holds
/// `hostname`, with its bytes, when `hosts` (the tree's before the group's statements,
/// none if they give their own) is the stock file: a table a script or the group wrote
/// stays as it is.
fn hosts_naming_the_machine(
    hostname: &[u8],
    hosts: Option<&FileEntry>,
) -> Option<(FileEntry, Vec<u8>)> {
    let hosts = hosts.filter(|e| e.kind == FileKind::File)?;
    let content = system::hosts_naming(hosts.digest.as_deref()?, hostname)?;
    let entry = FileEntry {
        size: content.len() as u64,
        digest: Some(blake3::hash(&content).to_hex().to_string()),
        ..hosts.clone()
    };
    Some((entry, content))
}

/// The entry of a `file` statement, owned by the tree's accounts of its names.
fn file_entry(settings: &Settings, accounts: &Accounts, file: &FileStatement) -> Result<FileEntry> {
    let unknown = |account: OwnerKind, name: &str| CompileError::UnknownAccount {
        location: file.location.to_string(),
        account,
        name: name.to_string(),
        path: file.path.clone(),
        sysroot: settings.sysroot.clone(),
    };
    let uid = (accounts.uid_of(&file.user)).ok_or_else(|| unknown(OwnerKind::User, &file.user))?;
    let gid =
        (accounts.gid_of(&file.group)).ok_or_else(|| unknown(OwnerKind::Group, &file.group))?;
    Ok(FileEntry {
        kind: FileKind::File,
        mode: file.mode,
        uid,
        gid,
        user: file.user.clone(),
        group: file.group.clone(),
        size: file.content.len() as u64,
        digest: Some(blake3::hash(&file.content).to_hex().to_string()),
        ..FileEntry::directory(&file.path)
    })
}

/// Refuses a `run-as` naming a user or group the tree's accounts lack: no runtime could
/// find it in the image's `/etc/passwd` or `/etc/group`. Ids need no account.
fn check_run_as(accounts: &Accounts, run_as: &RunAs) -> Result<()> {
    let missing = if accounts.uid_of(&run_as.user).is_none() {
        let known = suggest(&run_as.user, accounts.user_names(), "users");
        Some(("user", &run_as.user, "etc/passwd", known))
    } else {
        (run_as.group.as_ref())
            .filter(|group| accounts.gid_of(group).is_none())
            .map(|group| {
                let known = suggest(group, accounts.group_names(), "groups");
                ("group", group, "etc/group", known)
            })
    };
    let Some((role, name, table, known)) = missing else {
        return Ok(());
    };
    Err(CompileError::from(run_as.site.invalid(
        format!(
            "`run-as` names {role} `{}`, which the tree's {table} lacks",
            excerpt(name)
        ),
        format!("no such {role}"),
        Some(format!("{known}; a `{role}` statement makes an account")),
    )))
}

/// A statement's error, pointing at the statement when the fix is there: a secret it
/// would copy without saying `secret=#true`, a glob that matches nothing.
fn at_statement(err: ExtraError, site: &Site) -> CompileError {
    match err {
        none @ ExtraError::NoMatch { .. } => CompileError::from(site.invalid(
            none.to_string(),
            "matches nothing",
            Some("a `hostfile` glob names files of the host (under --sysroot)".to_string()),
        )),
        secret @ ExtraError::Secret { .. } => CompileError::from(site.invalid(
            secret.to_string(),
            "copies a secret",
            Some(
                "if the appliance is meant to carry it, write `secret=#true` on this statement \
                 (the blob store keeps what it copies private)"
                    .to_string(),
            ),
        )),
        other => CompileError::from(other),
    }
}

/// A `paths` glob that matches nothing in the tree, as an error at the glob that names
/// what the tree has near what it names; any other trimming error as it is.
fn at_glob(err: TrimError, recipe: &Recipe) -> CompileError {
    let TrimError::NoMatch {
        index,
        glob,
        folder,
        missing,
        names,
    } = &err
    else {
        return err.into();
    };
    let Some(written) = recipe.paths.get(*index) else {
        return err.into();
    };
    let inside = |name: &str| format!("{}/{name}", folder.trim_end_matches('/'));
    let help = match missing {
        Some(name) => {
            let near: Vec<String> = (nearest(name, names.iter().map(String::as_str)).into_iter())
                .map(|n| format!("`{}`", inside(n)))
                .collect();
            let lacks = format!("the tree has no {}", excerpt(&inside(name)));
            if near.is_empty() {
                lacks
            } else {
                format!("did you mean {}? {lacks}", near.join(" or "))
            }
        }
        None => format!("nothing in {} matches it", excerpt(folder)),
    };
    CompileError::from(written.site.invalid(
        format!(
            "`paths` glob `{}` matches nothing in the tree for flavor {}",
            excerpt(glob),
            recipe.flavor.canonical()
        ),
        "matches nothing",
        Some(help),
    ))
}

/// What `recipe`'s `exclude` statements leave out.
fn exclusion(recipe: &Recipe) -> Result<Exclusion> {
    let excludes = &recipe.excludes;
    let marks = [
        (excludes.docs, Documentation::Doc),
        (excludes.licenses, Documentation::License),
    ];
    let marks = (marks.into_iter()).filter_map(|(asked, mark)| asked.then_some(mark));
    Ok(Exclusion::new(&excludes.globs, marks.collect())?)
}

/// The parts of `recipe`'s lock with these packages and entries: the staged tree's and
/// the final one's.
pub fn parts(
    recipe: &Recipe,
    backend: crate::lock::Backend,
    packages: Vec<LockedPackage>,
    package_entries: Vec<FileEntry>,
    group_files: Vec<FileEntry>,
) -> Result<Parts> {
    Ok(Parts {
        group: recipe.group.clone(),
        version: recipe.version.clone(),
        flavor: recipe.flavor.canonical(),
        inputs: lock::Inputs {
            group_files: recipe.inputs.clone(),
            resolver: RESOLVER_VERSION,
            backend,
        },
        cmd: recipe.cmd.clone(),
        container: recipe.container.clone(),
        modules: recipe.modules.clone(),
        packages,
        package_entries,
        excludes: exclusion(recipe)?,
        group_files,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::lang::{ContainerSetting, Known, Statement, parse_group_text};

    /// The `run-as` of a group holding only `run-as SPEC`.
    fn run_as(spec: &str) -> RunAs {
        let text = format!("group g version=\"1\" {{\n    run-as {spec}\n}}\n");
        let def = parse_group_text(Path::new("groups/g.kdl"), &text, &Known::default()).unwrap();
        match def.statements.into_iter().next() {
            Some(Statement::Container(ContainerSetting::RunAs(run_as))) => run_as,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_a_stock_hosts_table_gets_the_machine_s_name() {
        let stock = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n";
        let hosts = |content: &str| FileEntry {
            kind: FileKind::File,
            mode: 0o644,
            size: content.len() as u64,
            digest: Some(blake3::hash(content.as_bytes()).to_hex().to_string()),
            package: Some("netbase".to_string()),
            conffile: true,
            ..FileEntry::directory(HOSTS_PATH)
        };
        let (entry, content) = hosts_naming_the_machine(b"web\n", Some(&hosts(stock))).unwrap();
        let text = String::from_utf8(content).unwrap();
        assert!(text.contains("\n127.0.1.1\tweb\n"), "{text}");
        assert_eq!(entry.digest, hosts(&text).digest);
        assert_eq!(entry.size, text.len() as u64);
        assert_eq!(
            (entry.package.as_deref(), entry.conffile),
            (Some("netbase"), true)
        );
        // netbase's postinst's table, with its blank last line, is stock too.
        let netbase = format!("{stock}\n");
        let (_, content) = hosts_naming_the_machine(b"web\n", Some(&hosts(&netbase))).unwrap();
        assert!(
            String::from_utf8(content)
                .unwrap()
                .ends_with("allrouters\n\n")
        );
        // A table a script wrote, a link, no table (the group gave its own), and a name
        // that is no host name: nothing is written.
        let altered = hosts("127.0.0.1\tlocalhost\n10.0.0.1\tdb\n");
        assert!(hosts_naming_the_machine(b"web\n", Some(&altered)).is_none());
        let link = FileEntry {
            kind: FileKind::Symlink,
            ..hosts(stock)
        };
        assert!(hosts_naming_the_machine(b"web\n", Some(&link)).is_none());
        assert!(hosts_naming_the_machine(b"web\n", None).is_none());
        assert!(hosts_naming_the_machine(b"web server\n", Some(&hosts(stock))).is_none());
    }

    #[test]
    fn run_as_names_the_tree_s_accounts_or_ids() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        let passwd = "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n";
        std::fs::write(root.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nadm:x:4:\n").unwrap();
        let accounts = Accounts::read(root.path()).unwrap();
        for good in [
            "\"www-data\"",
            "\"www-data:adm\"",
            "\"1000:1000\"",
            "0",
            "\"root:4\"",
        ] {
            check_run_as(&accounts, &run_as(good)).unwrap();
        }
        let refused = |spec: &str| {
            check_run_as(&accounts, &run_as(spec))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused("\"www\""),
            "groups/g.kdl:2:12: `run-as` names user `www`, which the tree's etc/passwd lacks"
        );
        assert_eq!(
            refused("\"www-data:www-data\""),
            "groups/g.kdl:2:12: `run-as` names group `www-data`, which the tree's etc/group lacks"
        );
        let err = check_run_as(&accounts, &run_as("\"www-dat\"")).unwrap_err();
        let CompileError::Lang(lang) = &err else {
            panic!("{err:?}")
        };
        let help = miette::Diagnostic::help(lang.as_ref()).unwrap().to_string();
        assert!(help.starts_with("did you mean `www-data`?"), "{help}");
        assert!(
            help.ends_with("a `user` statement makes an account"),
            "{help}"
        );
    }
}
