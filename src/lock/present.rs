//! How the command line's JSON shows a lock: its canonical form, except that every mode
//! is an octal string (`"0755"`) as people read modes. The canonical form, and so the
//! lock id, keeps modes as numbers.

use serde_json::Value;

use super::{FileEntry, Lock};

/// `lock` as the command line's JSON shows it.
pub fn lock_json(lock: &Lock) -> Value {
    let mut value = serde_json::to_value(lock).unwrap_or_default();
    value["files"] = lock.files.iter().map(file_json).collect();
    value
}

/// `file` as the command line's JSON shows it.
pub fn file_json(file: &FileEntry) -> Value {
    let mut value = serde_json::to_value(file).unwrap_or_default();
    value["mode"] = Value::String(mode(file.mode));
    value
}

/// A mode as four octal digits, set-id and sticky bits first: `0755`, `4755`.
fn mode(mode: u32) -> String {
    format!("{mode:04o}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_strings_and_the_rest_is_the_lock() {
        let mut setuid = FileEntry::directory("/usr/bin/su");
        setuid.mode = 0o4755;
        let lock = Lock::of_files(vec![FileEntry::directory("/"), setuid]);
        let value = lock_json(&lock);
        assert_eq!(value["files"][0]["mode"], "0755");
        assert_eq!(value["files"][1]["mode"], "4755");
        assert_eq!(value["files"][1]["path"], "/usr/bin/su");
        assert_eq!(value["group"], "test");
        // The lock's own serialisation is untouched.
        let canonical: Value = serde_json::from_slice(&lock.canonical_bytes()).unwrap();
        assert_eq!(canonical["files"][1]["mode"], 0o4755);
    }
}
