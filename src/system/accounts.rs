//! `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/gshadow` of an appliance: the
//! base-passwd masters plus the system users and groups its packages use, with every
//! password locked. The host's shadow files are never read.

use std::collections::BTreeSet;

use super::Generated;

/// Where account lines come from.
pub struct AccountSources<'a> {
    /// `/usr/share/base-passwd/passwd.master` when base-passwd is in the lock.
    pub master_passwd: Option<&'a str>,
    /// `/usr/share/base-passwd/group.master` when base-passwd is in the lock.
    pub master_group: Option<&'a str>,
    /// The host's `etc/passwd`: where users created by maintainer scripts are found.
    pub host_passwd: &'a str,
    /// The host's `etc/group`.
    pub host_group: &'a str,
}

/// One `name:password:id:...` line split at its colons.
struct Line<'a> {
    fields: Vec<&'a str>,
}

impl<'a> Line<'a> {
    fn parse(text: &'a str, min_fields: usize) -> Option<Line<'a>> {
        let fields: Vec<&str> = text.split(':').collect();
        let valid = fields.len() >= min_fields
            && !fields[0].is_empty()
            && !text.starts_with(['#', '+', '-']);
        valid.then_some(Line { fields })
    }

    fn name(&self) -> &'a str {
        self.fields[0]
    }

    fn id(&self) -> u32 {
        self.fields[2].parse().unwrap_or(u32::MAX)
    }
}

fn lines(text: &str, min_fields: usize) -> Vec<Line<'_>> {
    text.lines()
        .filter_map(|l| Line::parse(l, min_fields))
        .collect()
}

/// The id of group `name` in a group file's text (`etc/group` or base-passwd's master).
pub fn group_id(group_file: &str, name: &str) -> Option<u32> {
    lines(group_file, 4)
        .iter()
        .find(|g| g.name() == name)
        .map(Line::id)
}

/// What a maintainer script asks of `adduser`, `useradd`, `addgroup` or `groupadd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRequest {
    /// Create a user (a system user: maintainer scripts make no others).
    User {
        /// Login name.
        name: String,
        /// `--home`/`-d`; adduser's default for system users is `/nonexistent`.
        home: Option<String>,
        /// `--shell`/`-s`; the default is `/usr/sbin/nologin`.
        shell: Option<String>,
        /// `--gecos`/`--comment`/`-c`.
        gecos: Option<String>,
        /// `--uid`/`-u`.
        uid: Option<u32>,
        /// The primary group.
        group: PrimaryGroup,
    },
    /// Create a group.
    Group {
        /// Group name.
        name: String,
        /// `--gid`/`-g`.
        gid: Option<u32>,
    },
    /// `adduser USER GROUP`: make an existing user a member of an existing group.
    Member {
        /// The user.
        user: String,
        /// The group.
        group: String,
    },
}

/// The primary group of a user a script creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryGroup {
    /// `--group`/`-U`: a group of the user's own name.
    Own,
    /// `--ingroup G`/`-g G`.
    Named(String),
    /// Neither: adduser puts system users in `nogroup`.
    NoGroup,
}

impl AccountRequest {
    /// Every account name the request mentions.
    pub fn names(&self) -> Vec<&str> {
        match self {
            AccountRequest::User { name, group, .. } => match group {
                PrimaryGroup::Named(g) => vec![name, g],
                _ => vec![name],
            },
            AccountRequest::Group { name, .. } => vec![name],
            AccountRequest::Member { user, group } => vec![user, group],
        }
    }
}

/// The account requests of a maintainer script, in script order. The script is read,
/// never run: each `adduser`/`useradd`/`addgroup`/`groupadd` command line is split into
/// shell words (quotes honoured, continuation lines joined) and its options read as the
/// tool would. A command with a word that is not literal (`$user`, which may be a
/// name or a flag) is not guessed at.
pub fn script_accounts(script: &str) -> Vec<AccountRequest> {
    super::script_commands(script, &["adduser", "useradd", "addgroup", "groupadd"])
        .iter()
        .filter_map(|words| command_request(&words[0], &words[1..]))
        .collect()
}

