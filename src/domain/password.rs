//! Django's password validators as the legacy service configured them: similarity to the
//! username and email, at least 8 characters, not entirely numeric.

use super::messages;

const MIN_LENGTH: usize = 8;
const MAX_SIMILARITY: f64 = 0.7;

/// Every problem with `password` (already trimmed), in Django's order. `username` and `email`
/// are the raw submitted values, as Django's similarity check reads them.
pub fn password_problems(password: &str, username: Option<&str>, email: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    for (value, label) in [(username, "username"), (email, "email address")] {
        if let Some(value) = value.filter(|v| !v.is_empty())
            && too_similar(password, value)
        {
            problems.push(messages::password_too_similar(label));
            break;
        }
    }
    if password.chars().count() < MIN_LENGTH {
        problems.push(messages::password_too_short(MIN_LENGTH));
    }
    if !password.is_empty() && password.chars().all(char::is_numeric) {
        problems.push(messages::PASSWORD_NUMERIC.to_owned());
    }
    problems
}

/// `UserAttributeSimilarityValidator`: the value and each of its `\W+`-separated parts are
/// compared with `SequenceMatcher.quick_ratio`, skipping values far shorter than the password.
fn too_similar(password: &str, value: &str) -> bool {
    let password_len = password.chars().count() as f64;
    let value_len = value.chars().count() as f64;
    if password_len >= 10.0 * value_len && value_len < MAX_SIMILARITY / 2.0 * password_len {
        return false;
    }
    let password = password.to_lowercase();
    let value = value.to_lowercase();
    value
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .chain(std::iter::once(value.as_str()))
        .any(|part| quick_ratio(&password, part) >= MAX_SIMILARITY)
}

/// Python's `difflib.SequenceMatcher(a, b).quick_ratio()`: 2·M / T with M the size of the
/// multiset intersection of the characters.
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut available: std::collections::HashMap<char, i64> = std::collections::HashMap::new();
    for c in b.chars() {
        *available.entry(c).or_default() += 1;
    }
    let mut matches = 0usize;
    for c in a.chars() {
        if let Some(n) = available.get_mut(&c)
            && *n > 0
        {
            *n -= 1;
            matches += 1;
        }
    }
    2.0 * matches as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_messages_in_order() {
        assert_eq!(
            password_problems("123", None, None),
            vec![
                "This password is too short. It must contain at least 8 characters.",
                "This password is entirely numeric."
            ]
        );
        assert_eq!(password_problems("12345678", None, None), vec!["This password is entirely numeric."]);
        assert_eq!(
            password_problems("probe_alice", Some("probe_alice"), None),
            vec!["The password is too similar to the username."]
        );
        assert_eq!(
            password_problems("alice@example.com", Some("zzz"), Some("alice@example.com")),
            vec!["The password is too similar to the email address."]
        );
        assert!(password_problems("correct horse battery", Some("alice"), Some("alice@example.com")).is_empty());
    }

    #[test]
    fn quick_ratio_matches_python() {
        // difflib.SequenceMatcher(None, "abcd", "bcde").quick_ratio() == 0.75
        assert!((quick_ratio("abcd", "bcde") - 0.75).abs() < 1e-9);
        assert_eq!(quick_ratio("", ""), 1.0);
    }
}
