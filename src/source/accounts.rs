//! A tree's accounts: the user and group names its `etc/passwd` and `etc/group` give
//! ids, which lock entries record owners by.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A tree's `etc/passwd` or `etc/group` exists but cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct AccountsError {
    /// The file.
    pub path: PathBuf,
    /// The underlying error.
    pub source: io::Error,
}

/// User and group names of a sysroot, for recording owners by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accounts {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Accounts {
    /// Reads `etc/passwd` and `etc/group` under `sysroot`; a missing file names nobody.
    pub fn read(sysroot: &Path) -> Result<Accounts, AccountsError> {
        Ok(Accounts {
            users: read_ids(&sysroot.join("etc/passwd"))?,
            groups: read_ids(&sysroot.join("etc/group"))?,
        })
    }

    /// The name of user `uid`, or `""` when the sysroot does not know it.
    pub fn user(&self, uid: u32) -> &str {
        self.users.get(&uid).map_or("", String::as_str)
    }

    /// The name of group `gid`, or `""` when the sysroot does not know it.
    pub fn group(&self, gid: u32) -> &str {
        self.groups.get(&gid).map_or("", String::as_str)
    }

    /// The id of user `name` (a group `file` statement's owner); a number is taken as is.
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        id_of(&self.users, name)
    }

    /// The id of group `name`; a number is taken as is.
    pub fn gid_of(&self, name: &str) -> Option<u32> {
        id_of(&self.groups, name)
    }

    /// Every user name, in no order.
    pub fn user_names(&self) -> impl Iterator<Item = &str> {
        self.users.values().map(String::as_str)
    }

    /// Every group name, in no order.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.values().map(String::as_str)
    }
}

fn id_of(names: &HashMap<u32, String>, name: &str) -> Option<u32> {
    name.parse().ok().or_else(|| {
        names
            .iter()
            .filter(|(_, n)| n.as_str() == name)
            .map(|(id, _)| *id)
            .min()
    })
}

/// Reads `name:password:id:...` lines. Like glibc, the first name for an id wins and
/// lines that do not parse (comments, NIS `+` entries) are passed over.
pub(crate) fn read_ids(path: &Path) -> Result<HashMap<u32, String>, AccountsError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => {
            return Err(AccountsError {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut ids = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let Ok(id) = id.parse::<u32>()
            && !name.is_empty()
        {
            ids.entry(id).or_insert_with(|| name.to_string());
        }
    }
    Ok(ids)
}
