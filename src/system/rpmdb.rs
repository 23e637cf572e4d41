//! `var/lib/rpm/rpmdb.sqlite`: the rpm database of an RPM appliance, holding exactly the
//! locked packages' headers with every index rpm 4.18's sqlite backend keeps, so `rpm -qa`,
//! `-qf`, `--whatprovides`, `-V` and a later `rpm -i` work on the tree.
//!
//! The schema, the index keys and the header layout are rpm's own (`lib/backend/sqlite.c`,
//! `tag2index` in `lib/rpmdb.c`, `dbAdd` in `lib/psm.c`), so rpm cannot tell the file from one
//! it wrote, except that it is in rollback-journal mode (rpm switches it to WAL on its first
//! write) and carries no `sqlite_stat1` (rpm's `PRAGMA optimize` adds it then).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use rpm::{Header, IndexData, IndexTag};
use rusqlite::Connection;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};

use crate::source::rpm::{HEADER_MAGIC, RpmHeader};

/// Why an rpm database or an installed header could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RpmdbError {
    /// The database file exists already: the writer only fills a fresh staging tree.
    #[error("{}: refusing to overwrite an existing rpm database", path.display())]
    Exists {
        /// The database file.
        path: PathBuf,
    },
    /// One of the headers given to [`write_rpmdb`] is not one rpm could store.
    #[error("{}: header {index}: {reason}", path.display())]
    Header {
        /// The database file.
        path: PathBuf,
        /// Its position in the list (0 is hnum 1).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The header given to [`installed_blob`] is not an archive's main header.
    #[error("package header: {0}")]
    Archive(String),
    /// The database file could not be created.
    #[error("{}: creating: {source}", path.display())]
    Create {
        /// The database file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// Writing the database failed.
    #[error("{}: {doing}: {source}", path.display())]
    Write {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        doing: &'static str,
        /// SQLite's error (I/O errors included).
        source: rusqlite::Error,
    },
}

/// `RPMSENSE_*` bits of `isTransientReq`: a requirement only installing needs (`%pre`,
/// `%post`, `rpmlib()`, keyring, pretrans, posttrans) that rpm leaves out of `Requirename`.
const INSTALL_ONLY: u32 = (1 << 9) | (1 << 10) | (1 << 24) | (1 << 26) | (1 << 7) | (1 << 5);
/// `%preun`/`%postun` requirements: kept, since erasing needs them.
const ERASE_ONLY: u32 = (1 << 11) | (1 << 12);
/// `RPMSENSE_META`: kept too.
const META: u32 = 1 << 29;

/// One of rpm's index tables.
struct Index {
    /// The table's name.
    table: &'static str,
    /// The tag whose values are its keys.
    tag: IndexTag,
    /// Keys are strings (`TEXT`, indexed by key); otherwise bytes (`BLOB`, no index).
    text: bool,
    /// The tag holds a list (an index on `hnum` too).
    array: bool,
}

const fn index(table: &'static str, tag: IndexTag, text: bool, array: bool) -> Index {
    Index {
        table,
        tag,
        text,
        array,
    }
}

/// rpm 4.18's index tables, in the order it creates and fills them (`dbiTags`).
const INDEXES: [Index; 18] = [
    index("Name", IndexTag::RPMTAG_NAME, true, false),
    index("Basenames", IndexTag::RPMTAG_BASENAMES, true, true),
    index("Group", IndexTag::RPMTAG_GROUP, true, false),
    index("Requirename", IndexTag::RPMTAG_REQUIRENAME, true, true),
    index("Providename", IndexTag::RPMTAG_PROVIDENAME, true, true),
    index("Conflictname", IndexTag::RPMTAG_CONFLICTNAME, true, true),
    index("Obsoletename", IndexTag::RPMTAG_OBSOLETENAME, true, true),
    index("Triggername", IndexTag::RPMTAG_TRIGGERNAME, true, true),
    index("Dirnames", IndexTag::RPMTAG_DIRNAMES, true, true),
    index("Installtid", IndexTag::RPMTAG_INSTALLTID, false, false),
    index("Sigmd5", IndexTag::RPMTAG_SIGMD5, false, false),
    index("Sha1header", IndexTag::RPMTAG_SHA1HEADER, true, false),
    index(
        "Filetriggername",
        IndexTag::RPMTAG_FILETRIGGERNAME,
        true,
        true,
    ),
    index(
        "Transfiletriggername",
        IndexTag::RPMTAG_TRANSFILETRIGGERNAME,
        true,
        true,
    ),
    index("Recommendname", IndexTag::RPMTAG_RECOMMENDNAME, true, true),
    index("Suggestname", IndexTag::RPMTAG_SUGGESTNAME, true, true),
    index(
        "Supplementname",
        IndexTag::RPMTAG_SUPPLEMENTNAME,
        true,
        true,
    ),
    index("Enhancename", IndexTag::RPMTAG_ENHANCENAME, true, true),
];

/// One row of an index table: the key (text or bytes, as the table's column says), the
/// header's position in its tag (`idx`; the trigger number for file triggers).
#[derive(Debug, PartialEq, Eq)]
struct Row {
    key: Vec<u8>,
    idx: u32,
}

/// A key bound as rpm binds it: `TEXT` or `BLOB` by the table, whatever the bytes.
struct Key<'a>(&'a [u8], bool);

