//! What compile keeps in the repository to take back in a later compile (configured
//! trees, what archives hold): encoded one way, and taken back only by the build of
//! appliance that kept it, since its rules may change from build to build.

use std::cell::RefCell;
use std::io::BufWriter;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zstd::zstd_safe::{CCtx, CParameter};

/// What tells this build of appliance from another: its version and its executable's
/// file (a new build is a new file). The scripts' settings, capture's rules and how an
/// archive is read change from build to build, so what one build kept is taken back
/// only by that build. `None` when the executable cannot be examined: nothing is kept.
pub(super) fn build_identity() -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt;
    static IDENTITY: OnceLock<Option<String>> = OnceLock::new();
    let identity = IDENTITY.get_or_init(|| {
        let exe = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
        Some(format!(
            "{} {}:{} {} {}.{}",
            env!("CARGO_PKG_VERSION"),
            exe.dev(),
            exe.ino(),
            exe.len(),
            exe.mtime(),
            exe.mtime_nsec()
        ))
    });
    identity.as_deref()
}

/// `value` as the repository keeps it: JSON, compressed. `None` if it cannot be
/// encoded, which only means it is not kept.
pub(super) fn encode<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    thread_local! {
        // Each thread keeps its compression context, and the JSON goes to it as it is
        // written: freeing a buffer of a megabyte or more after each encode raises
        // glibc's mmap threshold to it, so the larger buffers allocated after it come
        // from the heap and stay resident (a 50,000-file compile peaked 16 MB higher).
        static CONTEXT: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    }
    CONTEXT.with(|context| {
        let mut context = context.borrow_mut();
        if context.is_none() {
            let mut made = CCtx::try_create()?;
            made.set_parameter(CParameter::CompressionLevel(LEVEL))
                .ok()?;
            *context = Some(made);
        }
        let encoder = zstd::stream::write::Encoder::with_context(Vec::new(), context.as_mut()?);
        let mut json = BufWriter::with_capacity(JSON_BUFFER, encoder);
        serde_json::to_writer(&mut json, value).ok()?;
        json.into_inner().ok()?.finish().ok()
    })
}

/// How much JSON is handed to the compressor at once: below the 128 KiB from which
/// glibc maps a buffer of its own.
const JSON_BUFFER: usize = 64 << 10;

/// The value [`encode`] made of `kept`; `None` for bytes no appliance wrote, which
/// are made again and kept anew.
pub(super) fn decode<T: DeserializeOwned>(kept: &[u8]) -> Option<T> {
    serde_json::from_slice(&zstd::decode_all(kept).ok()?).ok()
}

/// The zstd level: JSON of entries and text files compresses well even at a fast level.
const LEVEL: i32 = 3;
