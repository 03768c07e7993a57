//! JSON request bodies read the way Django REST Framework reads them: UTF-8 decoded as Python's
//! `codecs` stream reader does, then parsed by a scanner that follows CPython 3.11's `json`
//! module step by step, so a malformed body gets the very message legacy clients saw
//! (`Expecting property name enclosed in double quotes: line 1 column 2 (char 1)`).
//!
//! Values keep what DRF's fields look at: integers as their exact digits, floats as `f64`,
//! objects in document order (a repeated key keeps its first place and takes the last value).
//!
//! Bounded for hostile input: the scanner keeps open arrays and objects on a heap stack rather
//! than recursing, and refuses nesting deeper than [`MAX_DEPTH`] (with CPython's `RecursionError`
//! message), so neither it nor the recursive functions over a parsed value (`py_repr`, `Drop`, …)
//! can exhaust a worker's stack; repeated keys are found through a hash index ([`DictBuilder`]),
//! so an object costs linear time.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// The deepest nesting of arrays and objects a document may have. CPython's `json` gives up
/// near 1,000 levels (its recursion limit, less the frames already in use); no legitimate
/// body of the legacy API nests more than two. The scanner itself does not recurse; 512 levels
/// keep what does (`repr`, `Drop`, derived `Clone`/`PartialEq`) within a quarter of a tokio
/// worker's 2 MiB stack, in debug builds too (a unit test checks this).
pub const MAX_DEPTH: usize = 512;

/// A parsed JSON value, as Python's `json` module would hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    Null,
    Bool(bool),
    /// An integer, as its decimal digits (Python integers are unbounded).
    Int(String),
    Float(f64),
    Str(String),
    List(Vec<PyValue>),
    Dict(Vec<(String, PyValue)>),
    /// A file part of a multipart body (DRF's `UploadedFile`), by its file name.
    File(String),
}

impl PyValue {
    /// Python's `type(value).__name__`, as DRF names it in "Expected a dictionary, but got …".
    pub fn type_name(&self) -> &'static str {
        match self {
            PyValue::Null => "NoneType",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Str(_) => "str",
            PyValue::List(_) => "list",
            PyValue::Dict(_) => "dict",
            PyValue::File(_) => "InMemoryUploadedFile",
        }
    }

    /// Python's `str(value)`.
    pub fn py_str(&self) -> String {
        match self {
            PyValue::Str(s) | PyValue::File(s) => s.clone(),
            other => other.py_repr(),
        }
    }

    /// Python's `repr(value)`.
    pub fn py_repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    /// `repr` into one buffer, so nested values are not copied once per level. Recurses once per
    /// level: parsed values nest at most [`MAX_DEPTH`] deep.
    fn write_repr(&self, out: &mut String) {
        match self {
            PyValue::Null => out.push_str("None"),
            PyValue::Bool(true) => out.push_str("True"),
            PyValue::Bool(false) => out.push_str("False"),
            PyValue::Int(digits) => out.push_str(digits),
            PyValue::Float(f) => out.push_str(&float_repr(*f)),
            PyValue::Str(s) => out.push_str(&str_repr(s)),
            PyValue::File(name) => {
                out.push_str("<InMemoryUploadedFile: ");
                out.push_str(name);
                out.push('>');
            }
            PyValue::List(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    item.write_repr(out);
                }
                out.push(']');
            }
            PyValue::Dict(entries) => {
                out.push('{');
                for (n, (key, value)) in entries.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&str_repr(key));
                    out.push_str(": ");
                    value.write_repr(out);
                }
                out.push('}');
            }
        }
    }
}

/// A Python `dict` under construction: entries in insertion order, and a hash index of their
/// keys so that a repeated key is found in constant time (a scan of the earlier entries made a
/// body of many distinct keys quadratic).
#[derive(Debug, Default)]
pub struct DictBuilder {
    entries: Vec<(String, PyValue)>,
    index: HashMap<Key, usize>,
}

