//! Paths to a value inside a nested value, for error messages.

use std::fmt;

/// Error messages quote user input; past this many characters they elide the rest, so that a
/// megabyte-long field name cannot turn into a megabyte-long log line.
pub(crate) const MAX_QUOTED_CHARS: usize = 100;

/// A path built on the stack while walking a value (or any JSON), for error messages: `a.b[3].c`.
/// Rendering happens only when an error is reported, so walking a large, valid document allocates
/// nothing for paths.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    pub fn field(&'a self, name: &'a str) -> Path<'a> {
        Path::Field(self, name)
    }

    pub fn index(&'a self, index: usize) -> Path<'a> {
        Path::Index(self, index)
    }

    /// Renders as `a.b[3].c`; the root renders as the empty string.
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Cuts `text` to [`MAX_QUOTED_CHARS`] characters, marking the cut with an ellipsis.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// Renders `value` for an error message, stopping after [`MAX_QUOTED_CHARS`] characters so
/// that describing a huge value costs no more than describing a small one.
pub(crate) fn describe(value: &impl fmt::Display) -> String {
    struct Bounded {
        out: String,
        chars: usize,
    }
    impl fmt::Write for Bounded {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            for character in text.chars() {
                if self.chars == MAX_QUOTED_CHARS {
                    return Err(fmt::Error);
                }
                self.out.push(character);
                self.chars += 1;
            }
            Ok(())
        }
    }
    let mut bounded = Bounded { out: String::new(), chars: 0 };
    if fmt::write(&mut bounded, format_args!("{value}")).is_err() {
        bounded.out.push('…');
    }
    bounded.out
}

/// A path quoted for a message, or `(root)` for the root.
pub(crate) fn quoted_path(path: &str) -> String {
    if path.is_empty() { "(root)".to_owned() } else { format!("`{}`", shorten(path)) }
}

/// Where in a value something is: `field "a.b[3]"`, or `the top level` for the root.
pub(crate) struct Location<'a>(pub(crate) &'a str);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() { f.write_str("the top level") } else { write!(f, "field \"{}\"", shorten(self.0)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_and_indexes() {
        let root = Path::Root;
        let a = root.field("a");
        let b = a.field("b");
        let third = b.index(3);
        let c = third.field("c");
        assert_eq!(c.render(), "a.b[3].c");
        assert_eq!(root.index(0).render(), "[0]");
        assert_eq!(root.render(), "");
    }

    #[test]
    fn shortens_long_text_on_a_char_boundary() {
        let long = "é".repeat(MAX_QUOTED_CHARS + 1);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(short.ends_with('…'));
        assert_eq!(shorten("abc"), "abc");
    }

    #[test]
    fn describe_stops_early() {
        assert_eq!(describe(&"abc"), "abc");
        let long = "x".repeat(10 * MAX_QUOTED_CHARS);
        let described = describe(&long);
        assert_eq!(described.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(described.ends_with('…'));
        assert_eq!(quoted_path(""), "(root)");
        assert_eq!(quoted_path("a.b"), "`a.b`");
    }

    #[test]
    fn locations_name_the_top_level() {
        assert_eq!(Location("").to_string(), "the top level");
        assert_eq!(Location("a[1]").to_string(), "field \"a[1]\"");
    }
}
