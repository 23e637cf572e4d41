//! update-alternatives state of an appliance: for each alternative the host manages,
//! the choices whose files are in the lock, the same selection as the host where it is
//! still there (else the highest priority, as auto mode would pick), and the links
//! `/usr/bin/awk -> /etc/alternatives/awk -> /usr/bin/mawk`.

use super::Generated;

/// One `var/lib/dpkg/alternatives/NAME` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    /// The alternative's name (`awk`).
    pub name: String,
    /// The link that points into `/etc/alternatives` (`/usr/bin/awk`).
    pub link: String,
    /// Slave alternatives: (name, link).
    pub slaves: Vec<(String, String)>,
    /// The choices.
    pub choices: Vec<Choice>,
}

/// One choice of an alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The file the master link leads to (`/usr/bin/mawk`).
    pub path: String,
    /// Its priority; auto mode picks the highest.
    pub priority: i64,
    /// One path per slave, `None` where this choice provides none.
    pub slave_paths: Vec<Option<String>>,
}

impl Alternative {
    /// Parses dpkg's administrative file (the format `update-alternatives` writes).
    pub fn parse(name: &str, text: &str) -> Result<Alternative, String> {
        let mut lines = text.lines();
        let mut next = |what: &str| lines.next().ok_or_else(|| format!("ends before {what}"));
        let _mode = next("the mode")?;
        let link = next("the link")?.to_string();
        let mut slaves = Vec::new();
        loop {
            let slave = next("the end of the slaves")?;
            if slave.is_empty() {
                break;
            }
            slaves.push((slave.to_string(), next("a slave link")?.to_string()));
        }
        let mut choices = Vec::new();
        loop {
            let path = match lines.next() {
                None | Some("") => break,
                Some(path) => path.to_string(),
            };
            let mut next = |what: &str| {
                lines
                    .next()
                    .ok_or_else(|| format!("ends before {what} of {path}"))
            };
            let priority = next("the priority")?
                .trim()
                .parse()
                .map_err(|_| format!("bad priority for {path}"))?;
            let mut slave_paths = Vec::new();
            for _ in &slaves {
                let p = next("a slave path")?;
                slave_paths.push((!p.is_empty()).then(|| p.to_string()));
            }
            choices.push(Choice {
                path,
                priority,
                slave_paths,
            });
        }
        Ok(Alternative {
            name: name.to_string(),
            link,
            slaves,
            choices,
        })
    }

    /// The alternatives a maintainer script installs (`update-alternatives --install
    /// LINK NAME PATH PRIORITY [--slave LINK NAME PATH]...`), one choice each, in script
    /// order. A command with a word that is not literal (`$x` in a loop) is skipped.
    pub fn from_script(script: &str) -> Vec<Alternative> {
        super::script_commands(script, &["update-alternatives"])
            .iter()
            .filter_map(|words| install_command(&words[1..]))
            .collect()
    }

    /// Adds the choices of `other` (the same alternative, from another package) that
    /// this one lacks, taking in slaves it does not know yet.
    pub fn merge(&mut self, other: &Alternative) {
        for (slave, link) in &other.slaves {
            if !self.slaves.iter().any(|(s, _)| s == slave) {
                self.slaves.push((slave.clone(), link.clone()));
                for choice in &mut self.choices {
                    choice.slave_paths.push(None);
                }
            }
        }
        for choice in &other.choices {
            if self.choices.iter().any(|c| c.path == choice.path) {
                continue;
            }
            let slave_paths = self
                .slaves
                .iter()
                .map(|(slave, _)| {
                    let at = other.slaves.iter().position(|(s, _)| s == slave)?;
                    choice.slave_paths.get(at).cloned().flatten()
                })
                .collect();
            self.choices.push(Choice {
                path: choice.path.clone(),
                priority: choice.priority,
                slave_paths,
            });
        }
    }

