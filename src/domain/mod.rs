//! Validation rules of the domain, with Django REST Framework's messages word for word, because
//! legacy clients show them to people. GraphQL and the legacy layer both reach them through the
//! services, so each rule is written once.

mod email;
pub mod messages;
mod password;

pub use email::is_valid_email;
pub use password::password_problems;

use std::sync::LazyLock;

use messages::{BLANK, NULL_CHARACTERS, too_long};

pub const USERNAME_MAX: usize = 150;
pub const EMAIL_MAX: usize = 254;
pub const PASSWORD_MAX: usize = 128;
pub const POST_TITLE_MAX: usize = 255;
pub const POST_CONTENT_MAX: usize = 10_000;
pub const MESSAGE_MAX: usize = 4_000;
pub const BIO_MAX: usize = 500;

/// Whether a string can be stored or looked up: PostgreSQL's `text` cannot hold NUL (a query
/// carrying one fails), and every stored string went through a rule that refuses it. So a name
/// with NUL names nothing: lookups answer "not found" without asking the database, and fields
/// DRF validates report [`NULL_CHARACTERS`]. This is the one place that knows it.
pub fn storable(value: &str) -> bool {
    !value.contains('\0')
}

/// `str.strip()`, as DRF's `CharField` trims: Unicode whitespace, and U+001C–U+001F, which Python
/// counts as whitespace and Rust's `str::trim` does not.
pub fn trim(value: &str) -> &str {
    value.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// DRF's `CharField`: surrounding whitespace trimmed, then blank, length and NUL checks.
/// Returns the trimmed value or every problem with it.
pub fn clean_text(raw: &str, max: usize, allow_blank: bool) -> Result<String, Vec<String>> {
    let value = trim(raw);
    if value.is_empty() {
        return if allow_blank { Ok(String::new()) } else { Err(vec![BLANK.to_owned()]) };
    }
    let mut problems = Vec::new();
    if value.chars().count() > max {
        problems.push(too_long(max));
    }
    if !storable(value) {
        problems.push(NULL_CHARACTERS.to_owned());
    }
    if problems.is_empty() { Ok(value.to_owned()) } else { Err(problems) }
}

static USERNAME_RE: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(r"^[\w.@+\-]+$").expect("valid regex"));

/// Django's `UnicodeUsernameValidator`: letters (Unicode), digits and `@.+-_`.
pub fn is_valid_username(name: &str) -> bool {
    USERNAME_RE.is_match(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(clean_text("  hi \n", 5, false), Ok("hi".to_owned()));
        assert_eq!(clean_text("   ", 5, false), Err(vec![BLANK.to_owned()]));
        assert_eq!(clean_text("   ", 5, true), Ok(String::new()));
        // Python's `str.strip()` also drops U+001C–U+001F (Rust's `trim` keeps them).
        assert_eq!(clean_text("\u{1c} hi \u{1f}", 5, false), Ok("hi".to_owned()));
        assert_eq!(clean_text("\u{1d}\u{1e}", 5, false), Err(vec![BLANK.to_owned()]));
        assert_eq!(clean_text("\u{feff}", 5, false), Ok("\u{feff}".to_owned()), "not whitespace to Python");
        assert_eq!(clean_text("éééééé", 5, false), Err(vec![too_long(5)]));
        assert_eq!(clean_text("ééééé", 5, false), Ok("ééééé".to_owned()));
    }

    #[test]
    fn usernames_follow_django() {
        for ok in ["alice", "a.b@c+d-e_f", "Łukasz", "名前", "user1"] {
            assert!(is_valid_username(ok), "{ok}");
        }
        for bad in ["a b", "a/b", "a!", "", "tab\t"] {
            assert!(!is_valid_username(bad), "{bad}");
        }
    }
}
