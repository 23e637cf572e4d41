//! The accounts the packages' `sysusers.d` files declare, as requests the configure
//! stage makes with the tree's own tools before any scriptlet runs (`u` and `g` lines;
//! `m` and `r` lines are left to the tree's `systemd-sysusers`, when it has one).

use std::path::PathBuf;

use crate::compile::configure::{Ask, Asked};
use crate::lang::{Account, AccountKind, Location};

/// One `sysusers.d` file of the tree.
pub struct SysusersFile {
    /// Its path in the tree (`/usr/lib/sysusers.d/food.conf`).
    pub path: String,
    /// The package that ships it.
    pub package: String,
    /// Its text.
    pub text: String,
}

/// The accounts `files` declare, groups of a file before its users, in file order.
pub fn accounts(files: &[SysusersFile]) -> Vec<Asked> {
    let mut asked = Vec::new();
    for file in files {
        let mut users = Vec::new();
        for (n, line) in file.text.lines().enumerate() {
            let fields = words(line);
            let [kind, name, id, rest @ ..] = fields.as_slice() else {
                continue;
            };
            let location = Location {
                file: PathBuf::from(&file.path),
                line: n + 1,
                column: 1,
            };
            let origin = format!("{location} (package {})", file.package);
            let number = |text: &str| text.parse::<u32>().ok();
            let account = match kind.as_str() {
                "g" => Account {
                    name: name.clone(),
                    kind: AccountKind::Group,
                    id: number(id),
                    system: true,
                    location,
                },
                "u" => {
                    // `uid:gid` names the primary group too; a path id is left to the tools.
                    let (uid, group) = match id.split_once(':') {
                        Some((uid, group)) => (number(uid), Some(group.to_string())),
                        None => (number(id), None),
                    };
                    let given = |at: usize| {
                        rest.get(at)
                            .filter(|w| !w.is_empty() && w.as_str() != "-")
                            .cloned()
                    };
                    Account {
                        name: name.clone(),
                        kind: AccountKind::User {
                            group,
                            home: given(1),
                            shell: given(2),
                        },
                        id: uid,
                        system: true,
                        location,
                    }
                }
                _ => continue,
            };
            let request = Asked {
                ask: Ask::Account(account),
                origin,
            };
            if kind == "u" {
                users.push(request);
            } else {
                asked.push(request);
            }
        }
        asked.append(&mut users);
    }
    asked
}

/// The words of a `sysusers.d` line: blank-separated, a double-quoted word holding
/// blanks; nothing for a comment or an empty line.
fn words(line: &str) -> Vec<String> {
    let line = line.trim();
    if line.starts_with('#') {
        return Vec::new();
    }
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                word.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_of_a_file_become_requests_groups_first() {
        let file = SysusersFile {
            path: "/usr/lib/sysusers.d/food.conf".into(),
            package: "food".into(),
            text: "# food\nu food - \"Food daemon\" /var/lib/food /sbin/nologin\n\
                   g foodlog 960\nm food foodlog\nu helper 961:foodlog\n"
                .into(),
        };
        let asked = accounts(&[file]);
        let lines: Vec<String> = asked.iter().map(|a| a.ask.line()).collect();
        assert_eq!(
            lines,
            [
                "group foodlog 960 - - - 1",
                "user food - - /var/lib/food /sbin/nologin 1",
                "user helper 961 foodlog - - 1",
            ]
        );
        assert_eq!(
            asked[1].origin,
            "/usr/lib/sysusers.d/food.conf:2:1 (package food)"
        );
    }
}
