//! Which package manager a lock's packages are: it says whose rules resolved them, whose
//! archives hold their bytes and how their versions compare.

use serde::{Deserialize, Serialize};

/// The package manager whose packages, rules and database a lock is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Debian's: `.deb` archives, `var/lib/dpkg/status`, apt's lists.
    #[default]
    Dpkg,
    /// RPM: `.rpm` archives, `rpmdb.sqlite`, createrepo_c folders.
    Rpm,
}

impl Backend {
    /// Whether this is dpkg, which locks leave unsaid so that theirs keep the ids they
    /// had before there was a choice.
    pub fn is_dpkg(&self) -> bool {
        *self == Backend::Dpkg
    }

    /// The architecture name this package manager gives `flavor`'s instruction set
    /// (rpm's names are the flavors'; dpkg says `amd64` for `x86_64`).
    pub fn arch(self, flavor: &crate::lang::Flavor) -> &str {
        match self {
            Backend::Dpkg => flavor.debian_arch(),
            Backend::Rpm => &flavor.arch,
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(word: &str) -> Result<Backend, String> {
        match word {
            "dpkg" => Ok(Backend::Dpkg),
            "rpm" => Ok(Backend::Rpm),
            _ => Err(format!(
                "`{}` is no backend: write `dpkg` or `rpm`",
                crate::excerpt::excerpt(word)
            )),
        }
    }
}
