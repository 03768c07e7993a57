//! Query strings as Django reads them (`request.GET`): the `application/x-www-form-urlencoded`
//! pairs in order, a repeated name kept, `QueryDict.get` reading its last value; and the one
//! kind of value the legacy endpoints take from them, DRF's optional `IntegerField`.

use axum::http::Uri;

use crate::domain::messages;

/// The decoded pairs of a URI's query string, in order.
pub fn pairs(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The last value of `name` (Django's `QueryDict.get`).
pub fn last<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// An optional `IntegerField(min_value=…)` query parameter, as DRF reads it: the last value of
/// the name; empty means absent; Python's `int()` syntax after dropping a `.0` tail.
pub fn integer_param(pairs: &[(String, String)], name: &str, min: i64) -> Result<Option<i64>, String> {
    let Some(raw) = last(pairs, name) else { return Ok(None) };
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.chars().count() > 1000 {
        return Err(messages::INTEGER_TOO_LONG.to_owned());
    }
    let value = python_int(strip_decimal_zeros(raw)).ok_or_else(|| messages::INVALID_INTEGER.to_owned())?;
    if value < min {
        return Err(messages::at_least(min));
    }
    Ok(Some(value))
}

/// DRF's `re.sub(r'\.0*\s*$', '', value)`.
fn strip_decimal_zeros(raw: &str) -> &str {
    let trimmed = raw.trim_end();
    let without_zeros = trimmed.trim_end_matches('0');
    match without_zeros.strip_suffix('.') {
        Some(head) => head,
        None => raw,
    }
}

/// Python's `int(text)`: surrounding whitespace, a sign, digits with single `_` between them.
/// Values beyond `i64` saturate (they only ever bound a query).
fn python_int(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let mut value: i64 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let digit = c.to_digit(10)? as i64;
        value = value.saturating_mul(10).saturating_add(digit);
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_params_follow_drf() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        assert_eq!(integer_param(&q(&[]), "limit", 1), Ok(None));
        assert_eq!(integer_param(&q(&[("limit", "")]), "limit", 1), Ok(None));
        assert_eq!(integer_param(&q(&[("limit", "5")]), "limit", 1), Ok(Some(5)));
        assert_eq!(integer_param(&q(&[("limit", "1"), ("limit", "7")]), "limit", 1), Ok(Some(7)));
        assert_eq!(integer_param(&q(&[("limit", " +1_000.00 ")]), "limit", 1), Ok(Some(1000)));
        assert_eq!(integer_param(&q(&[("limit", "abc")]), "limit", 1), Err("A valid integer is required.".into()));
        assert_eq!(integer_param(&q(&[("limit", "1.5")]), "limit", 1), Err("A valid integer is required.".into()));
        assert_eq!(integer_param(&q(&[("limit", "1__0")]), "limit", 1), Err("A valid integer is required.".into()));
        assert_eq!(
            integer_param(&q(&[("before", "0")]), "before", 1),
            Err("Ensure this value is greater than or equal to 1.".into())
        );
    }
}