    fn render(&self, manual: bool) -> String {
        let mut text = format!(
            "{}\n{}\n",
            if manual { "manual" } else { "auto" },
            self.link
        );
        for (name, link) in &self.slaves {
            text += &format!("{name}\n{link}\n");
        }
        text += "\n";
        for choice in &self.choices {
            text += &format!("{}\n{}\n", choice.path, choice.priority);
            for p in &choice.slave_paths {
                text += p.as_deref().unwrap_or("");
                text += "\n";
            }
        }
        text += "\n";
        text
    }
}

/// The alternative of one `update-alternatives` argument list, if it is an `--install`
/// with literal paths.
fn install_command(args: &[String]) -> Option<Alternative> {
    let literal = |w: &String| !w.contains(['$', '`', '*']);
    let args: Vec<&String> = args
        .iter()
        .filter(|w| !matches!(w.as_str(), "--quiet" | "--force"))
        .collect();
    if !args.iter().all(|w| literal(w)) {
        return None;
    }
    let at = args.iter().position(|w| w.as_str() == "--install")?;
    let [link, name, path, priority, rest @ ..] = &args[at + 1..] else {
        return None;
    };
    let mut slaves = Vec::new();
    let mut slave_paths = Vec::new();
    let mut rest = rest;
    while let [flag, link, name, path, tail @ ..] = rest {
        if flag.as_str() != "--slave" {
            break;
        }
        slaves.push((name.to_string(), link.to_string()));
        slave_paths.push(Some(path.to_string()));
        rest = tail;
    }
    Some(Alternative {
        name: name.to_string(),
        link: link.to_string(),
        slaves,
        choices: vec![Choice {
            path: path.to_string(),
            priority: priority.parse().ok()?,
            slave_paths,
        }],
    })
}

