//! How package archives compress what they hold: a `.deb`'s tar members and an `.rpm`'s
//! cpio payload come in the same kinds (old rpms add raw lzma), read through one decoder.

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
    /// The raw `.lzma` format that xz replaced, which rpms of before 2010 (and some
    /// rebuilt since) carry.
    Lzma,
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
            ".lzma" => Some(Compression::Lzma),
            _ => None,
        }
    }

    /// The compression an rpm header's `RPMTAG_PAYLOADCOMPRESSOR` names (none when the
    /// tag is absent).
    pub fn of_payload(compressor: Option<&str>) -> Option<Compression> {
        match compressor {
            None | Some("identity") => Some(Compression::None),
            Some("gzip") => Some(Compression::Gzip),
            Some("xz") => Some(Compression::Xz),
            Some("lzma") => Some(Compression::Lzma),
            Some("zstd") => Some(Compression::Zstd),
            Some(_) => None,
        }
    }

    /// Wraps `raw` in the matching decompressor (zstd's and lzma's can fail to start).
    pub fn decoder<'a>(self, raw: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(raw)),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new(raw)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
            Compression::Lzma => {
                let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX)?;
                Box::new(liblzma::read::XzDecoder::new_stream(raw, stream))
            }
        })
    }
}

#[cfg(test)]
impl Compression {
    /// `bytes` compressed so, for fixtures.
    pub(crate) fn compress(self, bytes: &[u8]) -> Vec<u8> {
        use liblzma::stream::{LzmaOptions, Stream};
        use std::io::Write;
        match self {
            Compression::None => bytes.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                e.write_all(bytes).unwrap();
                e.finish().unwrap()
            }
            Compression::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
                e.write_all(bytes).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(bytes, 3).unwrap(),
            Compression::Lzma => {
                let options = LzmaOptions::new_preset(6).unwrap();
                let stream = Stream::new_lzma_encoder(&options).unwrap();
                let mut packed = Vec::new();
                (liblzma::read::XzEncoder::new_stream(bytes, stream))
                    .read_to_end(&mut packed)
                    .unwrap();
                packed
            }
        }
    }

    /// The suffix of a `.deb` member compressed so.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Lzma => ".lzma",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_lzma_payload_decodes() {
        let text = b"an old rpm's payload ".repeat(100);
        let packed = Compression::Lzma.compress(&text);
        let lzma = Compression::of_payload(Some("lzma")).unwrap();
        let mut out = Vec::new();
        lzma.decoder(&packed[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, text);
        // xz's decoder refuses the format, which is why it has its own.
        let xz = Compression::Xz
            .decoder(&packed[..])
            .unwrap()
            .read_to_end(&mut Vec::new());
        assert!(xz.is_err());
    }
}
