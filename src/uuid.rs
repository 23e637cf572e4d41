//! UUIDs as text: the one layout RFC 9562 gives every version, for the ids appliance
//! derives from a lock (a filesystem's, an SBOM's serial number).

/// `bytes` as a UUID of `version` (4 random, 5 name-based): its version nibble and the
/// RFC variant bits set, written `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub(crate) fn text(mut bytes: [u8; 16], version: u8) -> String {
    bytes[6] = (bytes[6] & 0x0f) | (version << 4);
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_and_variant_are_stamped() {
        let text = super::text([0xff; 16], 5);
        assert_eq!(text, "ffffffff-ffff-5fff-bfff-ffffffffffff");
        assert_eq!(
            super::text([0; 16], 4),
            "00000000-0000-4000-8000-000000000000"
        );
    }
}
