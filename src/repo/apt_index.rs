//! The repository's index of apt's lists, so that a compile reads only the stanzas its
//! groups can reach instead of parsing every list (a Debian archive is ~64k packages):
//! each list is kept by its identity and indexed again only when that changes, each
//! stanza by name, with the names it needs and provides and where it lies in its list.
//! The stanzas' text stays in the lists: a compile reads back the ones it reaches,
//! from a list whose identity is still the indexed one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior, params};

use super::{RepoError, Repository, SqlContext};
use crate::materialise::stamp::Identity;
use crate::source::dpkg::apt::{self, AptError, AptLists, IndexedStanza, Span};
use crate::source::dpkg::{DpkgError, Package};

/// Why the index of apt's lists could not be brought up to date or read.
#[derive(Debug, thiserror::Error)]
pub enum AptIndexError {
    /// The repository could not be read or written.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A list could not be read.
    #[error(transparent)]
    Apt(#[from] AptError),
}

/// The indexes made after a rebuild's inserts: by name (with whether refused, so the
/// names for suggestions are read from the index alone), by provided name, and the few
/// essential and refused stanzas.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS apt_stanzas_by_name ON apt_stanzas(name, refused);
CREATE INDEX IF NOT EXISTS apt_stanzas_essential ON apt_stanzas(name) WHERE essential = 1;
CREATE INDEX IF NOT EXISTS apt_stanzas_refused ON apt_stanzas(list, seq) WHERE refused = 1;
CREATE INDEX IF NOT EXISTS apt_provides_by_name ON apt_provides(name);
";

/// Dropped before a rebuild inserts, so that SQLite builds them once from sorted rows.
const DROP_INDEXES: &str = "
DROP INDEX IF EXISTS apt_stanzas_by_name;
DROP INDEX IF EXISTS apt_stanzas_essential;
DROP INDEX IF EXISTS apt_stanzas_refused;
DROP INDEX IF EXISTS apt_provides_by_name;
";

/// What a compile reads of apt's lists through the index.
#[derive(Debug, Default)]
pub struct IndexedLists {
    /// The stanzas the compile can reach, parsed as [`AptLists::read`] would, in list
    /// then file order; its `refused` are only those of reachable names.
    pub lists: AptLists,
    /// How many packages all the lists hold.
    pub packages: usize,
    /// How many stanzas of all the lists dpkg would refuse.
    pub refused: usize,
    /// The first of those, for the warning that tells of them.
    pub first_refused: Option<DpkgError>,
}

/// A list as the index keeps it.
struct Listed {
    id: i64,
    path: PathBuf,
    /// The identity of the file that was indexed.
    identity: Identity,
}

impl Listed {
    /// The text of the stanzas at `spans`, in file order, read back from the list,
    /// which must still be the file that was indexed.
    fn read_back(&self, spans: &[Span]) -> Result<Vec<String>, AptIndexError> {
        let io = |source| AptError::Io {
            path: self.path.clone(),
            source,
        };
        let file = File::open(&self.path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        // apt replaces a list by renaming a new file over it, which changes its identity.
        let changed = || {
            io(std::io::Error::other(
                "apt's list changed while this compile read it (apt-get update?): compile again",
            ))
        };
        if !Identity::from(&meta).same_object(&self.identity) {
            return Err(changed().into());
        }
        apt::read_stanzas(file, &self.path, spans).map_err(|e| match e {
            AptError::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                changed().into()
            }
            other => other.into(),
        })
    }
}

impl Repository {
    /// apt's lists under `sysroot` as far as a compile can need them: the stanzas of
    /// every name reachable from `seeds` (the names the groups ask for or remove), from
    /// the essential packages, and through `Pre-Depends`, `Depends` (every alternative)
    /// and `Provides` of reachable stanzas and of the `local` packages (installed and
    /// pool). The index is first brought up to date with the lists.
    pub fn apt_lists(
        &mut self,
        sysroot: &Path,
        seeds: impl IntoIterator<Item = String>,
        local: &[&Package],
    ) -> Result<IndexedLists, AptIndexError> {
        let apt::ListFiles {
            indexes,
            compressed,
        } = apt::ListFiles::find(sysroot)?;
        let listed = self.refresh_apt_index(&indexes)?;
        let reached = self.reachable(&listed, seeds, local)?;
        let path = &self.path;
        let conn = &self.conn;
        let mut indexed = IndexedLists {
            lists: AptLists {
                compressed,
                ..AptLists::default()
            },
            ..IndexedLists::default()
        };
        let mut read = conn
            .prepare_cached(SPAN)
            .doing(path, || "reading the index of apt's lists".into())?;
        for (position, list) in listed.iter().enumerate() {
            let security = apt::is_security(&list.path);
            let spans = (reached.iter().filter(|(p, _)| *p == position))
                .map(|&(_, seq)| read.query_row(params![list.id, seq], span))
                .collect::<rusqlite::Result<Vec<Span>>>()
                .doing(path, || "reading the index of apt's lists".into())?;
            if spans.is_empty() {
                continue;
            }
            for (span, text) in spans.iter().zip(list.read_back(&spans)?) {
                match apt::indexed_entry(span.first_line, &text, &list.path, security) {
                    Ok(package) => indexed.lists.packages.push(package),
                    Err(refused) => indexed.lists.refused.push(refused),
                }
            }
        }
        let (packages, refused): (usize, usize) = conn
            .query_row(
                "SELECT coalesce(sum(packages), 0), coalesce(sum(refused), 0) FROM apt_lists",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .doing(path, || "counting the index of apt's lists".into())?;
        indexed.packages = packages;
        indexed.refused = refused;
        indexed.first_refused = first_refused(conn, path, &listed)?;
        Ok(indexed)
    }

    /// Every package name and provided name of apt's lists as last indexed (refused
    /// stanzas aside): what an unknown name is compared with for suggestions.
    pub fn apt_names(&self) -> Result<Vec<String>, RepoError> {
        let doing = || "reading the names of apt's lists".to_string();
        let mut stmt = (self.conn)
            .prepare(
                "SELECT DISTINCT name FROM apt_stanzas WHERE refused = 0 \
                 UNION SELECT DISTINCT name FROM apt_provides",
            )
            .doing(&self.path, doing)?;
        let rows = stmt
            .query_map([], |row| row.get(0))
            .doing(&self.path, doing)?;
        rows.collect::<rusqlite::Result<_>>()
            .doing(&self.path, doing)
    }

    /// Indexes again the lists whose identity changed and forgets those gone, in one
    /// transaction; returns every list of `indexes`, in their order.
    fn refresh_apt_index(&mut self, indexes: &[PathBuf]) -> Result<Vec<Listed>, AptIndexError> {
        let path = self.path.clone();
        let doing = || "indexing apt's lists".to_string();
        let tx = (self.conn)
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .doing(&path, doing)?;
        let mut known: HashMap<Vec<u8>, (i64, Identity)> = HashMap::new();
        {
            let mut stmt = tx
                .prepare("SELECT id, path, dev, ino, size, mtime, mtime_nsec FROM apt_lists")
                .doing(&path, doing)?;
            let rows = stmt
                .query_map([], |row| {
                    let identity = Identity {
                        dev: row.get::<_, i64>(2)? as u64,
                        ino: row.get::<_, i64>(3)? as u64,
                        size: row.get::<_, i64>(4)? as u64,
                        mtime: row.get(5)?,
                        mtime_nsec: row.get(6)?,
                        ..Identity::default()
                    };
                    Ok((row.get::<_, Vec<u8>>(1)?, (row.get::<_, i64>(0)?, identity)))
                })
                .doing(&path, doing)?;
            for row in rows {
                let (list, entry) = row.doing(&path, doing)?;
                known.insert(list, entry);
            }
        }
        let mut listed = Vec::with_capacity(indexes.len());
        let mut build = Vec::new();
        for list in indexes {
            let meta = fs::metadata(list).map_err(|source| AptError::Io {
                path: list.clone(),
                source,
            })?;
            let now = Identity::from(&meta);
            match known.remove(list.as_os_str().as_bytes()) {
                Some((id, then)) if then.same_object(&now) => listed.push(Listed {
                    id,
                    path: list.clone(),
                    identity: then,
                }),
                gone => {
                    known.extend(gone.map(|entry| (list.as_os_str().as_bytes().to_vec(), entry)));
                    build.push(listed.len());
                    listed.push(Listed {
                        id: 0,
                        path: list.clone(),
                        identity: now,
                    });
                }
            }
        }
        if known.is_empty() && build.is_empty() {
            return Ok(listed);
        }
        tx.execute_batch(DROP_INDEXES).doing_on(&tx, &path, doing)?;
        for (id, _) in known.values() {
            for table in [
                "DELETE FROM apt_provides WHERE list = ?1",
                "DELETE FROM apt_stanzas WHERE list = ?1",
                "DELETE FROM apt_lists WHERE id = ?1",
            ] {
                tx.execute(table, [id]).doing_on(&tx, &path, doing)?;
            }
        }
        for position in build {
            insert_list(&tx, &path, &mut listed[position])?;
        }
        tx.execute_batch(INDEXES).doing_on(&tx, &path, doing)?;
        tx.commit().doing_on(&self.conn, &path, doing)?;
        Ok(listed)
    }

    /// The (position in `listed`, seq) of every stanza a compile asking for `seeds`
    /// can reach, sorted.
    fn reachable(
        &self,
        listed: &[Listed],
        seeds: impl IntoIterator<Item = String>,
        local: &[&Package],
    ) -> Result<Vec<(usize, i64)>, RepoError> {
        let path = &self.path;
        let doing = || "following dependencies in the index of apt's lists".to_string();
        let mut local_by_name: HashMap<&str, Vec<&Package>> = HashMap::new();
        for p in local {
            local_by_name.entry(&p.name).or_default().push(p);
            for provide in &p.provides {
                local_by_name.entry(&provide.name).or_default().push(p);
            }
        }
        let mut names: HashSet<String> = seeds.into_iter().collect();
        names.extend(local.iter().filter(|p| p.essential).map(|p| p.name.clone()));
        {
            let mut stmt = (self.conn)
                .prepare("SELECT DISTINCT name FROM apt_stanzas WHERE essential = 1")
                .doing(path, doing)?;
            let rows = stmt.query_map([], |row| row.get(0)).doing(path, doing)?;
            for name in rows {
                names.insert(name.doing(path, doing)?);
            }
        }
        let mut named = (self.conn)
            .prepare_cached(
                "SELECT list, seq FROM apt_stanzas WHERE name = ?1 \
                 UNION SELECT list, seq FROM apt_provides WHERE name = ?1",
            )
            .doing(path, doing)?;
        let mut needs = (self.conn)
            .prepare_cached("SELECT needs FROM apt_stanzas WHERE list = ?1 AND seq = ?2")
            .doing(path, doing)?;
        let mut frontier: Vec<String> = names.iter().cloned().collect();
        let mut found: BTreeSet<(i64, i64)> = BTreeSet::new();
        while let Some(name) = frontier.pop() {
            let mut next: Vec<String> = (local_by_name.get(name.as_str()).into_iter().flatten())
                .flat_map(|p| p.pre_depends.iter().chain(&p.depends).flatten())
                .map(|r| r.name.clone())
                .collect();
            let keys: Vec<(i64, i64)> = named
                .query_map([&name], |row| Ok((row.get(0)?, row.get(1)?)))
                .doing(path, doing)?
                .collect::<rusqlite::Result<_>>()
                .doing(path, doing)?;
            for key in keys {
                if found.insert(key) {
                    let needed: String = needs
                        .query_row(params![key.0, key.1], |row| row.get(0))
                        .doing(path, doing)?;
                    next.extend(needed.split_whitespace().map(str::to_string));
                }
            }
            for name in next {
                if names.insert(name.clone()) {
                    frontier.push(name);
                }
            }
        }
        let position: HashMap<i64, usize> = (listed.iter().enumerate())
            .map(|(i, l)| (l.id, i))
            .collect();
        let mut reached: Vec<(usize, i64)> = (found.into_iter())
            .filter_map(|(list, seq)| Some((*position.get(&list)?, seq)))
            .collect();
        reached.sort_unstable();
        Ok(reached)
    }
}

/// Adds `list` and its stanzas to the index (within the caller's transaction), in
/// (list, seq) order so every insert appends, and sets its id and the identity of the
/// file read.
fn insert_list(conn: &Connection, repo: &Path, list: &mut Listed) -> Result<(), AptIndexError> {
    let doing = || format!("indexing {}", list.path.display());
    let io = |source| AptError::Io {
        path: list.path.clone(),
        source,
    };
    let file = File::open(&list.path).map_err(io)?;
    list.identity = Identity::from(&file.metadata().map_err(io)?);
    let identity = &list.identity;
    conn.execute(
        "INSERT INTO apt_lists (path, dev, ino, size, mtime, mtime_nsec) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            list.path.as_os_str().as_bytes(),
            identity.dev as i64,
            identity.ino as i64,
            identity.size as i64,
            identity.mtime,
            identity.mtime_nsec
        ],
    )
    .doing_on(conn, repo, doing)?;
    let id = conn.last_insert_rowid();
    let mut stanza = conn
        .prepare_cached(
            "INSERT INTO apt_stanzas (list, seq, name, essential, refused, first_line, start, length, needs) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .doing(repo, doing)?;
    let mut provided = conn
        .prepare_cached("INSERT INTO apt_provides (list, seq, name) VALUES (?1, ?2, ?3)")
        .doing(repo, doing)?;
    let (mut seq, mut packages, mut refused) = (0i64, 0i64, 0i64);
    apt::index_stanzas(
        file,
        &list.path,
        |rows: Vec<IndexedStanza>| -> Result<(), AptIndexError> {
            for row in rows {
                stanza
                    .execute(params![
                        id,
                        seq,
                        row.name,
                        row.essential,
                        row.refused,
                        row.span.first_line as i64,
                        row.span.start as i64,
                        row.span.length as i64,
                        row.needs.join(" ")
                    ])
                    .doing_on(conn, repo, doing)?;
                for name in &row.provides {
                    provided
                        .execute(params![id, seq, name])
                        .doing_on(conn, repo, doing)?;
                }
                if row.refused {
                    refused += 1;
                } else {
                    packages += 1;
                }
                seq += 1;
            }
            Ok(())
        },
    )?;
    conn.execute(
        "UPDATE apt_lists SET packages = ?2, refused = ?3 WHERE id = ?1",
        params![id, packages, refused],
    )
    .doing_on(conn, repo, doing)?;
    list.id = id;
    Ok(())
}

/// Where a stanza lies in its list, by (list, seq).
const SPAN: &str = "SELECT first_line, start, length FROM apt_stanzas WHERE list = ?1 AND seq = ?2";

/// A [`Span`] from a row of `first_line, start, length`.
fn span(row: &rusqlite::Row<'_>) -> rusqlite::Result<Span> {
    Ok(Span {
        first_line: row.get::<_, i64>(0)? as u64,
        start: row.get::<_, i64>(1)? as u64,
        length: row.get::<_, i64>(2)? as u64,
    })
}

/// The first refused stanza of the lists, in their order, parsed again for its error.
fn first_refused(
    conn: &Connection,
    repo: &Path,
    listed: &[Listed],
) -> Result<Option<DpkgError>, AptIndexError> {
    let doing = || "reading the index of apt's lists".to_string();
    let mut stmt = conn
        .prepare_cached(
            "SELECT first_line, start, length FROM apt_stanzas \
             WHERE list = ?1 AND refused = 1 ORDER BY seq LIMIT 1",
        )
        .doing(repo, doing)?;
    for list in listed {
        let mut rows = stmt.query([list.id]).doing(repo, doing)?;
        if let Some(row) = rows.next().doing(repo, doing)? {
            let span = span(row).doing(repo, doing)?;
            let text = list.read_back(&[span])?.concat();
            return Ok(apt::indexed_entry(span.first_line, &text, &list.path, false).err());
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Reason;
    use crate::resolve::{self, Request, Universe, Wanted};

    const LIST: &str = "var/lib/apt/lists/mirror_dists_bookworm_main_binary-amd64_Packages";
    const OTHER: &str = "var/lib/apt/lists/other_dists_x_main_binary-amd64_Packages";

    /// An index stanza with `extra` fields (relations), an archive of its own and a
    /// description the index need not keep.
    fn stanza(name: &str, version: &str, extra: &str) -> String {
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n{extra}\
             Description: {name}\n a long description\nFilename: pool/{name}.deb\n\
             Size: 1\nSHA256: {}\n",
            "ab".repeat(32)
        )
    }

    /// A universe with an essential package, a virtual name with two providers,
    /// alternatives, a conflict, a refused stanza and packages nothing reaches.
    fn main_list() -> String {
        [
            stanza("base-files", "12", "Essential: yes\nPre-Depends: awk\n"),
            stanza("mawk", "1.3", "Provides: awk\n"),
            stanza("gawk", "5.2", "Provides: awk\nDepends: libmpfr6\n"),
            stanza("libmpfr6", "4.2", ""),
            stanza(
                "web",
                "2",
                "Depends: httpd | nginx (>= 1.22),\n libssl3\nBreaks: old\n",
            ),
            stanza("web", "1", "Depends: libssl1\n"),
            stanza("nginx", "1.22", "Depends: libpcre\n"),
            stanza("libpcre", "8", ""),
            stanza("libssl3", "3.0", ""),
            stanza("libssl1", "1.1", ""),
            stanza("unrelated", "1", "Depends: libfar\n"),
            stanza("libfar", "1", ""),
            "Package: broken\nVersion: not a version\nArchitecture: amd64\n".to_string(),
        ]
        .join("\n")
    }

    fn write(root: &Path, list: &str, text: &str) {
        let path = root.join(list);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn repo(dir: &Path) -> Repository {
        Repository::open(&dir.join("store/repo.sqlite")).unwrap()
    }

    fn names(lists: &AptLists) -> Vec<String> {
        (lists.packages.iter())
            .map(|p| format!("{}={}", p.package.name, p.package.version))
            .collect()
    }

    /// Every list id and row count, to tell which lists were indexed again.
    fn rows(repo: &Repository) -> Vec<(i64, i64)> {
        let mut stmt = (repo.conn)
            .prepare("SELECT list, count(*) FROM apt_stanzas GROUP BY list ORDER BY list")
            .unwrap();
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)));
        rows.unwrap().map(Result::unwrap).collect()
    }

