//! Finding a workspace and turning its groups and flavors into recipes.
//!
//! A workspace is a folder holding `groups/` (one group per `NAME.kdl`), `flavors/`
//! (one flavor per `NAME.kdl`) and `store/` (the repository). A [`Recipe`] is a group
//! evaluated for one flavor: conditions decided, includes expanded in place.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::lang::diag::{SourceFile, suggest};
use crate::lang::flavor::{BUILTIN_FLAGS, parse_flavor};
use crate::lang::group::{Include, Known, parse_group};
pub use crate::lang::{
    Account, AccountKind, ContainerSetting, Exclude, FileStatement, Flavor, GroupDef, Hostfile,
    LangError, Location, Overlay, PathsGlob, Preseed, Removal, RunAs, Site, Statement, UnitChange,
};
use crate::lock::{Container, Reason};
use crate::resolve::Prefer;
use crate::source::Op;

/// A workspace folder (absolute and canonical).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    root: PathBuf,
}

/// A group evaluated for one flavor: what the resolver and the materialiser work from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The compiled group's name.
    pub group: String,
    /// Its version.
    pub version: String,
    /// Its summary.
    pub summary: Option<String>,
    /// The flavor the conditions were decided for.
    pub flavor: Flavor,
    /// `package` statements, in statement order with includes expanded in place;
    /// duplicates are kept as separate requests.
    pub packages: Vec<PackageRequest>,
    /// `remove` names, in order.
    pub removes: Vec<Removal>,
    /// What `exclude` statements leave out, globs in order.
    pub excludes: Exclude,
    /// `hostfile` statements, in order.
    pub hostfiles: Vec<Hostfile>,
    /// `paths` globs: when any, the tree is trimmed to them and what they need to run.
    pub paths: Vec<PathsGlob>,
    /// `overlay` statements (folders or tarballs, absolute), in order.
    pub overlays: Vec<Overlay>,
    /// `file` statements; a later statement for the same path replaces an earlier one.
    pub files: Vec<FileStatement>,
    /// Kernel modules, in first-mention order without repeats.
    pub modules: Vec<String>,
    /// The command of container outputs: the last `cmd` reached.
    pub cmd: Vec<String>,
    /// The rest of a container output's config, the container statements reached laid
    /// over each other in order (see [`ContainerSetting::apply`]).
    pub container: Container,
    /// The last `run-as` reached (the one `container.user` comes from), for compile to
    /// check its names against the tree's accounts.
    pub run_as: Option<RunAs>,
    /// Which version of each package name to take: the last `prefer` reached.
    pub prefer: Prefer,
    /// `user` and `group` statements, in order.
    pub accounts: Vec<Account>,
    /// `debconf` lines, in order.
    pub preseeds: Vec<Preseed>,
    /// `enable` and `disable` units, in order: of two for one unit, the later wins.
    pub units: Vec<UnitChange>,
    /// Every group file read: workspace-relative path and BLAKE3 hex of its bytes, sorted.
    pub inputs: Vec<(String, String)>,
}

/// One `package` statement reached for the flavor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRequest {
    /// Package name.
    pub name: String,
    /// Version constraint (`>= 1:9.2`).
    pub constraint: Option<(Op, String)>,
    /// The group naming it and the include chain that reached that group.
    pub reason: Reason,
    /// The statement, in whichever group file it is written.
    pub site: Site,
}

