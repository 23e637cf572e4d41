//! What a lock tells a container runtime besides its `cmd`: the image config a group's
//! `env`, `run-as`, `workdir`, `expose`, `label` and `entrypoint` statements ask for.
//!
//! Every field is left out of the lock's canonical JSON when it is empty, and the whole
//! config when all are, so a lock without these statements keeps the id it had before
//! they existed. The maps and the port set are sorted, so the same statements always
//! give the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The container settings of a lock, in the order an OCI image config lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// `run-as`: the user (and group) the container's process runs as, as written:
    /// `NAME`, `UID`, `NAME:GROUP`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `expose`: ports as `PORT/PROTOCOL` (`80/tcp`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub ports: BTreeSet<String>,
    /// `env`: variable name to value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `entrypoint`: the program and its first arguments; `cmd` follows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// `workdir`: the absolute working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// `label`: label key to value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Container {
    /// Whether no statement set anything: the lock then carries no container config.
    pub fn is_empty(&self) -> bool {
        *self == Container::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_settings_serialise_to_nothing_and_set_ones_in_sorted_order() {
        assert!(Container::default().is_empty());
        assert_eq!(serde_json::to_string(&Container::default()).unwrap(), "{}");
        let container = Container {
            user: Some("www-data".into()),
            env: BTreeMap::from([("LANG".into(), "C".into()), ("A".into(), "1".into())]),
            ports: BTreeSet::from(["80/tcp".into(), "53/udp".into()]),
            ..Container::default()
        };
        assert!(!container.is_empty());
        let json = serde_json::to_string(&container).unwrap();
        assert_eq!(
            json,
            r#"{"user":"www-data","ports":["53/udp","80/tcp"],"env":{"A":"1","LANG":"C"}}"#
        );
        assert_eq!(serde_json::from_str::<Container>(&json).unwrap(), container);
        assert_eq!(
            serde_json::from_str::<Container>("{}").unwrap(),
            Container::default()
        );
    }
}
