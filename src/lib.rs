//! `appliance`: build exact, reproducible operating-system appliances.
//!
//! Data flows one way: [`lang`] definitions (found through [`workspace`]) -> [`resolve`]
//! -> [`lock`] -> [`repo`] -> [`materialise`] -> output. [`source`] describes the
//! package universe the resolver chooses from; [`boot`] runs an image output under qemu.

pub mod boot;
pub mod commands;
pub mod compile;
pub mod confine;
mod error;
pub mod lang;
pub mod lock;
pub mod materialise;
mod progress;
pub mod repo;
pub mod resolve;
mod scratch;
pub mod source;
pub mod system;
pub mod workspace;

pub use error::{Error, Result};