impl ToSql for Key<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(if self.1 {
            ValueRef::Text(self.0)
        } else {
            ValueRef::Blob(self.0)
        }))
    }
}

/// `header` as rpm stores it once it has installed the package (`dbAdd`): the archive's
/// main header `archive_header_blob` (bare, no magic) with, appended outside its immutable
/// region in tag order as rpm's `headerExport` lays them out, `SHA1HEADER` and
/// `SHA256HEADER` (the digests rpm copies from the signature header, computed here from the
/// header itself), `INSTALLTIME` and `INSTALLTID` (`install_time`), and `FILESTATES` (every
/// file installed). The region and everything in it keep their bytes.
///
/// Left out: what needs the payload or the signature header (`SIGSIZE`, `SIGMD5`,
/// `ARCHIVESIZE`, `RSAHEADER`...), and `INSTALLCOLOR`, which rpm only records.
pub fn installed_blob(
    archive_header_blob: &[u8],
    install_time: u32,
) -> Result<Vec<u8>, RpmdbError> {
    let blob = archive_header_blob;
    let word = |at: usize| be32(blob, at).map_or(0, |n| n as usize);
    let (il, dl) = (word(0), word(4));
    // The region tag comes first; its trailer's offset is minus the region's entry count.
    let region = (il > 0 && word(8) == IndexTag::RPMTAG_HEADERIMMUTABLE as usize)
        .then(|| word(16))
        .filter(|trailer| trailer + 16 <= dl)
        .map(|trailer| (word(8 + il * 16 + trailer + 8) as i32).unsigned_abs() as usize / 16);
    match region {
        None => return Err(RpmdbError::Archive("has no immutable region".into())),
        Some(entries) if entries != il => {
            return Err(RpmdbError::Archive(format!(
                "has {} entries outside its immutable region: it is an installed header, \
                 not an archive's",
                il.saturating_sub(entries)
            )));
        }
        Some(_) => {}
    }
    // The layout above first: it says what kind of header this is, which parsing cannot.
    let header = parse(blob).map_err(RpmdbError::Archive)?;
    let mut whole = HEADER_MAGIC.to_vec();
    whole.extend_from_slice(blob);
    let sha1 = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&whole));
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&whole));
    let files = match header.entry(IndexTag::RPMTAG_BASENAMES) {
        Ok(IndexData::StringArray(names)) => names.len(),
        _ => 0,
    };
    let mut added = vec![
        (IndexTag::RPMTAG_SHA1HEADER, Added::Text(sha1)),
        (IndexTag::RPMTAG_SHA256HEADER, Added::Text(sha256)),
        (IndexTag::RPMTAG_INSTALLTIME, Added::Int32(install_time)),
        (IndexTag::RPMTAG_FILESTATES, Added::NormalStates(files)),
        (IndexTag::RPMTAG_INSTALLTID, Added::Int32(install_time)),
    ];
    // rpm records no states for a package without files.
    added.retain(|(_, value)| !matches!(value, Added::NormalStates(0)));
    if let Some((tag, _)) = added.iter().find(|(tag, _)| header.entry_is_present(*tag)) {
        let tag = *tag as u32;
        return Err(RpmdbError::Archive(format!("already has tag {tag}")));
    }
    let mut entries = Vec::new();
    let mut data = blob[8 + il * 16..].to_vec();
    for (tag, value) in &added {
        // rpm's type numbers: RPM_CHAR_TYPE, RPM_INT32_TYPE, RPM_STRING_TYPE.
        let (kind, count, bytes) = match value {
            Added::Text(text) => (6, 1, [text.as_bytes(), b"\0"].concat()),
            Added::Int32(n) => (4, 1, n.to_be_bytes().to_vec()),
            Added::NormalStates(files) => (1, *files, vec![0; *files]),
        };
        if kind == 4 {
            // Aligned from the start of the data, as `headerExport` does.
            data.resize(data.len().next_multiple_of(4), 0);
        }
        for field in [*tag as usize, kind, data.len(), count] {
            entries.extend_from_slice(&(field as u32).to_be_bytes());
        }
        data.extend_from_slice(&bytes);
    }
    let mut out = Vec::with_capacity(8 + blob.len() + entries.len() + data.len());
    out.extend_from_slice(&((il + added.len()) as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&blob[8..8 + il * 16]);
    out.extend_from_slice(&entries);
    out.extend_from_slice(&data);
    Ok(out)
}