/// A plausible literal account name (Debian's default NAME_REGEX, plus `_` and `.`).
fn literal_name(word: &str) -> bool {
    word.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

/// The request of one command (`tool` and its arguments).
fn command_request(tool: &str, args: &[String]) -> Option<AccountRequest> {
    // Options that take a value, for each tool family.
    const ADDUSER_VALUED: &[&str] = &[
        "--home",
        "--shell",
        "--gecos",
        "--comment",
        "--ingroup",
        "--gid",
        "--uid",
        "--firstuid",
        "--lastuid",
        "--firstgid",
        "--lastgid",
        "--conf",
        "--extrausers",
    ];
    const USERADD_VALUED: &[&str] = &[
        "-d",
        "--home-dir",
        "-s",
        "--shell",
        "-c",
        "--comment",
        "-g",
        "--gid",
        "-u",
        "--uid",
        "-G",
        "--groups",
        "-K",
        "--key",
        "-k",
        "--skel",
        "-e",
        "--expiredate",
        "-f",
        "--inactive",
        "-p",
        "--password",
        "-R",
        "--root",
        "-b",
        "--base-dir",
    ];
    let valued = if tool.starts_with("add") {
        ADDUSER_VALUED
    } else {
        USERADD_VALUED
    };
    let mut options: Vec<(&str, Option<&str>)> = Vec::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let word = args[i].as_str();
        if let Some((option, value)) = word.split_once('=').filter(|(o, _)| o.starts_with("--")) {
            options.push((option, Some(value)));
        } else if valued.contains(&word) {
            options.push((word, args.get(i + 1).map(String::as_str)));
            i += 1;
        } else if word.starts_with('-') {
            options.push((word, None));
        } else {
            positional.push(word);
        }
        i += 1;
    }
    let value = |names: &[&str]| {
        options
            .iter()
            .find(|(o, _)| names.contains(o))
            .and_then(|(_, v)| v.map(str::to_string))
    };
    let flag = |names: &[&str]| options.iter().any(|(o, _)| names.contains(o));
    let number = |names: &[&str]| value(names).and_then(|v| v.parse::<u32>().ok());
    let group_tool = matches!(tool, "addgroup" | "groupadd");
    match positional.as_slice() {
        [name] if literal_name(name) => {
            // `adduser --group NAME` without `--system` is `addgroup NAME`.
            if group_tool || (tool == "adduser" && flag(&["--group"]) && !flag(&["--system"])) {
                return Some(AccountRequest::Group {
                    name: name.to_string(),
                    gid: number(&["--gid", "-g"]),
                });
            }
            let group = if flag(&["--group", "-U", "--user-group"]) {
                PrimaryGroup::Own
            } else {
                match value(&["--ingroup", "-g", "--gid"]) {
                    Some(g) if literal_name(&g) => PrimaryGroup::Named(g),
                    _ => PrimaryGroup::NoGroup,
                }
            };
            Some(AccountRequest::User {
                name: name.to_string(),
                home: value(&["--home", "-d", "--home-dir"]),
                shell: value(&["--shell", "-s"]),
                gecos: value(&["--gecos", "--comment", "-c"]),
                uid: number(&["--uid", "-u"]),
                group,
            })
        }
        [user, group] if !group_tool && literal_name(user) && literal_name(group) => {
            Some(AccountRequest::Member {
                user: user.to_string(),
                group: group.to_string(),
            })
        }
        _ => None,
    }
}

/// adduser's range for system users and groups (`FIRST_SYSTEM_UID`..`LAST_SYSTEM_UID`).
const SYSTEM_IDS: std::ops::RangeInclusive<u32> = 100..=999;

/// The `nogroup` group system users land in.
const NOGROUP: (&str, u32) = ("nogroup", 65534);

