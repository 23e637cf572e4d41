//! `appliance`: build exact, reproducible operating-system appliances.
//!
//! Data flows one way: [`lang`] definitions (found through [`workspace`]) -> [`resolve`]
//! -> [`lock`] -> [`repo`] -> [`materialise`] -> output. [`source`] describes the
//! package universe the resolver chooses from; [`archive`] reads the members of package
//! archives and overlay tarballs into lock entries; [`boot`] runs an image output under
//! qemu; [`manual`] writes the command line's completion scripts and man pages.

pub mod archive;
pub mod boot;
pub mod bundle;
pub mod commands;
pub mod compile;
pub mod confine;
mod error;
mod excerpt;
pub mod gc;
pub mod history;
mod io_pool;
pub mod lang;
pub mod lock;
pub mod manual;
pub mod materialise;
mod no_follow;
pub mod progress;
pub mod registry;
pub mod repo;
pub mod resolve;
pub mod sbom;
mod scratch;
pub mod source;
mod stderr;
pub mod system;
mod uuid;
pub mod workspace;

pub use error::{Error, Result};