/// A key of [`DictBuilder`]'s index. In unit tests it counts its comparisons, so that a test
/// can show the work is linear by counting it rather than by timing it.
#[derive(Debug, Eq)]
struct Key(String);

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        #[cfg(test)]
        work::COMPARED.with(|compared| compared.set(compared.get() + 1));
        self.0 == other.0
    }
}

impl DictBuilder {
    /// `d[key] = value`: a repeated key keeps its first place and takes the last value.
    pub fn set_last(&mut self, key: String, value: PyValue) {
        #[cfg(test)]
        work::SET.with(|set| set.set(set.get() + 1));
        match self.index.entry(Key(key)) {
            Entry::Occupied(slot) => self.entries[*slot.get()].1 = value,
            Entry::Vacant(slot) => {
                self.entries.push((slot.key().0.clone(), value));
                slot.insert(self.entries.len() - 1);
            }
        }
    }

    pub fn finish(self) -> PyValue {
        PyValue::Dict(self.entries)
    }
}

/// The work [`DictBuilder`] did on this thread, for unit tests.
#[cfg(test)]
pub(crate) mod work {
    use std::cell::Cell;

    thread_local! {
        /// Entries set (`set_last` calls).
        pub static SET: Cell<usize> = const { Cell::new(0) };
        /// Key comparisons in the index.
        pub static COMPARED: Cell<usize> = const { Cell::new(0) };
    }

    /// `(entries set, keys compared)` since the last call, and starts counting afresh.
    pub fn take() -> (usize, usize) {
        (SET.with(|set| set.replace(0)), COMPARED.with(|compared| compared.replace(0)))
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, scientific below 1e-4 and from 1e16.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let sci = format!("{f:e}"); // e.g. "-1.5e-5", "1e16"
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{body}")
    } else {
        let mantissa = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs())
    }
}

/// Python's `repr(str)` (quotes chosen as Python does; common escapes).
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Why a body is not JSON, worded as DRF's `JSON parse error - …` detail continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

/// Decodes UTF-8 as `codecs.getreader("utf-8")(stream).read()` does: an incomplete sequence at
/// the very end is dropped (the reader waits for more bytes that never come), anything else
/// invalid is Python's `UnicodeDecodeError` message.
pub fn decode_utf8(bytes: &[u8]) -> Result<&str, ParseError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(err) => {
            let at = err.valid_up_to();
            match err.error_len() {
                None => Ok(std::str::from_utf8(&bytes[..at]).expect("valid prefix")),
                Some(_) => {
                    let byte = bytes[at];
                    let reason = if (0x80..=0xC1).contains(&byte) || byte >= 0xF5 {
                        "invalid start byte"
                    } else {
                        "invalid continuation byte"
                    };
                    Err(ParseError(format!("'utf-8' codec can't decode byte 0x{byte:02x} in position {at}: {reason}")))
                }
            }
        }
    }
}

/// Parses a whole document as `json.loads(text, parse_constant=strict_constant)` (DRF's strict
/// mode: `NaN` and the infinities are refused).
pub fn parse(text: &str) -> Result<PyValue, ParseError> {
    Scanner { text, bytes: text.as_bytes(), constants: false }.document()
}

/// Parses a whole document as plain `json.loads(text)`, which reads `NaN`, `Infinity` and
/// `-Infinity` as floats (the legacy chat socket's frames were read this way).
pub fn parse_lenient(text: &str) -> Result<PyValue, ParseError> {
    Scanner { text, bytes: text.as_bytes(), constants: true }.document()
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// Whether `NaN` and the infinities are values (else DRF's "Out of range float values").
    constants: bool,
}

