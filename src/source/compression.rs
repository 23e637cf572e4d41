//! How package archives compress what they hold: a `.deb`'s tar members and an `.rpm`'s
//! cpio payload come in the same four kinds, read through one decoder.

use std::io::{self, Read};

/// A compression a package archive may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// gzip.
    Gzip,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression of a `.deb` member `name` (`data.tar.xz`) given its stem
    /// (`data.tar`), by its suffix.
    pub fn of(name: &str, stem: &str) -> Option<Compression> {
        match name.strip_prefix(stem)? {
            "" => Some(Compression::None),
            ".gz" => Some(Compression::Gzip),
            ".xz" => Some(Compression::Xz),
            ".zst" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The compression an rpm header's `RPMTAG_PAYLOADCOMPRESSOR` names (none when the
    /// tag is absent).
    pub fn of_payload(compressor: Option<&str>) -> Option<Compression> {
        match compressor {
            None | Some("identity") => Some(Compression::None),
            Some("gzip") => Some(Compression::Gzip),
            Some("xz" | "lzma") => Some(Compression::Xz),
            Some("zstd") => Some(Compression::Zstd),
            Some(_) => None,
        }
    }

    /// Wraps `raw` in the matching decompressor (only zstd's can fail to start).
    pub fn decoder<'a>(self, raw: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(raw)),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new(raw)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
        })
    }
}
