//! Quoting untrusted input values in error messages: short, and always one line.

/// How many characters of an input value an error quotes: a 70,000-character package
/// name must not make a 70 KB line.
const EXCERPT_CHARS: usize = 100;

/// An input value as an error message quotes it: its first 100 characters, then
/// `... (N bytes)` when there are more, with control characters escaped (`\n`), so a
/// quoted value never breaks the one line the message is.
pub(crate) struct Excerpt<'a>(&'a str);

/// [`Excerpt`] of `text`, for every error that quotes an input value.
pub(crate) fn excerpt(text: &str) -> Excerpt<'_> {
    Excerpt(text)
}

impl std::fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(EXCERPT_CHARS) {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                std::fmt::Write::write_char(f, c)?;
            }
        }
        if chars.next().is_some() {
            write!(f, "... ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// `items` for a one-line message: the first `shown`, then `, and N more` for the
/// rest, so a message about any number of them stays short.
pub(crate) fn first_few<T: std::fmt::Display>(
    items: impl ExactSizeIterator<Item = T>,
    shown: usize,
) -> String {
    let more = items.len().saturating_sub(shown);
    let listed: Vec<String> = items.take(shown).map(|i| i.to_string()).collect();
    match more {
        0 => listed.join(", "),
        n => format!("{}, and {n} more", listed.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::{excerpt, first_few};

    #[test]
    fn a_list_names_the_first_few_of_many() {
        let paths: Vec<String> = (1..=10).map(|i| format!("/etc/k{i}.pem")).collect();
        let listed = |n: usize| first_few(paths[..n].iter(), 8);
        assert_eq!(listed(1), "/etc/k1.pem");
        assert_eq!(listed(8).matches(".pem").count(), 8);
        let many = listed(10);
        assert!(many.starts_with("/etc/k1.pem, /etc/k2.pem"), "{many}");
        assert!(many.ends_with("/etc/k8.pem, and 2 more"), "{many}");
    }

    #[test]
    fn an_excerpt_is_short_and_one_line() {
        assert_eq!(excerpt("libc6").to_string(), "libc6");
        assert_eq!(excerpt("a\nb\t\u{1}c").to_string(), "a\\nb\\t\\u{1}c");
        let huge = "é".repeat(70_000);
        let shown = excerpt(&huge).to_string();
        assert_eq!(shown, format!("{}... (140000 bytes)", "é".repeat(100)));
        assert_eq!(excerpt(&"x".repeat(100)).to_string(), "x".repeat(100));
    }
}
