//! Whose credentials a push or pull presents: `--username` with the password read from
//! standard input (as `docker login --password-stdin` takes it), else what `docker
//! login` left in the user's `config.json` for the registry, else none.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::RegistryError;

/// Where the credentials come from.
pub enum Login {
    /// A user name given on the command line and its password, read from standard input.
    Password {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// The docker configuration file, when it has an entry for the registry.
    DockerConfig(PathBuf),
}

impl Login {
    /// `--username USER`, with the password the first line of `stdin`.
    pub fn with_password_from(username: &str, stdin: impl Read) -> Result<Login, RegistryError> {
        let mut text = String::new();
        let mut stdin = stdin;
        stdin
            .read_to_string(&mut text)
            .map_err(|source| RegistryError::Io {
                path: PathBuf::from("-"),
                doing: "reading the password from standard input",
                source,
            })?;
        let password = text.lines().next().unwrap_or_default().to_string();
        if password.is_empty() {
            return Err(RegistryError::Io {
                path: PathBuf::from("-"),
                doing: "reading the password from standard input",
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "--username takes the password on standard input, and it is empty",
                ),
            });
        }
        Ok(Login::Password {
            username: username.to_string(),
            password,
        })
    }

    /// The docker configuration the user has: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    pub fn docker_config() -> Login {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir),
            None => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".docker"),
        };
        Login::DockerConfig(dir.join("config.json"))
    }

    /// The credentials for `registry`, and who they are for errors to say.
    pub(crate) fn credentials(
        &self,
        registry: &str,
    ) -> Result<(RegistryAuth, String), RegistryError> {
        match self {
            Login::Password { username, password } => Ok((
                RegistryAuth::Basic(username.clone(), password.clone()),
                format!("the credentials of {username} (--username)"),
            )),
            Login::DockerConfig(path) => match from_config(path, registry)? {
                Some((username, password)) => Ok((
                    RegistryAuth::Basic(username.clone(), password),
                    format!("the credentials of {username} ({})", path.display()),
                )),
                None => Ok((
                    RegistryAuth::Anonymous,
                    format!(
                        "access without credentials ({} has none for it; pass --username \
                         with the password on standard input, or `docker login` first)",
                        path.display()
                    ),
                )),
            },
        }
    }
}

/// The parts of `config.json` that hold credentials.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

/// One registry's entry: `auth` is base64 of `user:password`.
#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
}

/// The user name and password `path` holds for `registry`; `None` when the file does
/// not exist or has no entry for it.
fn from_config(path: &Path, registry: &str) -> Result<Option<(String, String)>, RegistryError> {
    let bad = |reason: String| RegistryError::Config {
        path: path.to_path_buf(),
        reason,
    };
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RegistryError::Io {
                path: path.to_path_buf(),
                doing: "reading the docker configuration",
                source,
            });
        }
    };
    let config: DockerConfig = serde_json::from_slice(&text)
        .map_err(|e| bad(format!("not a docker configuration: {e}")))?;
    // `docker login` writes the host, older versions a URL of it.
    let entry = (config.auths.iter()).find(|(key, _)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        host.split('/').next() == Some(registry)
    });
    let helper = config
        .cred_helpers
        .get(registry)
        .or(config.creds_store.as_ref());
    let Some((key, entry)) = entry.filter(|(_, e)| e.auth.is_some()) else {
        return match helper {
            Some(helper) => Err(bad(format!(
                "its credentials for {registry} are kept by the credential helper \
                 docker-credential-{helper}, which appliance does not support: pass \
                 --username with the password on standard input"
            ))),
            None => Ok(None),
        };
    };
    let auth = entry.auth.as_deref().unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Err(bad(format!(
            "auths.\"{key}\".auth is not base64 of USER:PASSWORD"
        )));
    };
    Ok(Some((user.to_string(), password.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn docker_config_auths_give_user_and_password() {
        // base64("alice:s3cr:t")
        let (_dir, path) =
            config(r#"{"auths":{"https://reg.example:5000/v1/":{"auth":"YWxpY2U6czNjcjp0"}}}"#);
        assert_eq!(
            from_config(&path, "reg.example:5000").unwrap(),
            Some(("alice".into(), "s3cr:t".into()))
        );
        assert_eq!(from_config(&path, "other.example").unwrap(), None);
        assert_eq!(
            from_config(&path.with_extension("gone"), "x").unwrap(),
            None
        );
    }

    #[test]
    fn helpers_and_bad_auth_are_clear_errors() {
        let (_dir, path) = config(r#"{"auths":{},"credHelpers":{"reg.example":"pass"}}"#);
        let err = from_config(&path, "reg.example").unwrap_err().to_string();
        assert!(err.contains("docker-credential-pass"), "{err}");
        assert!(err.contains("--username"), "{err}");
        let (_dir, path) = config(r#"{"auths":{"reg.example":{"auth":"!!"}}}"#);
        let err = from_config(&path, "reg.example").unwrap_err().to_string();
        assert!(
            err.contains("auths.\"reg.example\".auth is not base64"),
            "{err}"
        );
    }

    #[test]
    fn the_password_is_the_first_line_of_stdin() {
        let login = Login::with_password_from("bob", &b"hunter2\n"[..]).unwrap();
        let (auth, who) = login.credentials("r.example").unwrap();
        assert!(matches!(auth, RegistryAuth::Basic(u, p) if u == "bob" && p == "hunter2"));
        assert!(who.contains("bob"), "{who}");
        assert!(Login::with_password_from("bob", &b""[..]).is_err());
    }
}
