//! What a group asks of its configured tree besides the packages' own scripts: debconf
//! answers (`debconf`), accounts no script makes (`user`, `group`), systemd units to
//! enable or disable (`enable`, `disable`), and, for a virtual machine, the network
//! that brings its NICs up. Each is checked against the staged tree before any script
//! runs: a statement whose tool the tree lacks, or a tree with no dpkg to configure it,
//! fails at once, naming the statement. The group's own `file`s in systemd's unit
//! folders are put in the staged tree before configuring, so that `enable` finds the
//! units a group brings itself.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::{CompileError, Result};
use crate::confine::IdShift;
use crate::lang::Location;
use crate::system::{self, Machine, Network};
use crate::workspace::Recipe;

use super::configure::{Ask, Asked};

/// What the configure stage does for the group.
#[derive(Debug, Default)]
pub struct Requests {
    /// debconf lines, set before any script.
    pub preseeds: Vec<String>,
    /// Accounts (groups, then users), the network's unit, then the group's units.
    pub asked: Vec<Asked>,
    /// What the user should know (a machine whose network stays down).
    pub warnings: Vec<String>,
}

/// A statement the tree cannot carry out.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The closure has no dpkg, so nothing is configured.
    #[error(
        "{location}: `{statement}` needs a configured tree, and group {group}'s closure has no \
         dpkg to configure it: add `package dpkg`"
    )]
    Unconfigured {
        /// The statement.
        location: Location,
        /// Its name (`user`, `debconf`, `enable`...).
        statement: &'static str,
        /// The compiled group.
        group: String,
    },
    /// The tree lacks the program the statement runs.
    #[error("{location}: `{statement}` needs {tool} in the tree: add `package {package}`")]
    NoTool {
        /// The statement.
        location: Location,
        /// Its name.
        statement: &'static str,
        /// The program, as the merged-/usr tree holds it.
        tool: &'static str,
        /// The Debian package that brings it.
        package: &'static str,
    },
}

/// systemd's unit folders, as the merged-/usr tree holds them.
const UNIT_FOLDERS: [&str; 2] = ["/etc/systemd/system/", "/usr/lib/systemd/system/"];

/// A group's `file` in one of systemd's unit folders.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UnitFile {
    /// Its path in the tree.
    pub path: String,
    /// Its bytes.
    pub content: Vec<u8>,
    /// Its mode.
    pub mode: u32,
}

/// The group's `file`s in systemd's unit folders.
pub fn unit_files(recipe: &Recipe) -> Vec<UnitFile> {
    (recipe.files.iter())
        .filter(|file| UNIT_FOLDERS.iter().any(|f| file.path.starts_with(f)))
        .map(|file| UnitFile {
            path: file.path.clone(),
            content: file.content.clone(),
            mode: file.mode,
        })
        .collect()
}

/// Writes the group's `file`s in systemd's unit folders (`units`) into the staged tree `root`,
/// owned by its root (`ids`), for systemctl to read their `[Install]` sections. They are
/// written before any package code has run in the tree, and never through a symlink (a
/// package may ship one anywhere): a path through one is left out, and `enable` of its
/// unit fails as for any unit the tree lacks. The lock takes them from the statements,
/// as every `file`.
pub fn place_units(units: &[UnitFile], root: &Path, ids: IdShift) -> Result<()> {
    let owner = ids.outside(0);
    for file in units {
        let parent = Path::new(&file.path).parent().unwrap_or(Path::new("/"));
        let mut at = root.to_path_buf();
        let mut real_folders = true;
        for name in parent.iter().skip(1) {
            at.push(name);
            match fs::symlink_metadata(&at) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    real_folders = false;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    fs::create_dir(&at).map_err(CompileError::io_at(&at))?;
                    fs::set_permissions(&at, fs::Permissions::from_mode(0o755))
                        .map_err(CompileError::io_at(&at))?;
                    std::os::unix::fs::chown(&at, owner, owner)
                        .map_err(CompileError::io_at(&at))?;
                }
                Err(e) => return Err(CompileError::io_at(&at)(e)),
            }
        }
        if !real_folders {
            continue;
        }
        let path = root.join(file.path.trim_start_matches('/'));
        let written = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .and_then(|mut out| {
                out.write_all(&file.content)?;
                out.set_permissions(fs::Permissions::from_mode(file.mode))?;
                std::os::unix::fs::fchown(&out, owner, owner)
            });
        match written {
            // A symlink there (ELOOP) is left alone, as one on the way is.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {}
            other => other.map_err(CompileError::io_at(&path))?,
        }
    }
    Ok(())
}

/// The DHCP clients ifupdown's `inet dhcp` runs (the first it finds).
const DHCP_CLIENTS: [&str; 4] = [
    "/usr/sbin/dhclient",
    "/usr/sbin/dhcpcd",
    "/usr/sbin/udhcpc",
    "/usr/sbin/pump",
];