impl Workspace {
    /// Finds the workspace: `explicit` (`--workspace`, relative to `start`) when given,
    /// else the nearest folder at or above `start` holding `groups/` or `store/`.
    pub fn discover(start: &Path, explicit: Option<&Path>) -> Result<Workspace, LangError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LangError::Io { path, source }
        };
        if let Some(dir) = explicit {
            let dir = start.join(dir);
            let root = fs::canonicalize(&dir).map_err(io(&dir))?;
            if !root.is_dir() {
                return Err(LangError::NotAFolder { path: dir });
            }
            return Ok(Workspace { root });
        }
        let start = fs::canonicalize(start).map_err(io(start))?;
        start
            .ancestors()
            .find(|dir| dir.join("groups").is_dir() || dir.join("store").is_dir())
            .map(|root| Workspace {
                root: root.to_path_buf(),
            })
            .ok_or(LangError::NoWorkspace { start })
    }

    /// The workspace folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `groups/`: one group per `NAME.kdl`.
    pub fn groups_dir(&self) -> PathBuf {
        self.root.join("groups")
    }

    /// `flavors/`: one flavor per `NAME.kdl`.
    pub fn flavors_dir(&self) -> PathBuf {
        self.root.join("flavors")
    }

    /// `store/`: the repository, blobs and pool.
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// Every flavor file, parsed, sorted by name.
    pub fn flavors(&self) -> Result<Vec<Flavor>, LangError> {
        kdl_names(&self.flavors_dir())?
            .iter()
            .map(|name| self.load_flavor(name))
            .collect()
    }

    /// A flavor by file name (`xen`) or canonical string (`[kernel,xen is: x86_64]`).
    /// A canonical string takes the name and format of the first flavor file (by name)
    /// with the same canonical form; without one, it stands alone with no name.
    pub fn flavor(&self, spec: &str) -> Result<Flavor, LangError> {
        if spec.trim_start().starts_with('[') {
            let parsed = Flavor::parse_canonical(spec)?;
            let canonical = parsed.canonical();
            let flavors = self.flavors()?;
            let mut known: BTreeSet<&str> = BUILTIN_FLAGS.into_iter().collect();
            known.extend(
                flavors
                    .iter()
                    .flat_map(|f| f.flags.keys().map(String::as_str)),
            );
            if let Some(flag) = parsed.flags.keys().find(|f| !known.contains(f.as_str())) {
                return Err(LangError::UnknownFlag {
                    spec: spec.to_string(),
                    flag: flag.clone(),
                    help: suggest(flag, known.iter().copied(), "flags"),
                });
            }
            return Ok((flavors.into_iter())
                .find(|f| f.canonical() == canonical)
                .unwrap_or(parsed));
        }
        let names = kdl_names(&self.flavors_dir())?;
        if !names.contains(spec) {
            return Err(LangError::UnknownFlavor {
                spec: spec.to_string(),
                help: suggest(spec, names.iter().map(String::as_str), "flavors"),
            });
        }
        self.load_flavor(spec)
    }

    /// The file of a group: a name (`web` is `groups/web.kdl`), or a path to a `.kdl`
    /// file (anything ending in `.kdl` or holding a `/`, relative to the current folder).
    pub fn group_file(&self, spec: &str) -> Result<PathBuf, LangError> {
        if spec.ends_with(".kdl") || spec.contains('/') {
            let path = PathBuf::from(spec);
            return match fs::metadata(&path) {
                Ok(_) => Ok(path),
                Err(source) => Err(LangError::Io { path, source }),
            };
        }
        let names = kdl_names(&self.groups_dir())?;
        if names.contains(spec) {
            Ok(self.groups_dir().join(format!("{spec}.kdl")))
        } else {
            Err(LangError::UnknownGroup {
                spec: spec.to_string(),
                help: suggest(spec, names.iter().map(String::as_str), "groups"),
            })
        }
    }

    /// Parses and validates a group file: every statement, every condition (also in
    /// branches no flavor takes), and that every include names a group file.
    pub fn load_group(&self, file: &Path) -> Result<GroupDef, LangError> {
        self.load_with(file, &self.known()?)
    }

    /// Evaluates the group in `file` for `flavor`, expanding includes recursively.
    pub fn recipe(&self, file: &Path, flavor: &Flavor) -> Result<Recipe, LangError> {
        let known = self.known()?;
        let root = self.load_with(file, &known)?;
        let mut expander = Expander {
            workspace: self,
            known,
            flavor,
            loaded: HashMap::new(),
            stack: Vec::new(),
            inputs: BTreeMap::new(),
            recipe: Recipe {
                group: root.name.clone(),
                version: root.version.clone(),
                summary: root.summary.clone(),
                flavor: flavor.clone(),
                packages: Vec::new(),
                removes: Vec::new(),
                excludes: Exclude::default(),
                hostfiles: Vec::new(),
                paths: Vec::new(),
                overlays: Vec::new(),
                files: Vec::new(),
                modules: Vec::new(),
                cmd: Vec::new(),
                container: Container::default(),
                run_as: None,
                prefer: Prefer::default(),
                accounts: Vec::new(),
                preseeds: Vec::new(),
                units: Vec::new(),
                inputs: Vec::new(),
            },
        };
        expander.expand(&root)?;
        let mut recipe = expander.recipe;
        recipe.inputs = expander.inputs.into_iter().collect();
        Ok(recipe)
    }

    /// Reads a file, naming it workspace-relative in messages when it lies inside.
    fn read(&self, file: &Path) -> Result<(PathBuf, SourceFile), LangError> {
        let io = |source| LangError::Io {
            path: file.to_path_buf(),
            source,
        };
        let path = fs::canonicalize(file).map_err(io)?;
        let text = fs::read_to_string(&path).map_err(io)?;
        let name = path
            .strip_prefix(&self.root)
            .map_or_else(|_| path.clone(), Path::to_path_buf);
        Ok((path, SourceFile::new(name, text)))
    }

    fn load_flavor(&self, name: &str) -> Result<Flavor, LangError> {
        let (_, src) = self.read(&self.flavors_dir().join(format!("{name}.kdl")))?;
        parse_flavor(&src, name)
    }

    /// The names group files may use: flags, flavors and groups of the workspace.
    fn known(&self) -> Result<Known, LangError> {
        let flavors = self.flavors()?;
        let builtin = BUILTIN_FLAGS.map(String::from);
        Ok(Known {
            flags: (flavors.iter())
                .flat_map(|f| f.flags.keys().cloned())
                .chain(builtin)
                .collect(),
            flavors: flavors.into_iter().filter_map(|f| f.name).collect(),
            groups: kdl_names(&self.groups_dir())?,
        })
    }

    fn load_with(&self, file: &Path, known: &Known) -> Result<GroupDef, LangError> {
        let (path, src) = self.read(file)?;
        let expected = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        parse_group(src, path, &expected, known)
    }
}