    fn request(names: &[&str]) -> Request {
        Request {
            wanted: (names.iter())
                .map(|name| Wanted {
                    name: name.to_string(),
                    constraint: None,
                    reason: Reason::Named {
                        group: "g".into(),
                        via: Vec::new(),
                    },
                    root: "g".into(),
                })
                .collect(),
            essential: true,
            ..Request::default()
        }
    }

    /// What resolving `wanted` over `lists` chooses, or why it fails.
    fn resolved(
        lists: &AptLists,
        suggest: &dyn Fn() -> Vec<String>,
        wanted: &[&str],
    ) -> Result<Vec<String>, String> {
        let refused = (lists.refused_packages()).map(|(name, why)| (name, why.to_string()));
        let universe = Universe::new(lists.packages.iter().map(|p| &p.package), "amd64")
            .refusing(refused)
            .suggesting(suggest);
        let resolution =
            resolve::resolve(&universe, &request(wanted)).map_err(|e| e.to_string())?;
        Ok((resolution.chosen.iter())
            .map(|c| {
                let p = universe.packages()[c.index];
                format!("{}={} {:?}", p.name, p.version, c.reason)
            })
            .collect())
    }

    #[test]
    fn the_reachable_part_resolves_as_the_whole_lists_do() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), LIST, &main_list());
        let full = AptLists::read(dir.path()).unwrap();
        let mut repo = repo(dir.path());
        for wanted in [
            &["web"][..],
            &["nginx", "libssl1"],
            &["weeb"],
            &["broken"],
            &[],
        ] {
            let seeds = wanted.iter().map(|s| s.to_string());
            let part = repo.apt_lists(dir.path(), seeds, &[]).unwrap();
            assert_eq!(
                resolved(&part.lists, &|| repo.apt_names().unwrap(), wanted),
                resolved(&full, &Vec::new, wanted),
                "{wanted:?}"
            );
        }
        let part = repo
            .apt_lists(dir.path(), ["web".to_string()], &[])
            .unwrap();
        assert_eq!(
            names(&part.lists),
            [
                "base-files=12",
                "mawk=1.3",
                "gawk=5.2",
                "libmpfr6=4.2",
                "web=2",
                "web=1",
                "nginx=1.22",
                "libpcre=8",
                "libssl3=3.0",
                "libssl1=1.1"
            ],
            "only what `web` and the essential packages reach, in file order"
        );
        assert_eq!((part.packages, part.refused), (12, 1));
        let suggested =
            resolved(&part.lists, &|| repo.apt_names().unwrap(), &["weeb"]).unwrap_err();
        assert!(suggested.contains("web"), "{suggested}");
    }

    #[test]
    fn a_local_package_s_dependencies_are_reached() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), LIST, &main_list());
        let mut installed = Package::bare("site", "1", "amd64", crate::source::Origin::Installed);
        installed.depends = vec![vec![crate::source::dpkg::Relation {
            name: "unrelated".into(),
            arch: None,
            constraint: None,
        }]];
        let part = repo(dir.path())
            .apt_lists(dir.path(), ["site".to_string()], &[&installed])
            .unwrap();
        let reached = names(&part.lists);
        assert!(reached.contains(&"libfar=1".to_string()), "{reached:?}");
    }

    #[test]
    fn refused_stanzas_keep_their_error_naming_list_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), LIST, &main_list());
        let full = AptLists::read(dir.path()).unwrap();
        let part = repo(dir.path())
            .apt_lists(dir.path(), ["broken".to_string()], &[])
            .unwrap();
        let full: Vec<String> = full.refused.iter().map(ToString::to_string).collect();
        let part_refused: Vec<String> =
            part.lists.refused.iter().map(ToString::to_string).collect();
        assert_eq!(part_refused, full);
        assert_eq!(
            part.first_refused.map(|e| e.to_string()),
            full.first().cloned()
        );
        let line = main_list()
            .lines()
            .position(|l| l == "Version: not a version")
            .unwrap()
            + 1;
        assert!(
            full[0].contains(&format!("{LIST}:{line}: package broken: Version")),
            "{}",
            full[0]
        );
    }

    #[test]
    fn a_list_is_indexed_again_only_when_it_changed_and_forgotten_when_gone() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), LIST, &main_list());
        write(dir.path(), OTHER, &stanza("web", "3", ""));
        let mut repo = repo(dir.path());
        let seeds = || ["web".to_string()];
        let first = repo.apt_lists(dir.path(), seeds(), &[]).unwrap();
        assert_eq!(names(&first.lists).last().unwrap(), "web=3");
        let indexed = rows(&repo);
        assert_eq!(indexed.len(), 2);
        // Marks the index's count: read back as marked, it was not indexed again.
        (repo.conn)
            .execute("UPDATE apt_lists SET packages = packages + 100", [])
            .unwrap();
        let warm = repo.apt_lists(dir.path(), seeds(), &[]).unwrap();
        assert_eq!(names(&warm.lists).last().unwrap(), "web=3");
        assert_eq!(
            warm.packages,
            first.packages + 200,
            "unchanged lists are not indexed again"
        );
        assert_eq!(rows(&repo), indexed);

        write(dir.path(), OTHER, &stanza("web", "4", ""));
        let changed = repo.apt_lists(dir.path(), seeds(), &[]).unwrap();
        assert_eq!(names(&changed.lists).last().unwrap(), "web=4");
        let now = rows(&repo);
        assert_eq!(now[0], indexed[0], "the unchanged list is kept");

        fs::remove_file(dir.path().join(LIST)).unwrap();
        let gone = repo.apt_lists(dir.path(), seeds(), &[]).unwrap();
        assert_eq!(names(&gone.lists), ["web=4"]);
        assert_eq!(
            rows(&repo),
            [now[1]],
            "the vanished list's rows are dropped"
        );
        let lists: i64 = (repo.conn)
            .query_row("SELECT count(*) FROM apt_lists", [], |row| row.get(0))
            .unwrap();
        assert_eq!(lists, 1);
    }

    /// A list longer than a chunk of the index build, with CRLF line ends and a refused
    /// stanza in its second chunk, kept compressed as apt keeps lists: what is read
    /// back is what the full read gives, line numbers included.
    #[test]
    fn stanzas_past_the_first_chunk_are_read_back_exactly() {
        let filler: Vec<String> = (0..super::apt::INDEX_CHUNK + 500)
            .map(|i| stanza(&format!("filler{i}"), "1", "Depends: web\n"))
            .collect();
        let text = format!(
            "{}\n{}\n{}",
            filler.join("\n"),
            main_list(),
            stanza("tail", "1", "Depends: filler7\n")
        )
        .replace('\n', "\r\n");
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let path = dir.path().join(format!("{LIST}.gz"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, gz).unwrap();
        let full = AptLists::read(dir.path()).unwrap();
        let part = repo(dir.path())
            .apt_lists(dir.path(), ["tail".to_string(), "broken".to_string()], &[])
            .unwrap();
        let read: Vec<&str> = (part.lists.packages.iter())
            .map(|p| p.package.name.as_str())
            .collect();
        assert!(read.contains(&"tail") && read.contains(&"filler7") && read.contains(&"web"));
        for package in &part.lists.packages {
            assert!(full.packages.contains(package), "{}", package.package.name);
        }
        let refused = |lists: &AptLists| -> Vec<String> {
            lists.refused.iter().map(ToString::to_string).collect()
        };
        assert_eq!(refused(&part.lists), refused(&full));
        let line = text
            .split("\r\n")
            .position(|l| l == "Version: not a version")
            .unwrap()
            + 1;
        assert!(
            line > super::apt::INDEX_CHUNK * 5,
            "the refused stanza is past a chunk"
        );
        assert!(
            refused(&full)[0].contains(&format!(":{line}: package broken")),
            "{:?}",
            refused(&full)
        );
    }

    /// A list replaced after it was indexed is not read back at the old offsets.
    #[test]
    fn a_list_replaced_after_indexing_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), LIST, &main_list());
        let mut repo = repo(dir.path());
        let path = dir.path().join(LIST);
        let listed = repo.refresh_apt_index(std::slice::from_ref(&path)).unwrap();
        let spans: Vec<Span> = (repo
            .conn
            .prepare("SELECT first_line, start, length FROM apt_stanzas ORDER BY seq"))
        .unwrap()
        .query_map([], span)
        .unwrap()
        .map(Result::unwrap)
        .collect();
        assert_eq!(
            listed[0].read_back(&spans[..1]).unwrap()[0],
            stanza("base-files", "12", "Essential: yes\nPre-Depends: awk\n").trim_end()
        );
        // As apt replaces it: a new file renamed over the old.
        let new = dir.path().join("new");
        fs::write(&new, format!("{}\n", stanza("other", "1", ""))).unwrap();
        fs::rename(&new, &path).unwrap();
        let err = listed[0].read_back(&spans).unwrap_err().to_string();
        assert!(
            err.contains(LIST) && err.contains("changed while this compile read it"),
            "{err}"
        );
    }

    /// The host's own lists, when it has any: the part a compile of the bundled groups
    /// reads resolves exactly as the whole lists do.
    #[test]
    fn the_host_s_lists_resolve_the_same_through_the_index() {
        let host = Path::new("/");
        let full = AptLists::read(host).unwrap();
        if full.is_empty() {
            eprintln!("the host has no apt lists: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut repo = repo(dir.path());
        for wanted in [
            &["base-files", "bash", "coreutils", "dpkg", "libc-bin"][..],
            &["nginx", "openssh-server", "systemd", "ifupdown"],
            &["apache2", "default-mta", "python3"],
        ] {
            let seeds = wanted.iter().map(|s| s.to_string());
            let part = repo.apt_lists(host, seeds, &[]).unwrap();
            assert!(part.lists.packages.len() < full.packages.len() / 10);
            assert_eq!(
                resolved(&part.lists, &|| repo.apt_names().unwrap(), wanted),
                resolved(&full, &Vec::new, wanted),
                "{wanted:?}"
            );
        }
    }
}