/// The requests of `recipe` for a `machine` tree; `has(path)` says whether the staged
/// tree holds a (merged-/usr) path, `configured` whether it has a dpkg to configure it.
pub fn requests(
    recipe: &Recipe,
    machine: Machine,
    has: impl Fn(&str) -> bool,
    configured: bool,
) -> Result<Requests, SetupError> {
    let accounts = (recipe.accounts.iter()).map(|a| {
        let tool = match a.kind.statement() {
            "user" => "/usr/sbin/useradd",
            _ => "/usr/sbin/groupadd",
        };
        (&a.location, a.kind.statement(), tool, "passwd")
    });
    let preseeds = (recipe.preseeds.iter()).map(|p| {
        let tool = "/usr/bin/debconf-set-selections";
        (&p.location, "debconf", tool, "debconf")
    });
    let units = (recipe.units.iter()).map(|u| {
        let statement = if u.enable { "enable" } else { "disable" };
        (&u.location, statement, "/usr/bin/systemctl", "systemd")
    });
    // The first statement as written is the one named.
    let mut statements: Vec<_> = accounts.chain(preseeds).chain(units).collect();
    statements.sort_by(|a, b| a.0.cmp(b.0));
    for (location, statement, tool, package) in statements {
        if !configured {
            return Err(SetupError::Unconfigured {
                location: location.clone(),
                statement,
                group: recipe.group.clone(),
            });
        }
        if !has(tool) {
            return Err(SetupError::NoTool {
                location: location.clone(),
                statement,
                tool,
                package,
            });
        }
    }
    let mut requests = Requests {
        preseeds: recipe.preseeds.iter().map(|p| p.line.clone()).collect(),
        ..Requests::default()
    };
    // Groups first: a user may name one a later statement makes.
    let (groups, users): (Vec<_>, Vec<_>) =
        (recipe.accounts.iter()).partition(|a| a.kind == crate::lang::AccountKind::Group);
    requests
        .asked
        .extend(groups.into_iter().chain(users).map(|account| Asked {
            ask: Ask::Account(account.clone()),
            origin: account.location.to_string(),
        }));
    let flavor = recipe.flavor.canonical();
    match system::network(machine, &has) {
        // Before the group's own units, so that its `disable` wins.
        Some(Network::Networkd) if configured => requests.asked.push(Asked {
            ask: Ask::Unit {
                name: system::NETWORKD_UNIT.to_string(),
                enable: true,
            },
            origin: format!("the network of flavor {flavor}"),
        }),
        Some(Network::Networkd) => requests.warnings.push(format!(
            "group {} is not configured, so systemd-networkd is not enabled: flavor {flavor} \
             boots with its network down",
            recipe.group
        )),
        Some(Network::Ifupdown) if !DHCP_CLIENTS.iter().any(|c| has(c)) => {
            requests.warnings.push(format!(
                "group {} has ifupdown but no DHCP client for flavor {flavor}: its network \
                 stays down (add `package isc-dhcp-client`)",
                recipe.group
            ));
        }
        Some(Network::Unmanaged) => requests.warnings.push(format!(
            "group {} has neither systemd-networkd nor ifupdown for flavor {flavor}: its image \
             boots with its network down (add `package systemd` or `package ifupdown`)",
            recipe.group
        )),
        Some(Network::Ifupdown) | None => {}
    }
    requests.asked.extend(recipe.units.iter().map(|unit| Asked {
        ask: Ask::Unit {
            name: unit.unit.clone(),
            enable: unit.enable,
        },
        origin: unit.location.to_string(),
    }));
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Workspace;

    const GROUP: &str = r#"group svc version="1" {
    user app group="media"
    group media gid=2001
    debconf "tzdata tzdata/Areas select Etc"
    enable nginx
    disable systemd-networkd
}
"#;

    /// The recipe of `text` (group `svc`) for flavor `flavor` (`kvm` or `openvz`).
    fn recipe(text: &str, flavor: &str) -> Recipe {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            (
                "flavors/kvm.kdl",
                "flavor kvm { arch x86_64; use kvm=#true kernel=#true }",
            ),
            (
                "flavors/openvz.kdl",
                "flavor openvz { arch x86_64; use kernel=#false }",
            ),
            ("groups/svc.kdl", text),
        ];
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let ws = Workspace::discover(dir.path(), None).unwrap();
        let file = ws.group_file("svc").unwrap();
        ws.recipe(&file, &ws.flavor(flavor).unwrap()).unwrap()
    }

    const TOOLS: &[&str] = &[
        "/usr/bin/debconf-set-selections",
        "/usr/bin/systemctl",
        "/usr/lib/systemd/systemd",
        "/usr/lib/systemd/systemd-networkd",
        "/usr/sbin/groupadd",
        "/usr/sbin/useradd",
    ];

    fn has(tree: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |path| tree.contains(&path)
    }

    fn asked(requests: &Requests) -> Vec<(String, &str)> {
        let what = |ask: &Ask| match ask {
            Ask::Account(a) => format!("{} {}", a.kind.statement(), a.name),
            Ask::Unit { name, enable } => {
                format!("{} {name}", if *enable { "enable" } else { "disable" })
            }
        };
        (requests.asked.iter())
            .map(|a| (what(&a.ask), a.origin.as_str()))
            .collect()
    }

    #[test]
    fn groups_come_first_and_the_group_can_turn_the_network_off() {
        let kvm = requests(&recipe(GROUP, "kvm"), Machine::Virtual, has(TOOLS), true).unwrap();
        assert_eq!(
            asked(&kvm),
            [
                ("group media".to_string(), "groups/svc.kdl:3:5"),
                ("user app".to_string(), "groups/svc.kdl:2:5"),
                (
                    "enable systemd-networkd.service".to_string(),
                    "the network of flavor [kernel,kvm is: x86_64]"
                ),
                ("enable nginx".to_string(), "groups/svc.kdl:5:12"),
                (
                    "disable systemd-networkd".to_string(),
                    "groups/svc.kdl:6:13"
                ),
            ]
        );
        assert_eq!(kvm.preseeds, ["tzdata tzdata/Areas select Etc"]);
        assert!(kvm.warnings.is_empty(), "{:?}", kvm.warnings);
        let openvz = requests(
            &recipe(GROUP, "openvz"),
            Machine::Container,
            has(TOOLS),
            true,
        );
        assert_eq!(
            openvz.unwrap().asked.len(),
            4,
            "a container's network is the host's"
        );
    }

    #[test]
    fn a_machine_without_a_network_manager_is_warned_about() {
        let plain = recipe("group svc version=\"1\" {}", "kvm");
        let done = requests(&plain, Machine::Virtual, |_| false, true).unwrap();
        assert!(done.asked.is_empty());
        assert_eq!(
            done.warnings,
            [
                "group svc has neither systemd-networkd nor ifupdown for flavor [kernel,kvm is: \
              x86_64]: its image boots with its network down (add `package systemd` or \
              `package ifupdown`)"
            ]
        );
        let ifupdown = requests(&plain, Machine::Virtual, has(&["/usr/sbin/ifup"]), true);
        assert!(ifupdown.unwrap().warnings[0].contains("no DHCP client"));
        let with_client = has(&["/usr/sbin/ifup", "/usr/sbin/dhclient"]);
        let done = requests(&plain, Machine::Virtual, with_client, true).unwrap();
        assert!(done.warnings.is_empty() && done.asked.is_empty());
    }

    #[test]
    fn the_groups_unit_files_are_placed_never_through_a_symlink() {
        let svc = recipe(
            r#"group svc version="1" {
    file "/etc/systemd/system/mine.service" mode=0o640 content="[Install]\n"
    file "/etc/systemd/system/mine.service.d/local.conf" content="[Service]\n"
    file "/usr/lib/systemd/system/escape.service" content="x"
    file "/etc/motd" content="not a unit"
}
"#,
            "openvz",
        );
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
        fs::create_dir(&outside).unwrap();
        // A package's symlink out of the tree, as the host would follow it.
        std::os::unix::fs::symlink(&outside, root.join("usr/lib/systemd/system")).unwrap();
        let me = IdShift {
            base: unsafe { libc::geteuid() },
        };
        place_units(&unit_files(&svc), &root, me).unwrap();
        let unit = root.join("etc/systemd/system/mine.service");
        assert_eq!(fs::read_to_string(&unit).unwrap(), "[Install]\n");
        assert_eq!(
            fs::metadata(&unit).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        assert!(
            root.join("etc/systemd/system/mine.service.d/local.conf")
                .is_file()
        );
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
        assert!(!root.join("etc/motd").exists(), "only unit folders");
    }

    #[test]
    fn statements_the_tree_cannot_carry_out_are_refused_at_the_statement() {
        let svc = recipe(GROUP, "openvz");
        let no_useradd: &[&str] = &["/usr/sbin/groupadd", "/usr/bin/systemctl"];
        let err = requests(&svc, Machine::Container, has(no_useradd), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "groups/svc.kdl:2:5: `user` needs /usr/sbin/useradd in the tree: add `package passwd`"
        );
        let no_systemctl: &[&str] = &[
            "/usr/sbin/groupadd",
            "/usr/sbin/useradd",
            "/usr/bin/debconf-set-selections",
        ];
        let err = requests(&svc, Machine::Container, has(no_systemctl), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "groups/svc.kdl:5:12: `enable` needs /usr/bin/systemctl in the tree: add `package systemd`"
        );
        let err = requests(&svc, Machine::Container, has(TOOLS), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "groups/svc.kdl:2:5: `user` needs a configured tree, and group svc's closure has no \
             dpkg to configure it: add `package dpkg`"
        );
    }
}
