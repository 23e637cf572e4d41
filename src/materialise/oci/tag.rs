//! The name an OCI layout gives its image (`org.opencontainers.image.ref.name` in
//! `index.json`), which `skopeo` and `umoci` take after `OUT:`. It is held to the
//! distribution specification's tag grammar, `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`, so the
//! same name also works when the image is copied to a registry.

use std::fmt;

use super::super::MaterialiseError;

/// The longest tag the grammar allows.
const MAX: usize = 128;

/// A valid tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(String);

impl Tag {
    /// `text` as a tag, when the grammar allows it.
    pub fn parse(text: &str) -> Result<Tag, MaterialiseError> {
        let mut chars = text.chars();
        let valid = text.len() <= MAX
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if valid {
            Ok(Tag(text.to_string()))
        } else {
            Err(MaterialiseError::BadTag {
                tag: crate::excerpt::excerpt(text).to_string(),
            })
        }
    }

    /// The tag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `latest`, the name every tool looks for when none is given.
impl Default for Tag {
    fn default() -> Tag {
        Tag("latest".to_string())
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_distribution_grammar() {
        for good in ["latest", "1.0", "v1.0-rc_2", "_x", "A", &"a".repeat(128)] {
            assert_eq!(Tag::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", ".x", "-x", "a b", "a:b", "a/b", "é"] {
            let err = Tag::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("bad tag `{bad}`: ")), "{err}");
        }
        let long = Tag::parse(&"a".repeat(129)).unwrap_err().to_string();
        assert!(long.contains("(129 bytes)"), "{long}");
        assert_eq!(Tag::default().to_string(), "latest");
    }
}
