//! The commands: one file each, as cargo keeps its own. A command takes its options,
//! asks the library modules for the work (compile, materialise, history, bundle, ...)
//! and writes what the user reads; how it is written (lines, JSON, error reports) is
//! [`present`]'s.

mod boot;
mod compile;
mod context;
mod diff;
mod export;
mod flavors;
mod gc;
mod import;
mod list;
mod log;
mod materialise;
mod present;
mod pull;
mod push;
mod remote;
mod sbom;
mod show;
mod verify;
mod why;

pub use boot::{BootOptions, boot};
pub use compile::{CompileOptions, compile};
pub use context::{Context, Lookup};
pub use diff::{DiffOptions, diff};
pub use export::{ExportOptions, export};
pub use flavors::flavors;
pub use gc::{GcOptions, RmOptions, gc, rm};
pub use import::import;
pub use list::list;
pub use log::{LogOptions, log};
pub use materialise::{MaterialiseOptions, materialise};
pub use present::report;
pub use pull::pull;
pub use push::{PushOptions, push};
pub use remote::RemoteOptions;
pub use sbom::{SbomOptions, sbom};
pub use show::{ShowOptions, show};
pub use verify::verify;
pub use why::why;
