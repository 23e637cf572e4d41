//! The group and flavor language (KDL v2).
//!
//! [`group`] files say what goes into an appliance, [`flavor`] files what it is built
//! for; conditions inside groups are [`expr`] flag expressions. Everything that points
//! into a file fails with a [`LangError`] naming `path:line:column`.

pub(crate) mod container;
pub(crate) mod diag;
pub(crate) mod expr;
pub(crate) mod flavor;
pub(crate) mod group;
mod node;

pub use container::{ContainerSetting, RunAs};
pub use diag::{Diag, LangError, Location, Site};
pub use expr::{Expr, ExprError, Term, TermKind};
pub use flavor::{FORMATS, Flavor, debian_arch, parse_flavor_text};
pub use group::{
    Account, AccountKind, Condition, Exclude, FileStatement, GroupDef, Hostfile, Include, Known,
    Overlay, PathsGlob, Preseed, Removal, Statement, UnitChange, parse_group_text,
};
