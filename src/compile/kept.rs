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
            // A 128 KiB window and tables, not the level's 2 MiB window: the context
            // stays resident, and the JSON of sorted entries finds its matches near.
            // (Web's kept tree grew 2%, and a fresh compile of it peaked 7 MB lower.)
            for parameter in [
                CParameter::CompressionLevel(LEVEL),
                CParameter::WindowLog(17),
                CParameter::HashLog(15),
                CParameter::ChainLog(15),
            ] {
                made.set_parameter(parameter).ok()?;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A value decodes to itself, and encodes to the same bytes again on a thread
    /// whose context was used before (an unfinished earlier frame included) and on a
    /// thread of its own.
    #[test]
    fn what_is_encoded_decodes_to_itself_whatever_the_thread_encoded_before() {
        let value: Vec<(String, u64)> = (0..5000)
            .map(|i| (format!("/usr/share/doc/{i}"), i))
            .collect();
        let first = encode(&value).unwrap();
        assert_eq!(decode::<Vec<(String, u64)>>(&first).unwrap(), value);
        // serde_json refuses a map with keys that are not strings: this encode fails
        // once more JSON than its buffer holds went to the context.
        let unencodable: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(serde_json::to_vec(&value).unwrap().len() > JSON_BUFFER);
        assert!(encode(&(&value, unencodable)).is_none());
        assert_eq!(encode(&value).unwrap(), first);
        let copy = value.clone();
        let there = std::thread::spawn(move || encode(&copy).unwrap());
        assert_eq!(there.join().unwrap(), first);
        assert!(decode::<Vec<(String, u64)>>(b"not what encode makes").is_none());
    }
}
