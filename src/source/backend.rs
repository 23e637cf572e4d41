//! Which package manager a compile works with: the sysroot's own, found by what
//! database it holds, or the one `--backend` names.

use std::path::Path;

use super::rpm::Rpmdb;
use crate::lock::Backend;

/// The backend of the system under `sysroot`: dpkg when it has a dpkg status file,
/// else RPM when it has an rpm database (of any format); `None` when it has neither.
pub fn detect(sysroot: &Path) -> Option<Backend> {
    if sysroot.join("var/lib/dpkg/status").is_file() {
        Some(Backend::Dpkg)
    } else if Rpmdb::present(sysroot) {
        Some(Backend::Rpm)
    } else {
        None
    }
}
