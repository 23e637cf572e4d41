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

    /// The line with the password field replaced: `x` in passwd and group, since the
    /// real (locked) password lives in the shadow files.
    fn with_password(&self, password: &str) -> String {
        let mut fields = self.fields.clone();
        fields[1] = password;
        fields.join(":")
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

/// The names a maintainer script passes to `adduser`, `useradd`, `addgroup` or
/// `groupadd`: every word of such a command that could be a user or group name. The
/// caller keeps only those its host actually has, which filters out option values.
pub fn users_named_by_script(script: &str) -> Vec<String> {
    let joined = script.replace("\\\n", " ");
    let mut names = Vec::new();
    for line in joined.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(start) = words
            .iter()
            .position(|w| matches!(*w, "adduser" | "useradd" | "addgroup" | "groupadd"))
        else {
            continue;
        };
        for word in &words[start + 1..] {
            if matches!(*word, "||" | "&&" | ";" | "|" | ">" | "2>&1") || word.starts_with('>') {
                break;
            }
            let word = word.trim_matches(['\'', '"', ';']);
            let plausible = word
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && word.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
                });
            if plausible && !names.iter().any(|n| n == word) {
                names.push(word.to_string());
            }
        }
    }
    names
}

/// Builds the four account files. `users` and `groups` are names the appliance needs
/// beyond the masters (file owners, users its packages' scripts create); each is taken
/// from the host's files when the host has it, with the host's ids, so the owners
/// recorded in the lock stay right. A user's primary group comes along.
pub fn accounts(
    sources: &AccountSources,
    users: &BTreeSet<String>,
    groups: &BTreeSet<String>,
) -> Generated {
    const ROOT_USER: &str = "root:x:0:0:root:/root:/bin/bash";
    const ROOT_GROUP: &str = "root:x:0:";
    let host_users = lines(sources.host_passwd, 7);
    let host_groups = lines(sources.host_group, 4);
    let mut passwd = lines(sources.master_passwd.unwrap_or(ROOT_USER), 7);
    let mut group = lines(sources.master_group.unwrap_or(ROOT_GROUP), 4);

    let mut extra_users: Vec<&Line> = host_users
        .iter()
        .filter(|u| users.contains(u.name()) && !passwd.iter().any(|p| p.name() == u.name()))
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
        .filter(|g| !group.iter().any(|m| m.name() == g.name()))
        .collect();
    extra_groups.sort_by_key(|g| (g.id(), g.name()));
    passwd.extend(extra_users.into_iter().map(|u| Line {
        fields: u.fields.clone(),
    }));
    group.extend(extra_groups.into_iter().map(|g| Line {
        fields: g.fields.clone(),
    }));

    let user_names: BTreeSet<&str> = passwd.iter().map(Line::name).collect();
    // Keep only members that exist in this appliance.
    let members = |g: &Line| -> String {
        g.fields[3]
            .split(',')
            .filter(|m| user_names.contains(m))
            .collect::<Vec<_>>()
            .join(",")
    };
    let text = |rows: Vec<String>| rows.into_iter().map(|r| r + "\n").collect::<String>();
    let passwd_text = text(passwd.iter().map(|u| u.with_password("x")).collect());
    let group_text = text(
        group
            .iter()
            .map(|g| format!("{}:x:{}:{}", g.name(), g.fields[2], members(g)))
            .collect(),
    );
    let shadow_text = text(
        passwd
            .iter()
            .map(|u| format!("{}:*::0:99999:7:::", u.name()))
            .collect(),
    );
    let gshadow_text = text(
        group
            .iter()
            .map(|g| format!("{}:*::{}", g.name(), members(g)))
            .collect(),
    );

    let shadow_gid = group.iter().find(|g| g.name() == "shadow").map(Line::id);
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
        let g = accounts(&sources, &set(&["sshd"]), &BTreeSet::new());
        assert_eq!(
            content(&g, "/etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n"
        );
        assert_eq!(content(&g, "/etc/group"), "root:x:0:\nnogroup:x:65534:\n");
        let entry = g.entries.iter().find(|e| e.path == "/etc/gshadow").unwrap();
        assert_eq!((entry.gid, entry.group.as_str()), (0, "root"));
    }

    #[test]
    fn names_in_maintainer_scripts() {
        let script = "#!/bin/sh\nif ! getent passwd sshd >/dev/null; then\n\tadduser --quiet --system --no-create-home \\\n\t  --home /run/sshd --shell /usr/sbin/nologin sshd\nfi\naddgroup --system --quiet --force-badname _ssh\ngroupadd -g 42 shadow || true\nadduser $quiet postgres ssl-cert\n";
        let names = users_named_by_script(script);
        for expected in ["sshd", "_ssh", "shadow", "postgres", "ssl-cert"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with('$') || n.starts_with('-')),
            "{names:?}"
        );
    }
}
