//! Django's `EmailValidator`, closely: a dot-atom or quoted local part, and a domain of labels
//! with a TLD of at least two characters, a bracketed IP literal, or `localhost`.

use std::sync::LazyLock;

use regex::Regex;

static USER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)^(?:[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*|"(?:[\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*")$"#,
    )
    .expect("valid regex")
});

static DOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:[a-z0-9\u{a1}-\u{ffff}](?:[a-z0-9\u{a1}-\u{ffff}-]{0,61}[a-z0-9\u{a1}-\u{ffff}])?\.)+[a-z0-9\u{a1}-\u{ffff}-]{2,63}$")
        .expect("valid regex")
});

pub fn is_valid_email(value: &str) -> bool {
    if value.is_empty() || value.chars().count() > 320 {
        return false;
    }
    let Some((user, domain)) = value.rsplit_once('@') else {
        return false;
    };
    if !USER_RE.is_match(user) {
        return false;
    }
    if domain == "localhost" {
        return true;
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let literal = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return literal.parse::<std::net::IpAddr>().is_ok();
    }
    // A TLD may not end with a hyphen.
    DOMAIN_RE.is_match(domain) && !domain.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::is_valid_email;

    #[test]
    fn accepts_and_refuses_like_django() {
        for ok in ["a@example.com", "first.last+tag@sub.example.co", "x@localhost", "u@[127.0.0.1]", "u@bücher.de"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "a@b",
            "a@b.c",
            "a@@b.com",
            "a b@c.com",
            ".a@b.com",
            "a@-b.com",
            "a@b.com-",
            "123",
            "ü@example.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }
}
