//! How `push` and `pull` reach a registry.

use std::path::PathBuf;

use crate::error::Result;
use crate::registry;

/// How `push` and `pull` reach a registry.
pub struct RemoteOptions {
    /// Plain http instead of TLS.
    pub insecure: bool,
    /// More certificate authorities to trust (a PEM file).
    pub ca_file: Option<PathBuf>,
    /// A user name whose password is on standard input; else the docker configuration.
    pub username: Option<String>,
}

impl RemoteOptions {
    /// The connection these options ask for, reading the password now.
    pub(super) fn connection(&self) -> Result<registry::Connection> {
        let login = match &self.username {
            Some(user) => registry::Login::with_password_from(user, std::io::stdin().lock())?,
            None => registry::Login::docker_config(),
        };
        Ok(registry::Connection {
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            login,
        })
    }
}
