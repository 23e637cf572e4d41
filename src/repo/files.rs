//! File entries as rows: the columns `package_files` and `lock_files` share.

use rusqlite::{Row, Statement};

use super::Fault;
use crate::lock::{Documentation, FileEntry, FileKind};

/// The entry columns of both file tables, in binding and reading order. Each table puts
/// its owner column first (`package` or `lock`); `lock_files` adds `package` last.
pub(super) const ENTRY_COLUMNS: &str = "path, kind, mode, uid, gid, user_name, group_name, \
     size, digest, target, dev_major, dev_minor, caps, conffile, origin, mtime, \
     documentation";

/// How many columns [`ENTRY_COLUMNS`] names.
pub(super) const ENTRY_COLUMN_COUNT: usize = 17;

/// Every kind, to map the stored text back without trusting it.
const KINDS: [FileKind; 7] = [
    FileKind::File,
    FileKind::Dir,
    FileKind::Symlink,
    FileKind::Hardlink,
    FileKind::Char,
    FileKind::Block,
    FileKind::Fifo,
];

/// `INSERT INTO <table> (<owner>, <entry columns>[, <extra>]) VALUES (?1, ...)`.
pub(super) fn insert_sql(table: &str, owner: &str, extra: Option<&str>) -> String {
    let count = 1 + ENTRY_COLUMN_COUNT + usize::from(extra.is_some());
    let placeholders: Vec<String> = (1..=count).map(|i| format!("?{i}")).collect();
    let extra = extra
        .map(|column| format!(", {column}"))
        .unwrap_or_default();
    format!(
        "INSERT INTO {table} ({owner}, {ENTRY_COLUMNS}{extra}) VALUES ({})",
        placeholders.join(", ")
    )
}

/// Binds `owner` to parameter 1 and `entry` to the parameters after it.
pub(super) fn bind_entry(
    stmt: &mut Statement<'_>,
    owner: i64,
    entry: &FileEntry,
) -> rusqlite::Result<()> {
    let (major, minor) = entry.device.unzip();
    stmt.raw_bind_parameter(1, owner)?;
    stmt.raw_bind_parameter(2, &entry.path)?;
    stmt.raw_bind_parameter(3, entry.kind.as_str())?;
    stmt.raw_bind_parameter(4, entry.mode)?;
    stmt.raw_bind_parameter(5, entry.uid)?;
    stmt.raw_bind_parameter(6, entry.gid)?;
    stmt.raw_bind_parameter(7, &entry.user)?;
    stmt.raw_bind_parameter(8, &entry.group)?;
    stmt.raw_bind_parameter(9, entry.size)?;
    stmt.raw_bind_parameter(10, &entry.digest)?;
    stmt.raw_bind_parameter(11, &entry.target)?;
    stmt.raw_bind_parameter(12, major)?;
    stmt.raw_bind_parameter(13, minor)?;
    stmt.raw_bind_parameter(14, &entry.caps)?;
    stmt.raw_bind_parameter(15, entry.conffile)?;
    stmt.raw_bind_parameter(16, &entry.origin)?;
    stmt.raw_bind_parameter(17, entry.mtime)?;
    stmt.raw_bind_parameter(18, entry.documentation.map(Documentation::as_str))
}

/// Reads the entry columns at the start of `row`; `package` comes from the caller
/// because the two tables record the owner differently.
pub(super) fn read_entry(row: &Row<'_>, package: Option<String>) -> Result<FileEntry, Fault> {
    let path: String = row.get(0)?;
    let kind_text: String = row.get(1)?;
    let kind = KINDS
        .into_iter()
        .find(|kind| kind.as_str() == kind_text)
        .ok_or_else(|| Fault::Corrupt(format!("file {path} has unknown kind `{kind_text}`")))?;
    let documentation = match row.get::<_, Option<String>>(16)? {
        None => None,
        Some(text) => Some(
            (Documentation::ALL.into_iter())
                .find(|mark| mark.as_str() == text)
                .ok_or_else(|| Fault::Corrupt(format!("file {path} has unknown mark `{text}`")))?,
        ),
    };
    let major: Option<u32> = row.get(10)?;
    let minor: Option<u32> = row.get(11)?;
    Ok(FileEntry {
        kind,
        mode: row.get(2)?,
        uid: row.get(3)?,
        gid: row.get(4)?,
        user: row.get(5)?,
        group: row.get(6)?,
        size: row.get(7)?,
        digest: row.get(8)?,
        target: row.get(9)?,
        device: major.zip(minor),
        caps: row.get(12)?,
        package,
        conffile: row.get(13)?,
        origin: row.get(14)?,
        mtime: row.get(15)?,
        documentation,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_every_column() {
        let sql = insert_sql("lock_files", "lock", Some("package"));
        assert!(
            sql.starts_with("INSERT INTO lock_files (lock, path, kind,"),
            "{sql}"
        );
        assert!(sql.ends_with("origin, mtime, documentation, package) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"), "{sql}");
        assert_eq!(ENTRY_COLUMNS.split(',').count(), ENTRY_COLUMN_COUNT);
    }
}