/// The alternatives state for a tree. `host` holds each alternative with the host's
/// current selection (`/etc/alternatives/NAME`'s target); `present` says whether a path
/// is a file or link of the lock; `canonical` maps a path to where the lock keeps it
/// (merged /usr). Alternatives none of whose choices is present are left out.
pub fn alternatives(
    host: &[(Alternative, Option<String>)],
    present: &dyn Fn(&str) -> bool,
    canonical: &dyn Fn(&str) -> String,
) -> Generated {
    let mut generated = Generated::default();
    for (alternative, current) in host {
        let mut kept = alternative.clone();
        kept.choices.retain(|c| present(&canonical(&c.path)));
        let Some(best) = kept.choices.iter().max_by_key(|c| c.priority) else {
            continue;
        };
        let chosen = current
            .as_deref()
            .and_then(|cur| kept.choices.iter().find(|c| c.path == cur))
            .unwrap_or(best);
        let manual = chosen.path != best.path;
        let admin = format!("/etc/alternatives/{}", kept.name);
        generated.symlink(&admin, &chosen.path);
        generated.symlink(&canonical(&kept.link), &admin);
        for ((slave, link), path) in kept.slaves.iter().zip(&chosen.slave_paths) {
            if let Some(path) = path.as_deref().filter(|p| present(&canonical(p))) {
                let admin = format!("/etc/alternatives/{slave}");
                generated.symlink(&admin, path);
                generated.symlink(&canonical(link), &admin);
            }
        }
        let rendered = kept.render(manual);
        generated.root_file(
            &format!("/var/lib/dpkg/alternatives/{}", kept.name),
            rendered.into_bytes(),
        );
    }
    generated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::FileKind;

    const AWK: &str = "auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\nnawk\n/usr/bin/nawk\n\n/usr/bin/gawk\n10\n/usr/share/man/man1/gawk.1.gz\n/usr/bin/gawk\n/usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n/usr/bin/mawk\n\n";

    #[test]
    fn parses_and_renders_dpkg_format() {
        let awk = Alternative::parse("awk", AWK).unwrap();
        assert_eq!(awk.link, "/usr/bin/awk");
        assert_eq!(awk.slaves.len(), 2);
        assert_eq!(awk.choices.len(), 2);
        assert_eq!(
            awk.choices[1].slave_paths[1].as_deref(),
            Some("/usr/bin/mawk")
        );
        assert_eq!(awk.render(false), AWK);
        assert!(Alternative::parse("awk", "auto\n/usr/bin/awk\nnawk\n").is_err());
        assert!(Alternative::parse("awk", "auto\n/usr/bin/awk\n\n/usr/bin/x\nten\n\n").is_err());
    }

    #[test]
    fn script_installs_are_read_and_merged_into_the_host_alternative() {
        let script = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  update-alternatives --quiet --install /usr/bin/awk awk /usr/bin/gawk 10 \\\n    --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/gawk.1.gz \\\n    --slave /usr/bin/igawk igawk /usr/bin/igawk-real\nfi\nfor x in a b; do update-alternatives --install /usr/bin/$x $x /usr/bin/$x.real 5; done\nupdate-alternatives --remove awk /usr/bin/old\n";
        let found = Alternative::from_script(script);
        assert_eq!(found.len(), 1, "{found:?}");
        let gawk = &found[0];
        assert_eq!(
            (gawk.name.as_str(), gawk.link.as_str()),
            ("awk", "/usr/bin/awk")
        );
        assert_eq!(
            gawk.slaves[1],
            ("igawk".to_string(), "/usr/bin/igawk".to_string())
        );
        assert_eq!(gawk.choices[0].priority, 10);

        let mut awk = Alternative::parse("awk", AWK).unwrap();
        awk.choices.retain(|c| c.path == "/usr/bin/mawk");
        awk.merge(gawk);
        assert_eq!(awk.slaves.len(), 3);
        assert_eq!(awk.choices.len(), 2);
        assert_eq!(awk.choices[0].slave_paths.len(), 3);
        assert_eq!(awk.choices[0].slave_paths[2], None);
        assert_eq!(
            awk.choices[1].slave_paths,
            [
                Some("/usr/share/man/man1/gawk.1.gz".to_string()),
                None,
                Some("/usr/bin/igawk-real".to_string())
            ]
        );
        // Merging again adds nothing.
        let before = awk.clone();
        awk.merge(gawk);
        assert_eq!(awk, before);
    }

    #[test]
    fn keeps_present_choices_and_the_host_selection() {
        let awk = Alternative::parse("awk", AWK).unwrap();
        // gawk is not in the lock, man pages were excluded: mawk it is, in auto mode.
        let present = |p: &str| p == "/usr/bin/mawk";
        let same = |p: &str| p.to_string();
        let g = alternatives(
            &[(awk.clone(), Some("/usr/bin/gawk".into()))],
            &present,
            &same,
        );
        let links: Vec<(&str, &str)> = g
            .entries
            .iter()
            .filter(|e| e.kind == FileKind::Symlink)
            .map(|e| (e.path.as_str(), e.target.as_deref().unwrap()))
            .collect();
        assert_eq!(
            links,
            [
                ("/etc/alternatives/awk", "/usr/bin/mawk"),
                ("/usr/bin/awk", "/etc/alternatives/awk"),
                ("/etc/alternatives/nawk", "/usr/bin/mawk"),
                ("/usr/bin/nawk", "/etc/alternatives/nawk"),
            ]
        );
        let admin = String::from_utf8(g.blobs[0].clone()).unwrap();
        assert!(
            admin.starts_with("auto\n") && !admin.contains("gawk"),
            "{admin}"
        );

        // Both present, host chose the lower priority: manual mode, mawk kept.
        let both = |p: &str| p.ends_with("awk") && p.starts_with("/usr/bin/");
        let g = alternatives(&[(awk.clone(), Some("/usr/bin/mawk".into()))], &both, &same);
        assert_eq!(g.entries[0].target.as_deref(), Some("/usr/bin/mawk"));
        assert!(
            String::from_utf8(g.blobs[0].clone())
                .unwrap()
                .starts_with("manual\n")
        );

        // Nothing present: nothing generated.
        let none = |_: &str| false;
        assert!(
            alternatives(&[(awk, None)], &none, &same)
                .entries
                .is_empty()
        );
    }
}