/// The names of the `*.kdl` files in `dir` (none when `dir` does not exist).
fn kdl_names(dir: &Path) -> Result<BTreeSet<String>, LangError> {
    let io = |source| LangError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(io(e)),
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "kdl")
            && path.is_file()
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.insert(stem.to_string());
        }
    }
    Ok(names)
}

/// Walks a group's statements for one flavor, following includes.
struct Expander<'a> {
    workspace: &'a Workspace,
    known: Known,
    flavor: &'a Flavor,
    /// Groups already parsed, so a group included twice is read once.
    loaded: HashMap<String, Rc<GroupDef>>,
    /// The include chain to the group being walked, outermost first.
    stack: Vec<String>,
    inputs: BTreeMap<String, String>,
    recipe: Recipe,
}

impl Expander<'_> {
    fn expand(&mut self, def: &GroupDef) -> Result<(), LangError> {
        self.inputs.insert(
            def.source.name.to_string_lossy().into_owned(),
            def.digest.clone(),
        );
        self.stack.push(def.name.clone());
        self.walk(def, &def.statements)?;
        self.stack.pop();
        Ok(())
    }

    fn walk(&mut self, def: &GroupDef, statements: &[Statement]) -> Result<(), LangError> {
        for statement in statements {
            match statement {
                Statement::When { condition, body } => {
                    if condition.expr.eval(self.flavor) {
                        self.walk(def, body)?;
                    }
                }
                Statement::Include(includes) => {
                    for include in includes {
                        let child = self.load(def, include)?;
                        self.expand(&child)?;
                    }
                }
                Statement::Package {
                    name,
                    constraint,
                    site,
                } => {
                    let via = self
                        .stack
                        .split_last()
                        .map(|(_, outer)| outer.to_vec())
                        .unwrap_or_default();
                    self.recipe.packages.push(PackageRequest {
                        name: name.clone(),
                        constraint: constraint.clone(),
                        reason: Reason::Named {
                            group: def.name.clone(),
                            via,
                        },
                        site: site.clone(),
                    });
                }
                Statement::Remove(removals) => self.recipe.removes.extend_from_slice(removals),
                Statement::Exclude(exclude) => self.recipe.excludes.extend(exclude),
                Statement::Hostfile(hostfile) => self.recipe.hostfiles.push(hostfile.clone()),
                Statement::Paths(globs) => self.recipe.paths.extend_from_slice(globs),
                Statement::Overlay(overlay) => self.recipe.overlays.push(overlay.clone()),
                Statement::Module(modules) => {
                    for module in modules {
                        if !self.recipe.modules.contains(module) {
                            self.recipe.modules.push(module.clone());
                        }
                    }
                }
                Statement::Cmd(cmd) => self.recipe.cmd = cmd.clone(),
                Statement::Container(setting) => {
                    setting.apply(&mut self.recipe.container);
                    if let ContainerSetting::RunAs(run_as) = setting {
                        self.recipe.run_as = Some(run_as.clone());
                    }
                }
                Statement::Prefer(prefer) => self.recipe.prefer = *prefer,
                Statement::File(file) => {
                    self.recipe.files.retain(|f| f.path != file.path);
                    self.recipe.files.push(file.clone());
                }
                Statement::Account(account) => self.recipe.accounts.push(account.clone()),
                Statement::Debconf(lines) => self.recipe.preseeds.extend_from_slice(lines),
                Statement::Units(units) => self.recipe.units.extend_from_slice(units),
            }
        }
        Ok(())
    }

    /// The group an include names, refusing one already on the include chain.
    fn load(&mut self, from: &GroupDef, include: &Include) -> Result<Rc<GroupDef>, LangError> {
        if let Some(at) = self.stack.iter().position(|g| *g == include.name) {
            let mut cycle = self.stack[at..].to_vec();
            cycle.push(include.name.clone());
            return Err(LangError::IncludeCycle {
                cycle: cycle.join(" -> "),
                diag: from.source.diag(
                    include.span,
                    "this include closes the cycle",
                    Some("groups may not include themselves, directly or through others".into()),
                ),
            });
        }
        if let Some(def) = self.loaded.get(&include.name) {
            return Ok(Rc::clone(def));
        }
        let file = self
            .workspace
            .groups_dir()
            .join(format!("{}.kdl", include.name));
        let def = Rc::new(self.workspace.load_with(&file, &self.known)?);
        self.loaded.insert(include.name.clone(), Rc::clone(&def));
        Ok(def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAVORS: &[(&str, &str)] = &[
        (
            "flavors/xen.kdl",
            "flavor xen { arch x86_64; use xen=#true kernel=#true; format image }",
        ),
        (
            "flavors/kvm.kdl",
            "flavor kvm { arch x86_64; use kvm=#true kernel=#true }",
        ),
        (
            "flavors/openvz.kdl",
            "flavor openvz {\n    arch x86_64\n    use openvz=#true kernel=#false\n    format openvz\n}",
        ),
    ];

    const BASE: &str = r#"group base version="1" {
    package base-files
    package exim4-base
    when kernel { package linux-image-amd64; }
    file "/etc/hostname" content="base\n"
    module ext4
    cmd "/bin/sh"
}
"#;
    const MID: &str =
        "group mid version=\"1\" {\n    include base\n    package mid-pkg when=openvz\n}\n";
    const WEB: &str = r#"group web version="1.0" {
    summary "web appliance"
    flavors xen openvz
    include mid
    package nginx-light version=">= 1.22"
    remove exim4-base
    when "xen || kvm" { module xen-blkfront ext4; }
    file "/etc/hostname" mode=0o600 content="web\n"
    overlay "../overlays/web"
    cmd "/usr/sbin/nginx"
    when openvz { include extra; }
}
"#;
    const EXTRA: &str = "group extra version=\"1\" { package extra-pkg; }";

    /// A workspace with the three flavors, base/mid/web/extra groups and `files`.
    fn workspace(files: &[(&str, &str)]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let groups = [
            ("groups/base.kdl", BASE),
            ("groups/mid.kdl", MID),
            ("groups/web.kdl", WEB),
            ("groups/extra.kdl", EXTRA),
        ];
        for (path, text) in FLAVORS.iter().chain(&groups).chain(files) {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let ws = Workspace::discover(dir.path(), None).unwrap();
        (dir, ws)
    }

    fn recipe(ws: &Workspace, group: &str, flavor: &str) -> Result<Recipe, LangError> {
        ws.recipe(&ws.group_file(group)?, &ws.flavor(flavor)?)
    }

    fn help(err: &LangError) -> String {
        miette::Diagnostic::help(err)
            .map(|h| h.to_string())
            .unwrap_or_default()
    }

    fn named(group: &str, via: &[&str]) -> Reason {
        Reason::Named {
            group: group.into(),
            via: via.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn discovers_the_workspace_upward_or_explicitly() {
        let (dir, ws) = workspace(&[]);
        let root = fs::canonicalize(dir.path()).unwrap();
        assert_eq!(ws.root(), root);
        assert_eq!(ws.groups_dir(), root.join("groups"));
        assert_eq!(ws.flavors_dir(), root.join("flavors"));
        assert_eq!(ws.store_dir(), root.join("store"));
        let deep = root.join("groups/a/b");
        fs::create_dir_all(&deep).unwrap();
        assert_eq!(Workspace::discover(&deep, None).unwrap(), ws);

        let other = tempfile::tempdir().unwrap();
        fs::create_dir(other.path().join("store")).unwrap();
        let found = Workspace::discover(&deep, Some(other.path())).unwrap();
        assert_eq!(found.root(), fs::canonicalize(other.path()).unwrap());
        // A relative --workspace is taken from the start folder.
        let rel = Workspace::discover(&root, Some(Path::new("groups/a"))).unwrap();
        assert_eq!(rel.root(), deep.parent().unwrap());

        fs::write(root.join("plain"), "").unwrap();
        let err = Workspace::discover(&root, Some(Path::new("plain"))).unwrap_err();
        assert!(matches!(err, LangError::NotAFolder { .. }), "{err}");
        let err = Workspace::discover(&root, Some(Path::new("missing"))).unwrap_err();
        assert!(err.to_string().starts_with("cannot read "), "{err}");
    }

    #[test]
    fn no_workspace_is_an_error() {
        let empty = tempfile::tempdir().unwrap();
        let start = fs::canonicalize(empty.path()).unwrap();
        if start
            .ancestors()
            .any(|d| d.join("groups").is_dir() || d.join("store").is_dir())
        {
            return; // The machine's temp folder sits inside a workspace.
        }
        let err = Workspace::discover(&start, None).unwrap_err();
        assert!(matches!(err, LangError::NoWorkspace { .. }));
        assert!(err.to_string().contains(&start.display().to_string()));
    }

    #[test]
    fn finds_flavors_by_name_or_canonical_string() {
        let (_dir, ws) = workspace(&[]);
        let names: Vec<_> = ws.flavors().unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                Some("kvm".into()),
                Some("openvz".into()),
                Some("xen".into())
            ]
        );
        let xen = ws.flavor("xen").unwrap();
        assert_eq!(xen.canonical(), "[kernel,xen is: x86_64]");
        let by_string = ws.flavor("[xen,kernel is: x86_64]").unwrap();
        assert_eq!(by_string, xen);
        assert_eq!(by_string.format.as_deref(), Some("image"));
        let loose = ws.flavor("[kernel is: aarch64]").unwrap();
        assert_eq!((loose.name, loose.arch.as_str()), (None, "aarch64"));
        let err = ws.flavor("xne").unwrap_err();
        assert_eq!(err.to_string(), "unknown flavor `xne`");
        assert!(
            help(&err).starts_with("did you mean `xen`?"),
            "{}",
            help(&err)
        );
        assert!(matches!(
            ws.flavor("[bad").unwrap_err(),
            LangError::BadFlavorString { .. }
        ));
    }

    #[test]
    fn finds_group_files_by_name_or_path() {
        let (dir, ws) = workspace(&[]);
        assert_eq!(
            ws.group_file("web").unwrap(),
            ws.groups_dir().join("web.kdl")
        );
        let path = dir.path().join("groups/web.kdl");
        let spec = path.to_str().unwrap();
        assert_eq!(ws.group_file(spec).unwrap(), path);
        let err = ws.group_file("wbe").unwrap_err();
        assert_eq!(err.to_string(), "unknown group `wbe`");
        assert!(
            help(&err).starts_with("did you mean `web`?"),
            "{}",
            help(&err)
        );
        let err = ws.group_file("nowhere/web.kdl").unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read nowhere/web.kdl"),
            "{err}"
        );
    }

    #[test]
    fn recipes_expand_includes_with_reasons() {
        let (_dir, ws) = workspace(&[]);
        let r = recipe(&ws, "web", "xen").unwrap();
        assert_eq!((r.group.as_str(), r.version.as_str()), ("web", "1.0"));
        assert_eq!(r.summary.as_deref(), Some("web appliance"));
        assert_eq!(r.flavor.name.as_deref(), Some("xen"));
        let packages: Vec<(&str, &Reason)> = r
            .packages
            .iter()
            .map(|p| (p.name.as_str(), &p.reason))
            .collect();
        assert_eq!(
            packages,
            [
                ("base-files", &named("base", &["web", "mid"])),
                ("exim4-base", &named("base", &["web", "mid"])),
                ("linux-image-amd64", &named("base", &["web", "mid"])),
                ("nginx-light", &named("web", &[])),
            ]
        );
        assert_eq!(r.packages[3].constraint, Some((Op::Ge, "1.22".into())));
        assert_eq!(
            r.packages[0].site.location().to_string(),
            "groups/base.kdl:2:5"
        );
        assert_eq!(
            r.packages[3].site.location().to_string(),
            "groups/web.kdl:5:5"
        );
        assert_eq!(r.removes.len(), 1);
        assert_eq!(r.removes[0].location.to_string(), "groups/web.kdl:6:12");
        assert_eq!(r.modules, ["ext4", "xen-blkfront"]);
        // web's file statement for the same path overrides base's.
        assert_eq!(r.files.len(), 1);
        assert_eq!(
            (r.files[0].mode, r.files[0].content.as_slice()),
            (0o600, &b"web\n"[..])
        );
        assert_eq!(r.cmd, ["/usr/sbin/nginx"]);
        assert_eq!(r.overlays.len(), 1);
        assert_eq!(r.overlays[0].path, ws.groups_dir().join("../overlays/web"));
        assert_eq!(
            r.overlays[0].site.location().to_string(),
            "groups/web.kdl:9:5"
        );
        // extra is only included for openvz, so it was never read.
        let inputs: Vec<&str> = r.inputs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            inputs,
            ["groups/base.kdl", "groups/mid.kdl", "groups/web.kdl"]
        );
        assert_eq!(
            r.inputs[2].1,
            blake3::hash(WEB.as_bytes()).to_hex().to_string()
        );
    }

    #[test]
    fn the_last_prefer_reached_wins() {
        let (_dir, ws) = workspace(&[(
            "groups/fresh.kdl",
            "group fresh version=\"1\" {\n    prefer newest\n    when openvz { include base; prefer installed; }\n}\n",
        )]);
        assert_eq!(recipe(&ws, "fresh", "xen").unwrap().prefer, Prefer::Newest);
        assert_eq!(
            recipe(&ws, "fresh", "openvz").unwrap().prefer,
            Prefer::Installed
        );
        assert_eq!(
            recipe(&ws, "base", "xen").unwrap().prefer,
            Prefer::Installed
        );
    }

    #[test]
    fn recipes_follow_the_flavor() {
        let (_dir, ws) = workspace(&[]);
        let r = recipe(&ws, "web", "openvz").unwrap();
        let packages: Vec<(&str, &Reason)> = r
            .packages
            .iter()
            .map(|p| (p.name.as_str(), &p.reason))
            .collect();
        assert_eq!(
            packages,
            [
                ("base-files", &named("base", &["web", "mid"])),
                ("exim4-base", &named("base", &["web", "mid"])),
                ("mid-pkg", &named("mid", &["web"])),
                ("nginx-light", &named("web", &[])),
                ("extra-pkg", &named("extra", &["web"])),
            ]
        );
        assert_eq!(r.modules, ["ext4"]);
        assert_eq!(r.inputs.len(), 4);
        // Compiling an included group on its own: no via chain.
        let r = recipe(&ws, "base", "[is: x86_64]").unwrap();
        assert_eq!(r.packages[0].reason, named("base", &[]));
        assert_eq!(r.files[0].content, b"base\n");
        assert_eq!(r.cmd, ["/bin/sh"]);
    }

    #[test]
    fn container_settings_are_laid_over_each_other_through_includes() {
        let (_dir, ws) = workspace(&[
            (
                "groups/runtime.kdl",
                "group runtime version=\"1\" {\n    env \"LANG=C\" \"TZ=UTC\"\n    expose 80\n    run-as \"nobody\"\n    label \"tier=base\"\n}",
            ),
            (
                "groups/app.kdl",
                "group app version=\"1\" {\n    include runtime\n    env \"LANG=C.UTF-8\"\n    when openvz { expose \"53/udp\"; run-as \"app:app\"; }\n    workdir \"/srv\"\n    entrypoint \"/init\"\n}",
            ),
        ]);
        let r = recipe(&ws, "app", "openvz").unwrap();
        let c = &r.container;
        let env: Vec<(&str, &str)> = (c.env.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, [("LANG", "C.UTF-8"), ("TZ", "UTC")]);
        let ports: Vec<&str> = c.ports.iter().map(String::as_str).collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert_eq!(c.user.as_deref(), Some("app:app"));
        let run_as = r.run_as.as_ref().unwrap();
        assert_eq!(run_as.site.location().to_string(), "groups/app.kdl:4:43");
        assert_eq!(c.labels["tier"], "base");
        assert_eq!(c.workdir.as_deref(), Some("/srv"));
        assert_eq!(c.entrypoint, ["/init"]);
        // Another flavor skips the `when`: the included group's user stays.
        let r = recipe(&ws, "app", "xen").unwrap();
        assert_eq!(r.container.user.as_deref(), Some("nobody"));
        assert_eq!(
            r.run_as.unwrap().site.location().to_string(),
            "groups/runtime.kdl:4:12"
        );
        assert!(recipe(&ws, "base", "xen").unwrap().container.is_empty());
    }

    #[test]
    fn recipes_gather_accounts_preseeds_and_units_in_order() {
        let (_dir, ws) = workspace(&[
            (
                "groups/acct.kdl",
                "group acct version=\"1\" {\n    group app\n    user app group=\"app\"\n    debconf \"a a/q string 1\"\n}",
            ),
            (
                "groups/svc.kdl",
                "group svc version=\"1\" {\n    include acct\n    enable nginx ssh\n    when openvz { disable nginx; }\n    debconf \"b b/q string 2\"\n}",
            ),
        ]);
        let r = recipe(&ws, "svc", "openvz").unwrap();
        let accounts: Vec<(&str, &str)> = (r.accounts.iter())
            .map(|a| (a.kind.statement(), a.name.as_str()))
            .collect();
        assert_eq!(accounts, [("group", "app"), ("user", "app")]);
        assert_eq!(r.accounts[1].location.to_string(), "groups/acct.kdl:3:5");
        let lines: Vec<&str> = r.preseeds.iter().map(|p| p.line.as_str()).collect();
        assert_eq!(lines, ["a a/q string 1", "b b/q string 2"]);
        let units: Vec<(&str, bool)> = (r.units.iter())
            .map(|u| (u.unit.as_str(), u.enable))
            .collect();
        assert_eq!(units, [("nginx", true), ("ssh", true), ("nginx", false)]);
        assert_eq!(r.units[2].location.to_string(), "groups/svc.kdl:4:27");
        let xen = recipe(&ws, "svc", "xen").unwrap();
        assert_eq!(xen.units.len(), 2, "the disable is for openvz only");
    }

    #[test]
    fn include_cycles_name_the_cycle_at_the_include() {
        let (_dir, ws) = workspace(&[
            ("groups/a.kdl", "group a version=\"1\" {\n    include b\n}"),
            (
                "groups/b.kdl",
                "group b version=\"1\" {\n    package p\n    include c a\n}",
            ),
            ("groups/c.kdl", "group c version=\"1\" {}"),
            (
                "groups/self.kdl",
                "group self version=\"1\" { include self; }",
            ),
        ]);
        let err = recipe(&ws, "a", "xen").unwrap_err();
        assert!(matches!(&err, LangError::IncludeCycle { cycle, .. } if cycle == "a -> b -> a"));
        assert_eq!(
            err.to_string(),
            "groups/b.kdl:3:15: include cycle a -> b -> a"
        );
        let err = recipe(&ws, "self", "xen").unwrap_err();
        assert_eq!(
            err.to_string(),
            "groups/self.kdl:1:34: include cycle self -> self"
        );
    }

    #[test]
    fn loading_validates_against_the_workspace() {
        let (_dir, ws) = workspace(&[
            (
                "groups/flags.kdl",
                "group flags version=\"1\" {\n    when \"openvz && !kvm\" { package a; }\n    when openvz { package b when=foo; }\n}",
            ),
            ("groups/named.kdl", "group other version=\"1\" {}"),
            (
                "groups/inc.kdl",
                "group inc version=\"1\" {\n    include mid bse\n}",
            ),
        ]);
        // `foo` sits in a branch no xen recipe takes; it is still refused.
        let err = ws.load_group(&ws.group_file("flags").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "groups/flags.kdl:3:34: unknown flag `foo` in condition `foo`"
        );
        assert_eq!(help(&err), "known flags: kernel, kvm, openvz, xen");
        let err = recipe(&ws, "flags", "xen").unwrap_err();
        assert!(err.to_string().contains("unknown flag `foo`"));
        let err = ws.load_group(&ws.group_file("named").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "groups/named.kdl:1:7: groups/named.kdl must define group `named`, not `other`"
        );
        let err = ws.load_group(&ws.group_file("inc").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "groups/inc.kdl:2:17: unknown group `bse` in include"
        );
        assert!(
            help(&err).starts_with("did you mean `base`?"),
            "{}",
            help(&err)
        );
        let def = ws.load_group(&ws.group_file("web").unwrap()).unwrap();
        assert_eq!(def.flavors, ["xen", "openvz"]);
        assert_eq!(def.file, ws.groups_dir().join("web.kdl"));
    }
}
