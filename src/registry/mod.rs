//! Sharing locks through an OCI registry (`appliance push`, `appliance pull`): the
//! artifact a bundle holds ([`crate::bundle::Artifact`], `docs/bundle.md`) copied blob
//! by blob, each blob content-addressed so a registry that has it is not sent it again.
//!
//! The registry client (`oci-client`) is async: a [`Session`] owns a current-thread
//! tokio runtime and runs every call on it, so no other module sees tokio.

mod credentials;
mod pull;
mod push;
mod referrer;

use std::future::Future;
use std::path::PathBuf;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::bundle::BundleError;
use crate::excerpt::excerpt;

pub use credentials::Login;
pub use pull::{Pulled, pull};
pub use push::{Pushed, Transfer, default_tag, push};
pub use referrer::{Attached, Document};

/// What makes a push or a pull fail.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The text is not a registry reference.
    #[error(
        "`{}` is no registry reference ({reason}): write REGISTRY/REPOSITORY[:TAG] or \
         REGISTRY/REPOSITORY@sha256:DIGEST, as in `registry.example.com/team/web:1.0`",
        excerpt(reference)
    )]
    Malformed {
        /// The text given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry refused the credentials, or wants some and got none.
    #[error("registry {registry} refused {who}: {said}")]
    Credentials {
        /// The registry's host (and port).
        registry: String,
        /// Whose credentials, and where they came from.
        who: String,
        /// What the registry answered.
        said: String,
    },
    /// The registry has no manifest of that tag or digest.
    #[error("{reference}: the registry has no such tag or manifest ({said})")]
    Unknown {
        /// The reference pulled.
        reference: String,
        /// What the registry answered.
        said: String,
    },
    /// The manifest is not an appliance lock's.
    #[error("{reference} is no appliance lock: {reason}")]
    NotALock {
        /// The reference pulled.
        reference: String,
        /// What its manifest is instead.
        reason: String,
    },
    /// The registry could not be reached, or answered what a registry should not.
    #[error("registry {registry}: {doing}: {said}")]
    Failed {
        /// The registry's host (and port).
        registry: String,
        /// What was being done.
        doing: String,
        /// What went wrong.
        said: String,
    },
    /// The user's docker configuration cannot give credentials for the registry.
    #[error("{}: {reason}", path.display())]
    Config {
        /// `config.json`.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file (the CA file, the password on standard input) could not be read.
    #[error("{}: {doing}: {source}", path.display())]
    Io {
        /// The file (`-` for standard input).
        path: PathBuf,
        /// What was being done.
        doing: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
    /// A pulled artifact is refused, or cannot be stored, as a bundle would be.
    #[error(transparent)]
    Bundle(Box<BundleError>),
}

impl From<BundleError> for RegistryError {
    fn from(err: BundleError) -> RegistryError {
        RegistryError::Bundle(Box::new(err))
    }
}

/// How to reach a registry: the transport and whose credentials.
pub struct Connection {
    /// Plain http instead of TLS.
    pub insecure: bool,
    /// A PEM file of more certificate authorities to trust beside the system's.
    pub ca_file: Option<PathBuf>,
    /// The credentials.
    pub login: Login,
}

/// A reference to a registry's repository, as the command line gives it.
#[derive(Debug)]
pub struct Remote {
    /// The reference (with `latest` as its tag when the text names none).
    pub reference: Reference,
    /// Whether the text names a tag or a digest.
    pub named: bool,
}

/// Parses `REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST]`. The registry must be written (a
/// host with a `.` or a `:`, or `localhost`), so that nothing goes to Docker Hub by
/// default.
pub fn parse_reference(text: &str) -> Result<Remote, RegistryError> {
    let bad = |reason: &str| RegistryError::Malformed {
        reference: text.to_string(),
        reason: reason.to_string(),
    };
    let (host, rest) = text
        .split_once('/')
        .ok_or_else(|| bad("it names no repository after the registry"))?;
    if !(host.contains(['.', ':']) || host == "localhost") || rest.is_empty() {
        return Err(bad(
            "it does not start with a registry host such as `localhost:5000/`",
        ));
    }
    let reference: Reference = text.parse().map_err(|e| bad(&format!("{e}")))?;
    if reference.digest().is_some_and(|d| {
        !d.strip_prefix("sha256:")
            .is_some_and(crate::bundle::is_sha256)
    }) {
        return Err(bad(
            "its digest is not sha256: and 64 lower-case hex digits",
        ));
    }
    Ok(Remote {
        reference,
        named: rest.contains([':', '@']),
    })
}

/// A registry conversation: the client, the repository and the credentials, with the
/// runtime the client's futures run on.
pub(crate) struct Session {
    runtime: tokio::runtime::Runtime,
    client: Client,
    auth: RegistryAuth,
    /// Whose credentials, for errors.
    who: String,
    /// The reference the command was given (a tag, a digest or neither).
    pub reference: Reference,
}

impl Session {
    /// Opens a session with the registry of `reference` for `operation`.
    pub(crate) fn open(
        reference: Reference,
        connection: &Connection,
        operation: RegistryOperation,
    ) -> Result<Session, RegistryError> {
        let registry = reference.resolve_registry().to_string();
        let (auth, who) = connection.login.credentials(&registry)?;
        let mut config = ClientConfig {
            protocol: if connection.insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            // A blob is one PUT: registries take it whole, and a blob cut short by a
            // registry that goes away leaves only an unfinished upload behind.
            use_monolithic_push: true,
            ..ClientConfig::default()
        };
        if let Some(path) = &connection.ca_file {
            let data = std::fs::read(path).map_err(|source| RegistryError::Io {
                path: path.clone(),
                doing: "reading the certificate authorities",
                source,
            })?;
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Failed {
                registry: registry.clone(),
                doing: "starting the client".into(),
                said: e.to_string(),
            })?;
        let session = Session {
            runtime,
            client: Client::new(config),
            auth,
            who,
            reference,
        };
        session.run("logging in", async {
            session
                .client
                .auth(&session.reference, &session.auth, operation)
                .await
        })?;
        Ok(session)
    }

    /// The registry's host (and port).
    pub(crate) fn registry(&self) -> &str {
        self.reference.resolve_registry()
    }

    /// The reference of `digest` in the session's repository.
    pub(crate) fn at(&self, digest: &str) -> Reference {
        self.reference.clone_with_digest(digest.to_string())
    }

    /// The reference of `tag` in the session's repository.
    pub(crate) fn tagged(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            tag.to_string(),
        )
    }

    /// Runs `future` to its end; an error says it happened `doing` something.
    pub(crate) fn run<T>(
        &self,
        doing: &str,
        future: impl Future<Output = Result<T, OciDistributionError>>,
    ) -> Result<T, RegistryError> {
        (self.runtime.block_on(future)).map_err(|e| self.error(doing, e))
    }

    /// Runs `future`, whose errors are already ours.
    pub(crate) fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    /// The client, with the credentials stored for the session's registry.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The credentials.
    pub(crate) fn auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// What the client's error means for the user: refused credentials, an unknown
    /// manifest, or a failure saying what the registry answered.
    pub(crate) fn error(&self, doing: &str, err: OciDistributionError) -> RegistryError {
        let registry = self.registry().to_string();
        let (status, said) = answer(&err);
        match status {
            Some(401 | 403) => RegistryError::Credentials {
                registry,
                who: self.who.clone(),
                said,
            },
            Some(404) if doing == MANIFEST_PULL => RegistryError::Unknown {
                reference: self.reference.whole(),
                said,
            },
            _ => RegistryError::Failed {
                registry,
                doing: doing.to_string(),
                said,
            },
        }
    }
}

/// What [`Session::error`] calls fetching the manifest, whose 404 is an unknown tag.
pub(crate) const MANIFEST_PULL: &str = "fetching the manifest";

/// The HTTP status of a client error, when it has one, and what the registry said: its
/// error envelope's messages, else the error, with its causes (a refused connection).
fn answer(err: &OciDistributionError) -> (Option<u16>, String) {
    use OciDistributionError as E;
    let status = match err {
        E::RequestError(e) => e.status().map(|s| s.as_u16()),
        E::ServerError { code, .. } => Some(*code),
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => Some(401),
        E::ImageManifestNotFoundError(_) => Some(404),
        E::RegistryError { envelope, .. } => envelope.errors.iter().find_map(|e| match e.code {
            OciErrorCode::Unauthorized => Some(401),
            OciErrorCode::Denied => Some(403),
            OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown => Some(404),
            _ => None,
        }),
        _ => None,
    };
    let said = match err {
        E::RegistryError { envelope, .. } => (envelope.errors.iter())
            .map(|e| format!("{} ({:?})", e.message, e.code))
            .collect::<Vec<_>>()
            .join("; "),
        E::ServerError { code, message, .. } => {
            let message = serde_json::from_str::<oci_client::errors::OciEnvelope>(message)
                .map(|envelope| {
                    (envelope.errors.iter())
                        .map(|e| e.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_else(|_| excerpt(message.trim()).to_string());
            format!("HTTP {code} {message}")
        }
        E::UnauthorizedError { .. } => "HTTP 401 Unauthorized".to_string(),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let cause = cause.to_string();
                if !text.contains(&cause) {
                    text = format!("{text}: {cause}");
                }
                source = cause_of(source);
            }
            text
        }
    };
    (status, said)
}

/// The next cause in an error chain.
fn cause_of<'e>(
    err: Option<&'e (dyn std::error::Error + 'static)>,
) -> Option<&'e (dyn std::error::Error + 'static)> {
    err.and_then(std::error::Error::source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_must_name_their_registry() {
        let r = parse_reference("127.0.0.1:5000/team/web:web-1.0").unwrap();
        assert!(r.named);
        let r = r.reference;
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "team/web", Some("web-1.0"))
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = parse_reference(&format!("localhost/web@{digest}")).unwrap();
        assert!(r.named);
        assert!(!parse_reference("localhost:5000/web").unwrap().named);
        let r = r.reference;
        assert_eq!(r.digest(), Some(digest.as_str()));
        let sha512 = format!("localhost/web@sha512:{}", "a".repeat(128));
        for (text, why) in [
            ("web", "it names no repository"),
            ("team/web", "it does not start with a registry host"),
            (
                "registry.example.com/",
                "it does not start with a registry host",
            ),
            ("localhost/web@sha256:abc", "invalid reference format"),
            (&sha512, "its digest is not sha256"),
        ] {
            let err = parse_reference(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("REGISTRY/REPOSITORY[:TAG]"), "{err}");
        }
    }
}