/// A tag rpm adds to a header it installs.
enum Added {
    /// A string.
    Text(String),
    /// One number.
    Int32(u32),
    /// `FILESTATES` for this many files, all `RPMFILE_STATE_NORMAL`: the tree holds every
    /// file.
    NormalStates(usize),
}

/// The big-endian number at `at` in `bytes`, if they reach that far.
fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Creates the rpm database `path` holding `headers` (bare header blobs as rpmdb stores
/// them, without the 8-byte magic), which get hnums 1, 2, 3... in order. The same headers
/// always give the same bytes. Refuses an existing `path`; on failure leaves no file.
pub fn write_rpmdb(path: &Path, headers: &[Vec<u8>]) -> Result<(), RpmdbError> {
    let parsed = (headers.iter().enumerate())
        .map(|(index, blob)| {
            parse(blob).map_err(|reason| RpmdbError::Header {
                path: path.to_path_buf(),
                index,
                reason,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // `create_new`, not SQLite's open-or-create, so an existing file is never touched.
    if let Err(e) = OpenOptions::new().write(true).create_new(true).open(path) {
        return Err(match e.kind() {
            std::io::ErrorKind::AlreadyExists => RpmdbError::Exists {
                path: path.to_path_buf(),
            },
            _ => RpmdbError::Create {
                path: path.to_path_buf(),
                source: e,
            },
        });
    }
    let written = fill(path, headers, &parsed);
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

fn write_error(path: &Path, doing: &'static str, source: rusqlite::Error) -> RpmdbError {
    RpmdbError::Write {
        path: path.to_path_buf(),
        doing,
        source,
    }
}

/// Writes the schema and rows into the empty file `path`, in one transaction, in the order
/// rpm would (each package, then its keys index by index).
fn fill(path: &Path, blobs: &[Vec<u8>], headers: &[Header<IndexTag>]) -> Result<(), RpmdbError> {
    let err = |doing| move |source| write_error(path, doing, source);
    let mut conn = Connection::open(path).map_err(err("opening"))?;
    let tx = conn.transaction().map_err(err("starting"))?;
    tx.execute_batch(&schema())
        .map_err(err("creating the tables"))?;
    for (i, (blob, header)) in blobs.iter().zip(headers).enumerate() {
        let hnum = i as i64 + 1;
        tx.execute("INSERT INTO 'Packages' VALUES(?, ?)", (hnum, blob))
            .map_err(err("adding a header"))?;
        for index in &INDEXES {
            let sql = format!("INSERT INTO '{}' VALUES(?, ?, ?)", index.table);
            let mut insert = tx.prepare_cached(&sql).map_err(err("indexing"))?;
            for row in index_rows(header, index) {
                insert
                    .execute((Key(&row.key, index.text), hnum, row.idx))
                    .map_err(err("indexing"))?;
            }
        }
    }
    tx.commit().map_err(err("committing"))?;
    conn.close().map_err(|(_, e)| err("closing")(e))
}

/// rpm's `CREATE` statements, in its order, with its spelling.
fn schema() -> String {
    let mut sql = String::from(
        "CREATE TABLE IF NOT EXISTS 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL);\n",
    );
    for index in &INDEXES {
        let (table, keytype) = (index.table, if index.text { "TEXT" } else { "BLOB" });
        sql += &format!(
            "CREATE TABLE IF NOT EXISTS '{table}' (key '{keytype}' NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL, FOREIGN KEY (hnum) REFERENCES 'Packages'(hnum));\n"
        );
        let columns = [("key", index.text), ("hnum", index.array)];
        for (column, _) in columns.iter().filter(|(_, wanted)| *wanted) {
            sql += &format!(
                "CREATE INDEX IF NOT EXISTS '{table}_{column}_idx' ON '{table}'({column} ASC);\n"
            );
        }
    }
    sql
}

/// Parses a bare header blob, checked as the RPM sources check it, with every entry read
/// now so a bad one is this header's error, not a missing index key.
fn parse(blob: &[u8]) -> Result<Header<IndexTag>, String> {
    let header = RpmHeader::from_blob(blob)
        .map_err(|e| e.to_string())?
        .into_tags();
    header
        .get_all_entries()
        .map_err(|e| format!("not a valid header: {e}"))?;
    Ok(header)
}

/// The rows `header` gets in `index`, as `tag2index` makes them.
fn index_rows(header: &Header<IndexTag>, index: &Index) -> Vec<Row> {
    let data = match header.entry(index.tag) {
        Ok(data) => data,
        // "XXX preserve legacy behavior"
        Err(_) if index.tag == IndexTag::RPMTAG_GROUP => IndexData::StringTag("Unknown".into()),
        Err(_) => return Vec::new(),
    };
    let u32s = |tag| match header.entry(tag) {
        Ok(IndexData::Int32(v)) => v,
        _ => Vec::new(),
    };
    let keys: Vec<(Vec<u8>, bool)> = match data {
        IndexData::StringTag(s) => vec![(s.into_bytes(), false)],
        // rpm gets one localised string (the C locale's: the first).
        IndexData::I18NString(v) => v.into_iter().take(1).map(|s| (s.into(), false)).collect(),
        IndexData::StringArray(v) => v.into_iter().map(|s| (s.into(), true)).collect(),
        // Numbers are keyed by their bytes in memory, as rpm's `td2key` does.
        IndexData::Char(v) | IndexData::Int8(v) => {
            v.into_iter().map(|b| (vec![b], false)).collect()
        }
        IndexData::Int16(v) => v.iter().map(|n| (n.to_ne_bytes().into(), false)).collect(),
        IndexData::Int32(v) => v.iter().map(|n| (n.to_ne_bytes().into(), false)).collect(),
        IndexData::Int64(v) => v.iter().map(|n| (n.to_ne_bytes().into(), false)).collect(),
        IndexData::Bin(b) => vec![(b, false)],
        IndexData::Null => Vec::new(),
    };
    let require_flags = u32s(IndexTag::RPMTAG_REQUIREFLAGS);
    let trigger_numbers = match index.tag {
        IndexTag::RPMTAG_FILETRIGGERNAME => u32s(IndexTag::RPMTAG_FILETRIGGERINDEX),
        IndexTag::RPMTAG_TRANSFILETRIGGERNAME => u32s(IndexTag::RPMTAG_TRANSFILETRIGGERINDEX),
        _ => Vec::new(),
    };
    let rich_tags = [
        IndexTag::RPMTAG_REQUIRENAME,
        IndexTag::RPMTAG_CONFLICTNAME,
        IndexTag::RPMTAG_SUGGESTNAME,
        IndexTag::RPMTAG_SUPPLEMENTNAME,
        IndexTag::RPMTAG_RECOMMENDNAME,
        IndexTag::RPMTAG_ENHANCENAME,
    ];
    let mut rows = Vec::new();
    for (i, (key, in_array)) in keys.iter().enumerate() {
        let idx = trigger_numbers.get(i).copied().unwrap_or(i as u32);
        match index.tag {
            IndexTag::RPMTAG_REQUIRENAME => {
                let flags = require_flags.get(i).copied().unwrap_or(0);
                if flags & INSTALL_ONLY != 0 && flags & ERASE_ONLY == 0 && flags & META == 0 {
                    continue;
                }
            }
            IndexTag::RPMTAG_TRIGGERNAME if keys[..i].iter().any(|(k, _)| k == key) => continue,
            _ => {}
        }
        rows.push(Row {
            key: key.clone(),
            idx,
        });
        if *in_array && key.first() == Some(&b'(') && rich_tags.contains(&index.tag) {
            for name in rich_names(key) {
                rows.push(Row { key: name, idx });
            }
        }
    }
    rows
}

/// The simple names a rich dependency is indexed under besides itself (`updateRichDep`):
/// each name in it but `rpmlib(...)`, a name inside an `if`/`unless` condition prefixed
/// with `!`, sorted and without duplicates; none when rpm cannot parse it.
fn rich_names(dep: &[u8]) -> Vec<Vec<u8>> {
    let mut walk = RichWalk::default();
    let mut pos = 0;
    if walk.group(dep, &mut pos).is_none() {
        return Vec::new();
    }
    let mut names = walk.names;
    names.sort();
    names.dedup();
    for name in &mut names {
        if name.first() == Some(&b' ') {
            name.remove(0);
        }
    }
    names
}

/// An operator of a rich dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RichOp {
    Single,
    And,
    Or,
    If,
    Unless,
    Else,
    With,
    Without,
}

/// The walk `rpmrichParse` makes over a rich dependency, collecting names as
/// `updateRichDepCB` does: each with a `' '` or (negated) `'!'` in front.
#[derive(Default)]
struct RichWalk {
    names: Vec<Vec<u8>>,
    negated: bool,
    /// For each open parenthesis, where its names start (after `if`: where the
    /// condition's do).
    starts: Vec<usize>,
}

/// C's `isspace`, which rpm's `risspace` is.
fn c_space(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0x0b
}

/// What rpm skips between words: whitespace and commas.
fn rich_blank(c: u8) -> bool {
    c_space(c) || c == b','
}

fn skip_blank(s: &[u8], pos: &mut usize) {
    while s.get(*pos).is_some_and(|&c| rich_blank(c)) {
        *pos += 1;
    }
}

/// Skips a word, parentheses inside it included.
fn skip_word(s: &[u8], pos: &mut usize) {
    let mut depth = 0;
    while let Some(&c) = s.get(*pos) {
        if rich_blank(c) || (c == b')' && depth == 0) {
            break;
        }
        match c {
            b')' => depth -= 1,
            b'(' => depth += 1,
            _ => {}
        }
        *pos += 1;
    }
}

impl RichWalk {
    /// One parenthesised expression at `pos`; its `with`-legality flag (rpm's
    /// `RICHPARSE_NO_WITH`), or `None` where rpm's parser fails.
    fn group(&mut self, s: &[u8], pos: &mut usize) -> Option<bool> {
        self.starts.push(self.names.len());
        if s.get(*pos) != Some(&b'(') {
            return None;
        }
        *pos += 1;
        let (mut op, mut first, mut chain) = (RichOp::Single, RichOp::Single, None);
        let mut no_with = false;
        loop {
            skip_blank(s, pos);
            match s.get(*pos) {
                Some(b')') => return None,
                Some(b'(') => no_with |= self.group(s, pos)?,
                _ => self.simple(s, pos)?,
            }
            skip_blank(s, pos);
            match s.get(*pos) {
                None => return None,
                Some(b')') => break,
                Some(_) => {}
            }
            // An operator ends at whitespace or `)` only: `and,` is no operator to rpm.
            let start = *pos;
            let mut end = start;
            while s.get(end).is_some_and(|&c| !c_space(c) && c != b')') {
                end += 1;
            }
            op = match &s[start..end] {
                b"and" => RichOp::And,
                b"or" => RichOp::Or,
                b"if" => RichOp::If,
                b"unless" => RichOp::Unless,
                b"else" => RichOp::Else,
                b"with" => RichOp::With,
                b"without" => RichOp::Without,
                _ => return None,
            };
            if first == RichOp::Single {
                first = op;
            }
            if op == RichOp::Else && matches!(chain, Some(RichOp::If | RichOp::Unless)) {
                chain = None;
            }
            if chain
                .is_some_and(|c| c != op || !matches!(op, RichOp::And | RichOp::Or | RichOp::With))
            {
                return None;
            }
            self.operator(op);
            chain = Some(op);
            *pos = end;
        }
        if matches!(first, RichOp::With | RichOp::Without) && no_with {
            return None;
        }
        no_with |= !matches!(
            op,
            RichOp::Single | RichOp::With | RichOp::Without | RichOp::Or
        );
        *pos += 1;
        self.starts.pop();
        if matches!(op, RichOp::If | RichOp::Unless) {
            self.negated ^= true;
        }
        Some(no_with)
    }

    /// A simple dependency `name [op version]` at `pos`.
    fn simple(&mut self, s: &[u8], pos: &mut usize) -> Option<()> {
        let start = *pos;
        skip_word(s, pos);
        let name = &s[start..*pos];
        if name.is_empty() {
            return None;
        }
        skip_blank(s, pos);
        let mut end = *pos;
        skip_word(s, &mut end);
        if [&b"<"[..], b"<=", b"=<", b"==", b"=", b">", b">=", b"=>"].contains(&&s[*pos..end]) {
            *pos = end;
            skip_blank(s, pos);
            let version = *pos;
            skip_word(s, pos);
            if *pos == version {
                return None;
            }
        }
        if !(name.len() > 7 && name.starts_with(b"rpmlib(")) {
            let mut entry = vec![if self.negated { b'!' } else { b' ' }];
            entry.extend_from_slice(name);
            self.names.push(entry);
        }
        Some(())
    }

    /// Bookkeeping for an operator: a condition's names are negated; `else` repeats them
    /// un-negated for its branch.
    fn operator(&mut self, op: RichOp) {
        let Some(start) = self.starts.last_mut() else {
            return;
        };
        match op {
            RichOp::If | RichOp::Unless => {
                *start = self.names.len();
                self.negated ^= true;
            }
            RichOp::Else => {
                let from = *start;
                for i in from..self.names.len() {
                    let mut flipped = self.names[i].clone();
                    flipped[0] ^= b' ' ^ b'!';
                    self.names.push(flipped);
                }
                self.negated ^= true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::process::Command;

    use rpm::{BuildConfig, Dependency, FileOptions, PackageBuilder};

    use super::*;

    /// When the fixture packages were built: their files' mtime, which `rpm -V` checks.
    const BUILT: u32 = 1_700_000_000;
    /// The install time the tests give [`installed_blob`].
    const INSTALLED: u32 = 1_700_001_000;

    /// A file of a fixture package: its path and mode, and its content or link target.
    enum Entry {
        File(&'static str, u32, &'static str),
        Config(&'static str, &'static str),
        Link(&'static str, &'static str),
    }

    struct Fixture {
        package: rpm::Package,
        entries: Vec<Entry>,
    }

    impl Fixture {
        fn build(
            name: &str,
            evr: (u32, &str, &str),
            entries: Vec<Entry>,
            relations: impl FnOnce(&mut PackageBuilder),
        ) -> Fixture {
            let mut b = PackageBuilder::new(name, evr.1, "MIT", "noarch", "a fixture");
            b.using_config(BuildConfig::default().source_date(BUILT));
            b.release(evr.2);
            if evr.0 > 0 {
                b.epoch(evr.0);
            }
            for entry in &entries {
                match *entry {
                    Entry::File(path, mode, text) => {
                        b.with_file_contents(text, FileOptions::new(path).permissions(mode as u16))
                    }
                    Entry::Config(path, text) => {
                        b.with_file_contents(text, FileOptions::new(path).config().noreplace())
                    }
                    Entry::Link(path, target) => b.with_symlink(FileOptions::symlink(path, target)),
                }
                .unwrap();
            }
            relations(&mut b);
            Fixture {
                package: b.build().unwrap(),
                entries,
            }
        }

        /// The main header, bare.
        fn header(&self) -> Vec<u8> {
            self.package.metadata.header_bytes().unwrap()[8..].to_vec()
        }

        /// Places the package's files in `root` as rpm would.
        fn place(&self, root: &Path) {
            for entry in &self.entries {
                let (path, mode) = match entry {
                    Entry::File(path, mode, _) => (*path, *mode),
                    Entry::Config(path, _) => (*path, 0o644),
                    Entry::Link(path, _) => (*path, 0),
                };
                let at = root.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                match entry {
                    Entry::File(_, _, text) | Entry::Config(_, text) => {
                        std::fs::write(&at, text).unwrap();
                        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))
                            .unwrap();
                        let file = std::fs::File::options().write(true).open(&at).unwrap();
                        let mtime =
                            std::time::UNIX_EPOCH + std::time::Duration::from_secs(BUILT.into());
                        file.set_modified(mtime).unwrap();
                    }
                    Entry::Link(_, target) => symlink(target, &at).unwrap(),
                }
            }
        }

        /// Writes the package as a `.rpm` file in `dir`.
        fn archive(&self, dir: &Path) -> PathBuf {
            self.package.write_to(dir).unwrap()
        }
    }

    /// Two packages that use every kind of index key, and a third to install later.
    fn fixtures() -> [Fixture; 3] {
        let alpha = Fixture::build(
            "alpha",
            (0, "1.0", "1"),
            vec![
                Entry::File("/usr/bin/alpha", 0o755, "#!/bin/sh\necho alpha\n"),
                Entry::Link("/usr/bin/al", "alpha"),
                Entry::Config("/etc/alpha.conf", "greeting = hello\n"),
            ],
            |b| {
                b.group("Applications/Fixtures");
                b.provides(Dependency::eq("greeting", "2"));
                b.requires(Dependency::greater_eq("beta", "1.5"));
                b.requires(Dependency::script_pre("/bin/sh"));
                // Both satisfied, so `rpm -V` has no dependency to complain about.
                b.requires(Dependency::any("(beta if alpha else epsilon)"));
                b.requires(Dependency::any("(beta >= 1 and (greeting or rpmlib(Foo)))"));
                b.recommends(Dependency::any("(beta unless theta)"));
                b.conflicts(Dependency::less("omega", "2"));
                b.obsoletes(Dependency::any("alpha-old"));
                b.file_trigger_in("/usr/lib/beta", None, "true");
            },
        );
        let beta = Fixture::build(
            "beta",
            (2, "1.5", "3"),
            vec![
                Entry::File("/usr/lib/beta/data", 0o644, "beta data\n"),
                Entry::File("/usr/share/doc/beta/alpha", 0o600, "same basename\n"),
            ],
            |b| {
                b.provides(Dependency::any("libbeta.so.1()(64bit)"));
                b.supplements(Dependency::any("(alpha and beta-extras)"));
            },
        );
        let gamma = Fixture::build(
            "gamma",
            (0, "3", "1"),
            vec![Entry::File("/opt/gamma", 0o644, "gamma\n")],
            |b| {
                b.requires(Dependency::any("alpha"));
            },
        );
        [alpha, beta, gamma]
    }

    /// Runs the real rpm on the tree `root`; its stdout, failing the test when it fails.
    fn rpm(root: &Path, args: &[&str]) -> String {
        let out = rpm_run(root, args);
        assert!(
            out.status.success(),
            "rpm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the real rpm on the tree `root`, whatever it answers.
    fn rpm_run(root: &Path, args: &[&str]) -> std::process::Output {
        Command::new("rpm")
            .arg("--root")
            .arg(root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args)
            .output()
            .unwrap()
    }

    fn db(root: &Path) -> PathBuf {
        root.join("var/lib/rpm/rpmdb.sqlite")
    }

    /// A tree holding `fixtures`' files and a database written from their headers.
    fn written_tree(fixtures: &[Fixture]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("var/lib/rpm")).unwrap();
        let blobs: Vec<Vec<u8>> = fixtures
            .iter()
            .map(|f| {
                f.place(root.path());
                installed_blob(&f.header(), INSTALLED).unwrap()
            })
            .collect();
        write_rpmdb(&db(root.path()), &blobs).unwrap();
        root
    }

    #[test]
    fn rpm_queries_verifies_and_installs_on_the_written_database() {
        let [alpha, beta, gamma] = fixtures();
        let root = written_tree(&[alpha, beta]);
        let root = root.path();
        let nevras = rpm(root, &["-qa", "--qf", "%{NEVRA} %{INSTALLTIME}\n"]);
        assert_eq!(
            nevras,
            format!("alpha-1.0-1.noarch {INSTALLED}\nbeta-2:1.5-3.noarch {INSTALLED}\n")
        );
        let query = |args: &[&str]| rpm(root, args).trim().to_string();
        assert_eq!(query(&["-qf", "/usr/bin/al"]), "alpha-1.0-1.noarch");
        assert_eq!(
            query(&["-qf", "/usr/share/doc/beta/alpha"]),
            "beta-1.5-3.noarch"
        );
        assert_eq!(
            query(&["-q", "--whatprovides", "greeting"]),
            "alpha-1.0-1.noarch"
        );
        let lib = "libbeta.so.1()(64bit)";
        assert_eq!(query(&["-q", "--whatprovides", lib]), "beta-1.5-3.noarch");
        // Through the names a rich dependency is indexed under.
        assert_eq!(
            query(&["-q", "--whatrequires", "greeting"]),
            "alpha-1.0-1.noarch"
        );
        // Once for each of alpha's requirements that names it, as rpm answers.
        assert_eq!(
            query(&["-q", "--whatrequires", "beta"]),
            ["alpha-1.0-1.noarch"; 3].join("\n")
        );
        let info = query(&["-qi", "alpha"]);
        assert!(
            info.contains("Group       : Applications/Fixtures"),
            "{info}"
        );
        assert!(
            info.contains("Install Date: ") && !info.contains("(not installed)"),
            "{info}"
        );
        assert_eq!(query(&["-Va"]), "");
        // A changed file is seen, so the silence above means something.
        std::fs::write(root.join("usr/lib/beta/data"), "changed\n").unwrap();
        let out = rpm_run(root, &["-V", "beta"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("/usr/lib/beta/data"));

        let dir = tempfile::tempdir().unwrap();
        let archive = gamma.archive(dir.path());
        let archive = archive.to_str().unwrap();
        rpm(root, &["-i", "--nodeps", "--noscripts", archive]);
        let names = rpm(root, &["-qa", "--qf", "%{NAME}\n"]);
        assert_eq!(names, "alpha\nbeta\ngamma\n");
        assert_eq!(query(&["-qf", "/opt/gamma"]), "gamma-3-1.noarch");
    }

    /// An index table's rows: key, hnum, idx.
    type TableRows = Vec<(Vec<u8>, i64, i64)>;

    /// Every index table's rows, in the order they were written.
    fn index_tables(path: &Path) -> BTreeMap<&'static str, TableRows> {
        let conn = Connection::open(path).unwrap();
        INDEXES
            .iter()
            .map(|index| {
                let sql = format!(
                    "SELECT key, hnum, idx FROM '{}' ORDER BY rowid",
                    index.table
                );
                let mut select = conn.prepare(&sql).unwrap();
                let rows = select
                    .query_map([], |r| {
                        let key = match r.get_ref(0)? {
                            ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
                            other => panic!("key {other:?}"),
                        };
                        Ok((key, r.get(1)?, r.get(2)?))
                    })
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                (index.table, rows)
            })
            .collect()
    }

    fn schema_of(path: &Path) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut select = conn
            .prepare("SELECT sql FROM sqlite_master WHERE name != 'sqlite_stat1' ORDER BY rowid")
            .unwrap();
        select
            .query_map([], |r| r.get::<_, Option<String>>(0))
            .unwrap()
            .map(|sql| sql.unwrap().unwrap_or_default())
            .collect()
    }

    #[test]
    fn blobs_from_rpms_own_database_give_its_schema_indexes_and_answers() {
        let [alpha, beta, _] = fixtures();
        let theirs = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        for fixture in [&alpha, &beta] {
            let archive = fixture.archive(dir.path());
            rpm(
                theirs.path(),
                &["-i", "--nodeps", "--noscripts", archive.to_str().unwrap()],
            );
        }
        let conn = Connection::open(db(theirs.path())).unwrap();
        let blobs: Vec<Vec<u8>> = conn
            .prepare("SELECT blob FROM Packages ORDER BY hnum")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(conn);
        let ours = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ours.path().join("var/lib/rpm")).unwrap();
        write_rpmdb(&db(ours.path()), &blobs).unwrap();

        let list = ["-qa", "--qf", "%{NEVRA} %{INSTALLTIME} %{SIGMD5}\n"];
        assert_eq!(rpm(ours.path(), &list), rpm(theirs.path(), &list));
        assert_eq!(schema_of(&db(ours.path())), schema_of(&db(theirs.path())));
        assert_eq!(
            index_tables(&db(ours.path())),
            index_tables(&db(theirs.path()))
        );

        // What installed_blob adds is what rpm added, but for what needs the payload or
        // the signature header, and the install time.
        for (fixture, stored) in [&alpha, &beta].into_iter().zip(&blobs) {
            let archive = fixture.header();
            let ours = installed_blob(&archive, INSTALLED).unwrap();
            // The archive's entries and data come first, unchanged.
            let il = u32::from_be_bytes(archive[..4].try_into().unwrap()) as usize;
            let added = u32::from_be_bytes(ours[..4].try_into().unwrap()) as usize - il;
            assert_eq!(ours[8..8 + il * 16], archive[8..8 + il * 16]);
            assert!(ours[8 + (il + added) * 16..].starts_with(&archive[8 + il * 16..]));
            let entries = |blob: &[u8]| -> BTreeMap<u32, IndexData> {
                parse(blob)
                    .unwrap()
                    .get_all_entries()
                    .unwrap()
                    .into_iter()
                    .collect()
            };
            let (mut ours_entries, mut rpms) = (entries(&ours), entries(stored));
            for tag in [IndexTag::RPMTAG_INSTALLTIME, IndexTag::RPMTAG_INSTALLTID] {
                assert_eq!(
                    ours_entries.remove(&(tag as u32)),
                    Some(IndexData::Int32(vec![INSTALLED]))
                );
                assert!(rpms.remove(&(tag as u32)).is_some());
            }
            let rpm_only: Vec<u32> = rpms
                .keys()
                .filter(|tag| !ours_entries.contains_key(tag))
                .copied()
                .collect();
            // SIGSIZE and INSTALLCOLOR (the crate's packages have no SIGMD5 or
            // ARCHIVESIZE to copy; rpmbuild's do).
            assert_eq!(rpm_only, [257, 1127]);
            rpms.retain(|tag, _| !rpm_only.contains(tag));
            assert_eq!(ours_entries, rpms);
        }
    }

    #[test]
    fn the_same_headers_give_the_same_file_and_an_existing_one_is_kept() {
        let [alpha, beta, _] = fixtures();
        let blobs = [
            installed_blob(&alpha.header(), 0).unwrap(),
            installed_blob(&beta.header(), 0).unwrap(),
        ];
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
        write_rpmdb(&first, &blobs).unwrap();
        write_rpmdb(&second, &blobs).unwrap();
        let bytes = std::fs::read(&first).unwrap();
        assert_eq!(bytes, std::fs::read(&second).unwrap());
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["a.sqlite", "b.sqlite"]);

        let again = write_rpmdb(&first, &blobs[..1]).unwrap_err();
        assert!(matches!(again, RpmdbError::Exists { .. }), "{again}");
        assert_eq!(std::fs::read(&first).unwrap(), bytes);
    }

    #[test]
    fn a_bad_header_is_named_and_leaves_no_file() {
        let [alpha, beta, _] = fixtures();
        let good = installed_blob(&alpha.header(), 0).unwrap();
        let beta = beta.header();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpmdb.sqlite");
        let err = write_rpmdb(&path, &[good.clone(), beta[..beta.len() - 1].to_vec()]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{}: header 1: ", path.display())),
            "{message}"
        );
        assert!(!path.exists());

        let err = installed_blob(&good, 0).unwrap_err().to_string();
        assert!(err.contains("installed header"), "{err}");
        let err = installed_blob(&[0; 8], 0).unwrap_err().to_string();
        assert!(err.contains("no immutable region"), "{err}");
    }

    #[test]
    fn rich_dependencies_are_indexed_under_their_names_as_rpm_does() {
        let names = |dep: &str| -> Vec<String> {
            rich_names(dep.as_bytes())
                .into_iter()
                .map(|n| String::from_utf8(n).unwrap())
                .collect()
        };
        // Sorted with rpm's `' '` and `'!'` in front, so negated names come last.
        assert_eq!(names("(a if b else c)"), ["a", "b", "c", "!b"]);
        assert_eq!(names("(a unless b)"), ["a", "!b"]);
        assert_eq!(names("(z >= 1 and (y or rpmlib(X)) and z)"), ["y", "z"]);
        assert_eq!(names("(a with b)"), ["a", "b"]);
        // rpm refuses these, and indexes them under the whole string only.
        assert!(names("(a and b or c)").is_empty());
        assert!(names("((a and b) with c)").is_empty());
        assert!(names("(a and)").is_empty());
        assert!(names("(a and, b)").is_empty());
        assert!(names("(a >=)").is_empty());
    }
}