/// Builds the four account files. `users` and `groups` are names the appliance needs
/// beyond the masters (file owners, names its packages' scripts use); each is taken
/// from the host's files when the host has it, with the host's ids, so the owners
/// recorded in the lock stay right. A user's primary group comes along. Then each of
/// `requests` (the packages' scripts, in package order) that asks for an account still
/// absent creates it as adduser would, with the first free id of the system range, so
/// the result depends only on the inputs.
pub fn accounts(
    sources: &AccountSources,
    users: &BTreeSet<String>,
    groups: &BTreeSet<String>,
    requests: &[AccountRequest],
) -> Generated {
    const ROOT_USER: &str = "root:x:0:0:root:/root:/bin/bash";
    const ROOT_GROUP: &str = "root:x:0:";
    let host_users = lines(sources.host_passwd, 7);
    let host_groups = lines(sources.host_group, 4);
    let owned = |l: &Line| -> Vec<String> { l.fields.iter().map(|f| f.to_string()).collect() };
    let mut passwd: Vec<Vec<String>> = lines(sources.master_passwd.unwrap_or(ROOT_USER), 7)
        .iter()
        .map(owned)
        .collect();
    let mut group: Vec<Vec<String>> = lines(sources.master_group.unwrap_or(ROOT_GROUP), 4)
        .iter()
        .map(owned)
        .collect();

    let mut extra_users: Vec<&Line> = host_users
        .iter()
        .filter(|u| users.contains(u.name()) && !passwd.iter().any(|p| p[0] == u.name()))
        .collect();
    extra_users.sort_by_key(|u| (u.id(), u.name()));
    let primary_gids: BTreeSet<&str> = extra_users.iter().map(|u| u.fields[3]).collect();
    let mut extra_groups: Vec<&Line> = host_groups
        .iter()
        .filter(|g| {
            groups.contains(g.name())
                || users.contains(g.name())
                || primary_gids.contains(g.fields[2])
        })
        .filter(|g| !group.iter().any(|m| m[0] == g.name()))
        .collect();
    extra_groups.sort_by_key(|g| (g.id(), g.name()));
    passwd.extend(extra_users.into_iter().map(owned));
    group.extend(extra_groups.into_iter().map(owned));
    for request in requests {
        create(request, &mut passwd, &mut group);
    }

    let user_names: BTreeSet<&str> = passwd.iter().map(|u| u[0].as_str()).collect();
    // Keep only members that exist in this appliance.
    let members = |g: &[String]| -> String {
        g[3].split(',')
            .filter(|m| user_names.contains(m))
            .collect::<Vec<_>>()
            .join(",")
    };
    let text = |rows: Vec<String>| rows.into_iter().map(|r| r + "\n").collect::<String>();
    let passwd_text = text(
        passwd
            .iter()
            .map(|u| {
                let mut fields = u.clone();
                fields[1] = "x".to_string();
                fields.join(":")
            })
            .collect(),
    );
    let group_text = text(
        group
            .iter()
            .map(|g| format!("{}:x:{}:{}", g[0], g[2], members(g)))
            .collect(),
    );
    let shadow_text = text(
        passwd
            .iter()
            .map(|u| format!("{}:*::0:99999:7:::", u[0]))
            .collect(),
    );
    let gshadow_text = text(
        group
            .iter()
            .map(|g| format!("{}:*::{}", g[0], members(g)))
            .collect(),
    );

    let shadow_gid = group
        .iter()
        .find(|g| g[0] == "shadow")
        .and_then(|g| g[2].parse::<u32>().ok());
    let mut generated = Generated::default();
    generated.root_file("/etc/passwd", passwd_text.into_bytes());
    generated.root_file("/etc/group", group_text.into_bytes());
    let (gid, gname) = match shadow_gid {
        Some(gid) => (gid, "shadow"),
        None => (0, "root"),
    };
    generated.file(
        "/etc/shadow",
        0o640,
        (0, "root", gid, gname),
        shadow_text.into_bytes(),
    );
    generated.file(
        "/etc/gshadow",
        0o640,
        (0, "root", gid, gname),
        gshadow_text.into_bytes(),
    );
    generated
}