impl Scanner<'_> {
    /// The whole text as one value, with only whitespace around it.
    fn document(&self) -> Result<PyValue, ParseError> {
        if self.text.starts_with('\u{feff}') {
            return Err(self.error("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0));
        }
        let start = self.skip_ws(0);
        let (value, end) = match self.value(start)? {
            Some(found) => found,
            None => return Err(self.error("Expecting value", start)),
        };
        let end = self.skip_ws(end);
        if end != self.bytes.len() {
            return Err(self.error("Extra data", end));
        }
        Ok(value)
    }

    /// `msg: line L column C (char P)`, counted in characters as Python does.
    fn error(&self, msg: &str, byte_pos: usize) -> ParseError {
        let before = &self.text[..byte_pos.min(self.text.len())];
        let pos = before.chars().count();
        let line = before.matches('\n').count() + 1;
        // Python: `pos - doc.rfind('\n', 0, pos)`, where a missing newline is -1.
        let column = match before.rfind('\n') {
            Some(nl) => pos - before[..nl].chars().count(),
            None => pos + 1,
        };
        ParseError(format!("{msg}: line {line} column {column} (char {pos})"))
    }

    fn skip_ws(&self, mut i: usize) -> usize {
        while i < self.bytes.len() && matches!(self.bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }

    fn starts(&self, i: usize, word: &str) -> bool {
        self.bytes[i..].starts_with(word.as_bytes())
    }

    /// `scan_once`: the value at `i` and the position after it; `None` is Python's
    /// `StopIteration` ("Expecting value" at the caller's position).
    ///
    /// CPython recurses into arrays and objects; this keeps the open ones on a heap stack instead,
    /// so the scanner's own depth is constant, and refuses to open one deeper than [`MAX_DEPTH`]
    /// (checked before it is read, as CPython's `Py_EnterRecursiveCall`), so every value it
    /// returns is shallow enough for the recursive functions over values. Errors are found at
    /// the same place, in the same order, as by CPython's recursive scanner.
    fn value(&self, start: usize) -> Result<Option<(PyValue, usize)>, ParseError> {
        let mut open: Vec<Open> = Vec::new();
        let mut i = start;
        loop {
            // A value starts at `i`: a scalar, or an array or object (opened, unless empty).
            let (mut value, mut end) = match self.bytes.get(i) {
                Some(b'[') => {
                    nested(open.len(), "array")?;
                    let first = self.skip_ws(i + 1);
                    if self.bytes.get(first) == Some(&b']') {
                        (PyValue::List(Vec::new()), first + 1)
                    } else {
                        open.push(Open::List(Vec::new()));
                        i = first;
                        continue;
                    }
                }
                Some(b'{') => {
                    nested(open.len(), "object")?;
                    let first = self.skip_ws(i + 1);
                    if self.bytes.get(first) == Some(&b'}') {
                        (PyValue::Dict(Vec::new()), first + 1)
                    } else {
                        let (key, value_at) = self.key(first)?;
                        open.push(Open::Dict(DictBuilder::default(), key));
                        i = value_at;
                        continue;
                    }
                }
                _ => match self.scalar(i)? {
                    Some(found) => found,
                    None if open.is_empty() => return Ok(None),
                    None => return Err(self.error("Expecting value", i)),
                },
            };
            // The value is complete: it goes into the innermost open container, which then
            // continues with another value or closes (and is itself a complete value).
            loop {
                let Some(container) = open.last_mut() else { return Ok(Some((value, end))) };
                let after = self.skip_ws(end);
                let next = self.bytes.get(after);
                match container {
                    Open::List(items) => {
                        items.push(value);
                        match next {
                            Some(b']') => {}
                            Some(b',') => {
                                i = self.skip_ws(after + 1);
                                break;
                            }
                            _ => return Err(self.error("Expecting ',' delimiter", after)),
                        }
                    }
                    Open::Dict(dict, key) => {
                        dict.set_last(std::mem::take(key), value);
                        match next {
                            Some(b'}') => {}
                            Some(b',') => {
                                let (next_key, value_at) = self.key(self.skip_ws(after + 1))?;
                                *key = next_key;
                                i = value_at;
                                break;
                            }
                            _ => return Err(self.error("Expecting ',' delimiter", after)),
                        }
                    }
                }
                value = match open.pop() {
                    Some(Open::List(items)) => PyValue::List(items),
                    Some(Open::Dict(dict, _)) => dict.finish(),
                    None => unreachable!("a container was open"),
                };
                end = after + 1;
            }
        }
    }

    /// A value that is not an array or an object.
    fn scalar(&self, i: usize) -> Result<Option<(PyValue, usize)>, ParseError> {
        let Some(&c) = self.bytes.get(i) else { return Ok(None) };
        let constant = |name: &str, value: f64| {
            if self.constants {
                return Ok(Some((PyValue::Float(value), i + name.len())));
            }
            Err(ParseError(format!("Out of range float values are not JSON compliant: '{name}'")))
        };
        Ok(Some(match c {
            b'"' => {
                let (s, end) = self.string(i + 1)?;
                (PyValue::Str(s), end)
            }
            b'n' if self.starts(i, "null") => (PyValue::Null, i + 4),
            b't' if self.starts(i, "true") => (PyValue::Bool(true), i + 4),
            b'f' if self.starts(i, "false") => (PyValue::Bool(false), i + 5),
            b'N' if self.starts(i, "NaN") => return constant("NaN", f64::NAN),
            b'I' if self.starts(i, "Infinity") => return constant("Infinity", f64::INFINITY),
            b'-' if self.starts(i, "-Infinity") => return constant("-Infinity", f64::NEG_INFINITY),
            b'-' | b'0'..=b'9' => match self.number(i) {
                Some(found) => found,
                None => return Ok(None),
            },
            _ => return Ok(None),
        }))
    }

    /// An object's `"key":` at `i`, and where its value starts.
    fn key(&self, i: usize) -> Result<(String, usize), ParseError> {
        if self.bytes.get(i) != Some(&b'"') {
            return Err(self.error("Expecting property name enclosed in double quotes", i));
        }
        let (key, after_key) = self.string(i + 1)?;
        let colon = self.skip_ws(after_key);
        if self.bytes.get(colon) != Some(&b':') {
            return Err(self.error("Expecting ':' delimiter", colon));
        }
        Ok((key, self.skip_ws(colon + 1)))
    }

    /// `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`, each optional part taken only when complete.
    fn number(&self, start: usize) -> Option<(PyValue, usize)> {
        let b = self.bytes;
        let digits = |mut i: usize| {
            let from = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            (i > from).then_some(i)
        };
        let mut i = start;
        if b[i] == b'-' {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(i)?,
            _ => return None,
        }
        let int_end = i;
        let mut is_float = false;
        if b.get(i) == Some(&b'.')
            && let Some(end) = digits(i + 1)
        {
            i = end;
            is_float = true;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if let Some(end) = digits(j) {
                i = end;
                is_float = true;
            }
        }
        let lexeme = &self.text[start..i];
        let value = if is_float {
            PyValue::Float(lexeme.parse().unwrap_or(f64::INFINITY))
        } else {
            // Python's str(int): no sign on zero, no leading zeros (the grammar allows none).
            let digits = &self.text[start..int_end];
            PyValue::Int(if digits == "-0" { "0".to_owned() } else { digits.to_owned() })
        };
        Some((value, i))
    }

    /// `scanstring`: the string whose opening quote is just before `start`.
    fn string(&self, start: usize) -> Result<(String, usize), ParseError> {
        let b = self.bytes;
        let begin = start - 1;
        let unterminated = || self.error("Unterminated string starting at", begin);
        let mut out = String::new();
        let mut i = start;
        loop {
            let chunk_start = i;
            while i < b.len() && b[i] != b'"' && b[i] != b'\\' && b[i] >= 0x20 {
                i += 1;
            }
            out.push_str(&self.text[chunk_start..i]);
            let Some(&c) = b.get(i) else { return Err(unterminated()) };
            match c {
                b'"' => return Ok((out, i + 1)),
                b'\\' => {}
                _ => return Err(self.error("Invalid control character at", i)),
            }
            let Some(&esc) = b.get(i + 1) else { return Err(unterminated()) };
            if esc != b'u' {
                let decoded = match esc {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    _ => return Err(self.error("Invalid \\escape", i)),
                };
                out.push(decoded);
                i += 2;
                continue;
            }
            let mut unit = self.hex4(i + 1)?;
            i += 6;
            if (0xD800..0xDC00).contains(&unit) && self.starts(i, "\\u") {
                // A surrogate pair written as two escapes.
                let low = self.hex4(i + 1)?;
                if (0xDC00..0xE000).contains(&low) {
                    unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    i += 6;
                }
            }
            // A lone surrogate is valid in Python but not in a Rust string.
            out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
        }
    }

    /// The four hex digits after the `u` at `u_pos`.
    fn hex4(&self, u_pos: usize) -> Result<u32, ParseError> {
        let invalid = || self.error("Invalid \\uXXXX escape", u_pos);
        let hex = self.bytes.get(u_pos + 1..u_pos + 5).ok_or_else(invalid)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(invalid());
        }
        u32::from_str_radix(std::str::from_utf8(hex).expect("ASCII"), 16).map_err(|_| invalid())
    }
}

/// An array or object being read: its items so far (an object's, with the key whose value is
/// being read).
enum Open {
    List(Vec<PyValue>),
    Dict(DictBuilder, String),
}

/// CPython's `RecursionError` (which has no position) for an array or object opened inside
/// `depth` others, when that is deeper than [`MAX_DEPTH`].
fn nested(depth: usize, kind: &str) -> Result<(), ParseError> {
    if depth >= MAX_DEPTH {
        return Err(ParseError(format!(
            "maximum recursion depth exceeded while decoding a JSON {kind} from a unicode string"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message below was produced by CPython 3.11's `json.loads` (the reference's Python).
    #[test]
    fn errors_match_cpython() {
        let cases = [
            ("", "Expecting value: line 1 column 1 (char 0)"),
            (" ", "Expecting value: line 1 column 2 (char 1)"),
            ("{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
            ("{\"a\"", "Expecting ':' delimiter: line 1 column 5 (char 4)"),
            ("{\"a\":", "Expecting value: line 1 column 6 (char 5)"),
            ("{\"a\":1", "Expecting ',' delimiter: line 1 column 7 (char 6)"),
            ("{\"a\":1,", "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)"),
            ("{\"a\":1,}", "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)"),
            ("[1,]", "Expecting value: line 1 column 4 (char 3)"),
            ("[", "Expecting value: line 1 column 2 (char 1)"),
            ("[1", "Expecting ',' delimiter: line 1 column 3 (char 2)"),
            ("[1 2]", "Expecting ',' delimiter: line 1 column 4 (char 3)"),
            ("{\"a\" 1}", "Expecting ':' delimiter: line 1 column 6 (char 5)"),
            ("{\"a\":1 \"b\":2}", "Expecting ',' delimiter: line 1 column 8 (char 7)"),
            ("{1:2}", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
            ("\"abc", "Unterminated string starting at: line 1 column 1 (char 0)"),
            ("\"a\\x\"", "Invalid \\escape: line 1 column 3 (char 2)"),
            ("\"a\\u12\"", "Invalid \\uXXXX escape: line 1 column 4 (char 3)"),
            ("\"a\\u12zz\"", "Invalid \\uXXXX escape: line 1 column 4 (char 3)"),
            ("\"a\nb\"", "Invalid control character at: line 1 column 3 (char 2)"),
            ("{\"a\":tru}", "Expecting value: line 1 column 6 (char 5)"),
            ("nul", "Expecting value: line 1 column 1 (char 0)"),
            ("01", "Extra data: line 1 column 2 (char 1)"),
            ("1.", "Extra data: line 1 column 2 (char 1)"),
            ("-", "Expecting value: line 1 column 1 (char 0)"),
            ("1e", "Extra data: line 1 column 2 (char 1)"),
            ("{\"a\":1}x", "Extra data: line 1 column 8 (char 7)"),
            ("{\"a\":1} \n x", "Extra data: line 2 column 2 (char 10)"),
            ("\n\n  {\"é\":\"é\", x}", "Expecting property name enclosed in double quotes: line 3 column 13 (char 14)"),
            ("\"\t\"", "Invalid control character at: line 1 column 2 (char 1)"),
            ("{\"username\": \"a\",", "Expecting property name enclosed in double quotes: line 1 column 18 (char 17)"),
            ("{bad", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
            ("\u{feff}{}", "Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)"),
            ("[1,,2]", "Expecting value: line 1 column 4 (char 3)"),
            ("{\"a\":1,,}", "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)"),
            ("\"\\", "Unterminated string starting at: line 1 column 1 (char 0)"),
            ("{\"a\":-}", "Expecting value: line 1 column 6 (char 5)"),
            ("[-]", "Expecting value: line 1 column 2 (char 1)"),
            ("1 2", "Extra data: line 1 column 3 (char 2)"),
            ("{\"a\":[1,2}", "Expecting ',' delimiter: line 1 column 10 (char 9)"),
            ("{\"a\":1]", "Expecting ',' delimiter: line 1 column 7 (char 6)"),
            // Nested containers: errors at the same place as CPython's recursive scanner.
            ("[[1,[2,]]]", "Expecting value: line 1 column 8 (char 7)"),
            ("{\"a\":{\"b\":[1,2}}", "Expecting ',' delimiter: line 1 column 15 (char 14)"),
            ("{\"a\":[{}, {\"b\" 1}]}", "Expecting ':' delimiter: line 1 column 16 (char 15)"),
            ("[{\"a\":1,}]", "Expecting property name enclosed in double quotes: line 1 column 9 (char 8)"),
            ("[[[]]", "Expecting ',' delimiter: line 1 column 6 (char 5)"),
            ("{\"a\":{}}x", "Extra data: line 1 column 9 (char 8)"),
            ("{\"a\":[1]", "Expecting ',' delimiter: line 1 column 9 (char 8)"),
            ("[{\"a\":1}", "Expecting ',' delimiter: line 1 column 9 (char 8)"),
            ("[1,[2,[3,]]]", "Expecting value: line 1 column 10 (char 9)"),
            ("{\"a\":1,\"b\":{\"c\":}}", "Expecting value: line 1 column 17 (char 16)"),
            ("[[", "Expecting value: line 1 column 3 (char 2)"),
            ("{\"a\":{\"b\":", "Expecting value: line 1 column 11 (char 10)"),
            ("[[] ,{} ,[{\"x\":[]} ] ", "Expecting ',' delimiter: line 1 column 22 (char 21)"),
            ("{\"a\":[],\"b\":{\"c\":1 2}}", "Expecting ',' delimiter: line 1 column 20 (char 19)"),
            ("[{\"a\":1}{\"b\":2}]", "Expecting ',' delimiter: line 1 column 9 (char 8)"),
            ("[{}, {\"a\":[1,,]}]", "Expecting value: line 1 column 14 (char 13)"),
            ("{\"a\":[1],}", "Expecting property name enclosed in double quotes: line 1 column 10 (char 9)"),
            ("[1]]", "Extra data: line 1 column 4 (char 3)"),
            ("{\"a\":{\"a\":1}}}", "Extra data: line 1 column 14 (char 13)"),
            ("NaN", "Out of range float values are not JSON compliant: 'NaN'"),
            ("[-Infinity]", "Out of range float values are not JSON compliant: '-Infinity'"),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), Err(ParseError(expected.to_owned())), "input {input:?}");
        }
    }

    #[test]
    fn plain_json_loads_reads_the_constants_as_floats() {
        let value = parse_lenient(r#"[NaN, Infinity, -Infinity, -1]"#).unwrap();
        let PyValue::List(items) = value else { panic!() };
        let strs: Vec<String> = items.iter().map(PyValue::py_str).collect();
        assert_eq!(strs, ["nan", "inf", "-inf", "-1"]);
        assert_eq!(
            parse_lenient("[NaNa]"),
            Err(ParseError("Expecting ',' delimiter: line 1 column 5 (char 4)".into()))
        );
        assert_eq!(parse_lenient("-Inf"), Err(ParseError("Expecting value: line 1 column 1 (char 0)".into())));
    }

    #[test]
    fn values_are_read_as_python_reads_them() {
        let value =
            parse(r#" {"a": [1, -0, 2.50, 1e3, true, null], "b": "x\u00e9\ud83d\ude00\n", "a": "last"} "#).unwrap();
        assert_eq!(
            value,
            PyValue::Dict(vec![
                ("a".to_owned(), PyValue::Str("last".to_owned())),
                ("b".to_owned(), PyValue::Str("xé😀\n".to_owned())),
            ])
        );
        let list = parse("[1, -0, 2.50, 1e3, 1E-5, 1e16, 123456789012345678901234567890]").unwrap();
        let PyValue::List(items) = list else { panic!() };
        let strs: Vec<String> = items.iter().map(PyValue::py_str).collect();
        assert_eq!(strs, ["1", "0", "2.5", "1000.0", "1e-05", "1e+16", "123456789012345678901234567890"]);
        assert_eq!(parse(r#"{"a": {"b": ['x']}}"#).unwrap_err().0.split(':').next(), Some("Expecting value"));
        assert_eq!(parse(r#"{"a": 1, "b": ["x", true, null]}"#).unwrap().py_repr(), "{'a': 1, 'b': ['x', True, None]}");
        assert_eq!(
            parse(r#" [[] ,{} ,[{"x":[ ]} ], {"a": {"b": [{}]}, "c" : [1, [2, [3]]]}] "#).unwrap().py_repr(),
            "[[], {}, [{'x': []}], {'a': {'b': [{}]}, 'c': [1, [2, [3]]]}]"
        );
    }

    fn nested_arrays(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    fn nested_objects(depth: usize) -> String {
        format!("{}1{}", r#"{"a": "#.repeat(depth), "}".repeat(depth))
    }

    /// Arrays and objects alternating, `depth` in all.
    fn nested_mixed(depth: usize) -> String {
        let open: String = (0..depth).map(|n| if n % 2 == 0 { "[" } else { r#"{"k":"# }).collect();
        let close: String = (0..depth).rev().map(|n| if n % 2 == 0 { ']' } else { '}' }).collect();
        format!("{open}\"x\"{close}")
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_as_cpython_does() {
        let too_deep_array =
            ParseError("maximum recursion depth exceeded while decoding a JSON array from a unicode string".into());
        let too_deep_object =
            ParseError("maximum recursion depth exceeded while decoding a JSON object from a unicode string".into());
        assert!(parse(&nested_arrays(MAX_DEPTH)).is_ok());
        assert!(parse(&nested_objects(MAX_DEPTH)).is_ok());
        assert!(parse(&nested_mixed(MAX_DEPTH)).is_ok());
        assert_eq!(parse(&nested_arrays(MAX_DEPTH + 1)), Err(too_deep_array.clone()));
        assert_eq!(parse(&nested_objects(MAX_DEPTH + 1)), Err(too_deep_object.clone()));
        assert_eq!(parse_lenient(&nested_arrays(MAX_DEPTH + 1)), Err(too_deep_array.clone()));
        // The innermost container opened decides the wording.
        let mixed = format!("{}[", r#"{"a":"#.repeat(MAX_DEPTH));
        assert_eq!(parse(&mixed), Err(too_deep_array.clone()));
        // What the review sent: a million `[` (and no `]`) on this thread's default stack.
        assert_eq!(parse(&"[".repeat(1_000_000)), Err(too_deep_array));
        assert_eq!(parse_lenient(&r#"{"a":"#.repeat(1_000_000)), Err(too_deep_object));
        // An earlier syntax error is reported first, as CPython scans in order.
        let early = format!("[[1 2{}", "[".repeat(MAX_DEPTH));
        assert_eq!(parse(&early), Err(ParseError("Expecting ',' delimiter: line 1 column 5 (char 4)".into())));
    }

    /// Scanning is not recursive, and everything recursive over a value of the deepest allowed
    /// nesting (`repr`, comparing, cloning, dropping) fits in a quarter of a tokio worker's 2 MiB
    /// stack, in a debug build (measured: `repr` and dropping need under 256 KiB).
    #[test]
    fn the_deepest_values_fit_a_small_stack() {
        let work = || {
            for text in [nested_arrays(MAX_DEPTH), nested_objects(MAX_DEPTH), nested_mixed(MAX_DEPTH)] {
                let value = parse(&text).unwrap();
                let repr = value.py_repr();
                assert!(repr.len() > MAX_DEPTH, "{}", &repr[..40]);
                assert!(value.clone() == value);
                drop(value);
            }
        };
        std::thread::Builder::new().stack_size(512 * 1024).spawn(work).unwrap().join().expect("no stack overflow");
    }

    #[test]
    fn repeated_keys_keep_their_first_place_and_take_the_last_value() {
        let value = parse(r#"{"b": 1, "a": 2, "b": 3, "c": 4, "a": {"x": 1, "x": 2}, "b": 5}"#).unwrap();
        assert_eq!(value.py_repr(), "{'b': 5, 'a': {'x': 2}, 'c': 4}");
        let mut dict = DictBuilder::default();
        for (key, value) in [("k", "1"), ("j", "2"), ("k", "3")] {
            dict.set_last(key.to_owned(), PyValue::Str(value.to_owned()));
        }
        assert_eq!(dict.finish().py_repr(), "{'k': '3', 'j': '2'}");
    }

    /// 200,000 distinct keys: with a scan of the earlier keys per key this took minutes (20
    /// billion comparisons); the index compares a key only with the few whose hash bits match.
    #[test]
    fn many_keys_take_linear_work() {
        let keys = 200_000;
        let body = format!("{{{}}}", (0..keys).map(|n| format!(r#""k{n}":{n}"#)).collect::<Vec<_>>().join(","));
        work::take();
        let PyValue::Dict(entries) = parse(&body).unwrap() else { panic!("not a dict") };
        let (set, compared) = work::take();
        assert_eq!(entries.len(), keys);
        assert_eq!(entries[keys - 1], (format!("k{}", keys - 1), PyValue::Int((keys - 1).to_string())));
        assert_eq!(set, keys);
        assert!(compared < keys / 4, "{compared} comparisons for {keys} distinct keys");

        // Every key twice: each repeat is found with a comparison or two.
        let twice =
            format!("{{{}}}", (0..2 * keys).map(|n| format!(r#""k{}":{n}"#, n % keys)).collect::<Vec<_>>().join(","));
        let PyValue::Dict(entries) = parse(&twice).unwrap() else { panic!("not a dict") };
        let (set, compared) = work::take();
        assert_eq!((entries.len(), set), (keys, 2 * keys));
        assert!((keys..2 * keys).contains(&compared), "{compared} comparisons for {keys} repeats");
    }

    #[test]
    fn floats_print_as_python() {
        for (f, s) in [(0.1, "0.1"), (1.5, "1.5"), (12345678.0, "12345678.0"), (1e22, "1e+22"), (0.0001, "0.0001")] {
            assert_eq!(float_repr(f), s);
        }
        assert_eq!(float_repr(-2.5e-7), "-2.5e-07");
        assert_eq!(float_repr(1234567890123456.0), "1234567890123456.0");
    }

    #[test]
    fn utf8_errors_match_python() {
        assert_eq!(decode_utf8(b"{\"a\":\"\xc3"), Ok("{\"a\":\""));
        let err = |b: &[u8]| decode_utf8(b).unwrap_err().0;
        assert_eq!(err(b"\xff"), "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte");
        assert_eq!(
            err(b"{\"a\":\"\xc3A\"}"),
            "'utf-8' codec can't decode byte 0xc3 in position 6: invalid continuation byte"
        );
        assert_eq!(
            err(b"\xed\xa0\x80"),
            "'utf-8' codec can't decode byte 0xed in position 0: invalid continuation byte"
        );
        assert_eq!(err(b"ab\xf5"), "'utf-8' codec can't decode byte 0xf5 in position 2: invalid start byte");
        assert_eq!(err(b"\xc0\xaf"), "'utf-8' codec can't decode byte 0xc0 in position 0: invalid start byte");
    }
}