/// Carries out one script request on the account tables, as adduser would on a system
/// holding exactly these accounts: existing accounts are left alone.
fn create(request: &AccountRequest, passwd: &mut Vec<Vec<String>>, group: &mut Vec<Vec<String>>) {
    let id_of = |rows: &[Vec<String>], name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .and_then(|r| r[2].parse::<u32>().ok())
    };
    let free = |rows: &[Vec<String>], wanted: Option<u32>| -> Option<u32> {
        let used: BTreeSet<u32> = rows.iter().filter_map(|r| r[2].parse().ok()).collect();
        match wanted {
            Some(id) if !used.contains(&id) => Some(id),
            _ => SYSTEM_IDS.clone().find(|id| !used.contains(id)),
        }
    };
    let add_group = |group: &mut Vec<Vec<String>>, name: &str, gid: Option<u32>| {
        if let Some(existing) = id_of(group, name) {
            return Some(existing);
        }
        let gid = free(group, gid)?;
        group.push(vec![
            name.to_string(),
            "x".into(),
            gid.to_string(),
            String::new(),
        ]);
        Some(gid)
    };
    match request {
        AccountRequest::Group { name, gid } => {
            add_group(group, name, *gid);
        }
        AccountRequest::User {
            name,
            home,
            shell,
            gecos,
            uid,
            group: primary,
        } => {
            if passwd.iter().any(|u| &u[0] == name) {
                return;
            }
            let Some(uid) = free(passwd, *uid) else {
                return;
            };
            let gid = match primary {
                // adduser gives the new group the user's id when it is free.
                PrimaryGroup::Own => add_group(group, name, Some(uid)),
                PrimaryGroup::Named(g) => id_of(group, g),
                PrimaryGroup::NoGroup => None,
            };
            let gid = gid.unwrap_or_else(|| {
                let (name, id) = NOGROUP;
                add_group(group, name, Some(id)).unwrap_or(id)
            });
            passwd.push(vec![
                name.clone(),
                "x".into(),
                uid.to_string(),
                gid.to_string(),
                gecos.clone().unwrap_or_default(),
                home.clone().unwrap_or_else(|| "/nonexistent".into()),
                shell.clone().unwrap_or_else(|| "/usr/sbin/nologin".into()),
            ]);
        }
        AccountRequest::Member { user, group: name } => {
            if !passwd.iter().any(|u| &u[0] == user) {
                return;
            }
            let row = group.iter_mut().find(|g| &g[0] == name);
            if let Some(row) = row.filter(|r| !r[3].split(',').any(|m| m == user)) {
                if !row[3].is_empty() {
                    row[3].push(',');
                }
                row[3].push_str(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER_PASSWD: &str =
        "root:*:0:0:root:/root:/bin/bash\nwww-data:*:33:33:www-data:/var/www:/usr/sbin/nologin\n";
    const MASTER_GROUP: &str = "root:*:0:\nshadow:*:42:\nwww-data:*:33:\n";
    const HOST_PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\npostgres:x:104:110:PostgreSQL:/var/lib/postgresql:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n";
    const HOST_GROUP: &str = "root:x:0:\nnogroup:x:65534:\npostgres:x:110:\nssl-cert:x:109:postgres,alice\nalice:x:1000:\n";

    fn content(g: &Generated, path: &str) -> String {
        g.content(path)
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn masters_plus_needed_host_users_with_locked_passwords() {
        let sources = AccountSources {
            master_passwd: Some(MASTER_PASSWD),
            master_group: Some(MASTER_GROUP),
            host_passwd: HOST_PASSWD,
            host_group: HOST_GROUP,
        };
        let g = accounts(
            &sources,
            &set(&["sshd", "postgres", "nobody-here"]),
            &set(&["ssl-cert"]),
            &[],
        );
        assert_eq!(
            content(&g, "/etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\npostgres:x:104:110:PostgreSQL:/var/lib/postgresql:/bin/bash\n"
        );
        assert_eq!(
            content(&g, "/etc/group"),
            "root:x:0:\nshadow:x:42:\nwww-data:x:33:\nssl-cert:x:109:postgres\npostgres:x:110:\nnogroup:x:65534:\n"
        );
        let shadow = content(&g, "/etc/shadow");
        assert!(
            shadow.lines().all(|l| l.split(':').nth(1) == Some("*")),
            "{shadow}"
        );
        assert!(!shadow.contains("alice"));
        let entry = g.entries.iter().find(|e| e.path == "/etc/shadow").unwrap();
        assert_eq!(
            (entry.mode, entry.gid, entry.group.as_str()),
            (0o640, 42, "shadow")
        );
        assert_eq!(content(&g, "/etc/gshadow").lines().count(), 6);
        assert_eq!(group_id(MASTER_GROUP, "shadow"), Some(42));
        assert_eq!(group_id(MASTER_GROUP, "tty"), None);
    }

    #[test]
    fn without_base_passwd_only_root_and_needed() {
        let sources = AccountSources {
            master_passwd: None,
            master_group: None,
            host_passwd: HOST_PASSWD,
            host_group: HOST_GROUP,
        };
        let g = accounts(&sources, &set(&["sshd"]), &BTreeSet::new(), &[]);
        assert_eq!(
            content(&g, "/etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n"
        );
        assert_eq!(content(&g, "/etc/group"), "root:x:0:\nnogroup:x:65534:\n");
        let entry = g.entries.iter().find(|e| e.path == "/etc/gshadow").unwrap();
        assert_eq!((entry.gid, entry.group.as_str()), (0, "root"));
    }

    #[test]
    fn script_requests_are_read_as_the_tools_would() {
        let script = "#!/bin/sh\nif ! getent passwd sshd >/dev/null; then\n\tadduser --quiet --system --no-create-home \\\n\t  --home /run/sshd --shell /usr/sbin/nologin sshd\nfi\naddgroup --system --quiet --force-badname _ssh\ngroupadd -g 42 shadow || true\nadduser $quiet postgres ssl-cert\nadduser --quiet postgres ssl-cert\nadduser --system --group --gecos 'Debian-exim, mail' --home=/var/spool/exim4 Debian-exim # comment sshd\nuseradd -r -U -d /var/lib/redis -s /bin/false -c \"Redis server\" redis\nadduser --system --ingroup www-data --uid 777 fcgi; echo done\nadduser \"$USER\" staff\n";
        let requests = script_accounts(script);
        let user =
            |name: &str, home: &str, shell: Option<&str>, gecos: Option<&str>, uid, group| {
                AccountRequest::User {
                    name: name.into(),
                    home: Some(home.into()),
                    shell: shell.map(str::to_string),
                    gecos: gecos.map(str::to_string),
                    uid,
                    group,
                }
            };
        assert_eq!(
            requests,
            vec![
                user(
                    "sshd",
                    "/run/sshd",
                    Some("/usr/sbin/nologin"),
                    None,
                    None,
                    PrimaryGroup::NoGroup
                ),
                AccountRequest::Group {
                    name: "_ssh".into(),
                    gid: None
                },
                AccountRequest::Group {
                    name: "shadow".into(),
                    gid: Some(42)
                },
                AccountRequest::Member {
                    user: "postgres".into(),
                    group: "ssl-cert".into()
                },
                // `Debian-exim` is not a literal Debian name (upper case): not guessed at.
                user(
                    "redis",
                    "/var/lib/redis",
                    Some("/bin/false"),
                    Some("Redis server"),
                    None,
                    PrimaryGroup::Own
                ),
                AccountRequest::User {
                    name: "fcgi".into(),
                    home: None,
                    shell: None,
                    gecos: None,
                    uid: Some(777),
                    group: PrimaryGroup::Named("www-data".into()),
                },
            ]
        );
        assert_eq!(requests[5].names(), ["fcgi", "www-data"]);
    }

    #[test]
    fn absent_accounts_are_created_with_the_first_free_system_ids() {
        let sources = AccountSources {
            master_passwd: Some(MASTER_PASSWD),
            master_group: Some(MASTER_GROUP),
            host_passwd: "root:x:0:0:root:/root:/bin/bash\n",
            host_group: "root:x:0:\n",
        };
        let requests = script_accounts(
            "adduser --system --home /run/sshd --shell /usr/sbin/nologin sshd\n\
             useradd -r -U -c 'Redis server' redis\n\
             addgroup --system ssl-cert\n\
             adduser redis ssl-cert\n\
             adduser --system --ingroup www-data --uid 33 fcgi\n\
             adduser --system sshd\n",
        );
        let g = accounts(&sources, &BTreeSet::new(), &BTreeSet::new(), &requests);
        assert_eq!(
            content(&g, "/etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
             sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n\
             redis:x:101:101:Redis server:/nonexistent:/usr/sbin/nologin\n\
             fcgi:x:102:33::/nonexistent:/usr/sbin/nologin\n"
        );
        assert_eq!(
            content(&g, "/etc/group"),
            "root:x:0:\nshadow:x:42:\nwww-data:x:33:\nnogroup:x:65534:\nredis:x:101:\nssl-cert:x:100:redis\n"
        );
        assert!(content(&g, "/etc/shadow").contains("redis:*::0:99999:7:::\n"));
        // The same requests give the same files.
        let again = accounts(&sources, &BTreeSet::new(), &BTreeSet::new(), &requests);
        assert_eq!(content(&again, "/etc/passwd"), content(&g, "/etc/passwd"));
    }

    #[test]
    fn host_accounts_win_over_creation() {
        let sources = AccountSources {
            master_passwd: Some(MASTER_PASSWD),
            master_group: Some(MASTER_GROUP),
            host_passwd: HOST_PASSWD,
            host_group: HOST_GROUP,
        };
        let requests = script_accounts("adduser --system --home /run/sshd sshd\n");
        let g = accounts(&sources, &set(&["sshd"]), &BTreeSet::new(), &requests);
        assert!(
            content(&g, "/etc/passwd").contains("sshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n")
        );
        assert_eq!(content(&g, "/etc/passwd").matches("sshd").count(), 2);
    }
}
