//! Limits on a GraphQL document, checked before anything costly is done with it.
//!
//! async-graphql's parser recurses into list and object values without bound (a 4 KB argument
//! nested 2,000 deep overflows a worker's stack and aborts the process) and nothing bounds a
//! document's size. [`prescan`] is a linear, non-recursive pass over the text (bytes, tokens and
//! bracket nesting, aware of strings, block strings and comments) that every document goes
//! through before the parser sees it: [`Limits`] (a [`super::pipeline::Gate`]) runs it in the
//! schema's `prepare_request` hook, which `execute` and `execute_stream` (every transport, the
//! legacy layer included) pass through, and the HTTP transport runs it before it parses a GET
//! document itself.
//! Once parsed, the same gate counts aliases, directives and root mutation fields.

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Request, ServerError, ServerResult};

/// The limits of one document (all settings, see `config::Settings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest document, in bytes.
    pub max_bytes: usize,
    /// Most lexical tokens (names, punctuators, numbers, strings).
    pub max_tokens: usize,
    /// Deepest nesting of `{`, `[` and `(` together: selection sets, list and object values,
    /// arguments.
    pub max_nesting: usize,
    /// Most aliased fields in the whole document.
    pub max_aliases: usize,
    /// Most fields at the root of one mutation (each runs on its own, one after the other).
    pub max_root_mutation_fields: usize,
    /// Most selections an operation stands for once its fragment spreads are expanded (each
    /// spread counts its fragment's selections again; fragments spreading each other more than
    /// `max_nesting` deep count as too many).
    pub max_expanded_selections: usize,
    /// Most directives on one field, fragment spread, inline fragment or operation.
    pub max_directives: usize,
    /// Most errors listed in one response (then one error says how many more there were).
    pub max_errors: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 65_536,
            max_tokens: 10_000,
            max_nesting: 32,
            max_aliases: 100,
            max_root_mutation_fields: 10,
            max_expanded_selections: 10_000,
            max_directives: 10,
            max_errors: 100,
        }
    }
}

impl Limits {
    /// The limits the settings give.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Limits {
            max_bytes: settings.graphql_max_bytes,
            max_tokens: settings.graphql_max_tokens,
            max_nesting: settings.graphql_max_nesting,
            max_aliases: settings.graphql_max_aliases,
            max_root_mutation_fields: settings.graphql_max_root_mutation_fields,
            max_expanded_selections: settings.graphql_max_expanded_selections,
            max_directives: settings.graphql_max_directives,
            max_errors: settings.graphql_max_errors,
        }
    }
}

/// Why a document was refused before it was parsed (or right after).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("The document is too large: at most {max} bytes.")]
    TooLarge { max: usize },
    #[error("The document has too many tokens: at most {max}.")]
    TooManyTokens { max: usize },
    #[error("The document nests too deeply: at most {max} levels of braces, brackets and parentheses.")]
    TooDeep { max: usize },
    #[error("The document has too many aliases: at most {max}.")]
    TooManyAliases { max: usize },
    #[error("The document stands for too many selections once its fragments are spread: at most {max}.")]
    TooManySelections { max: usize },
    #[error("Too many directives in one place: at most {max}.")]
    TooManyDirectives { max: usize },
    #[error("A mutation may have at most {max} root fields.")]
    TooManyRootMutationFields { max: usize },
}

/// Checks a document's size, tokens and nesting in one pass over its bytes, without parsing it
/// (and without recursion, so it is safe on any input). Text the GraphQL lexer would refuse is
/// counted as it comes: the parser reports it afterwards.
pub fn prescan(document: &str, limits: &Limits) -> Result<(), LimitError> {
    if document.len() > limits.max_bytes {
        return Err(LimitError::TooLarge { max: limits.max_bytes });
    }
    let bytes = document.as_bytes();
    let (mut i, mut tokens, mut depth) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        i = match b {
            // Ignored: white space, line terminators, commas, the byte order mark's bytes.
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                i = skip_comment(bytes, i);
                continue;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > limits.max_nesting {
                    return Err(LimitError::TooDeep { max: limits.max_nesting });
                }
                i + 1
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i + 1
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => skip_block_string(bytes, i + 3),
            b'"' => skip_string(bytes, i + 1),
            b'.' if bytes[i..].starts_with(b"...") => i + 3,
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => {
                // A name or a number (with `.`, `e`, `+`, `-` inside): one token either way.
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || b"_.+-".contains(&bytes[j])) {
                    j += 1;
                }
                j
            }
            _ => i + 1,
        };
        tokens += 1;
        if tokens > limits.max_tokens {
            return Err(LimitError::TooManyTokens { max: limits.max_tokens });
        }
    }
    Ok(())
}

/// The index after a `#` comment (it ends at a line terminator).
fn skip_comment(bytes: &[u8], start: usize) -> usize {
    bytes[start..].iter().position(|&b| b == b'\n' || b == b'\r').map_or(bytes.len(), |n| start + n)
}

/// The index after a `"…"` string whose contents start at `start` (escapes skipped; it ends at
/// its closing quote or, unterminated, at the end of the line).
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after a `"""…"""` block string whose contents start at `start` (`\"""` is an
/// escaped delimiter).
fn skip_block_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return i + 3;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Checks a parsed document against the limits the text alone cannot show: aliases,
/// directives, and the root fields of each mutation (fragments spread at the root included).
pub fn check_parsed(document: &ExecutableDocument, limits: &Limits) -> Result<(), LimitError> {
    let mut shape = Shape { limits, aliases: 0 };
    for (_, operation) in document.operations.iter() {
        shape.directives(operation.node.directives.len())?;
        shape.walk(&operation.node.selection_set.node)?;
    }
    for fragment in document.fragments.values() {
        shape.directives(fragment.node.directives.len())?;
        shape.walk(&fragment.node.selection_set.node)?;
    }
    let max_expanded = limits.max_expanded_selections;
    let max_path = limits.max_nesting;
    let mut expansion = Expansion { document, budget: max_expanded, max_path, path: Vec::new() };
    for (_, operation) in document.operations.iter() {
        let set = &operation.node.selection_set.node;
        if expansion.fields(set, true).is_none() {
            return Err(LimitError::TooManySelections { max: max_expanded });
        }
        if operation.node.ty == OperationType::Mutation {
            let mut root = Expansion { document, budget: max_expanded, max_path, path: Vec::new() };
            let max = limits.max_root_mutation_fields;
            if root.fields(set, false).is_none_or(|fields| fields > max) {
                return Err(LimitError::TooManyRootMutationFields { max });
            }
        }
    }
    Ok(())
}

/// Aliases and directives of selection sets, each definition walked once (fragment spreads are
/// not followed: the caller walks every fragment definition). The parser bounds the nesting of
/// selection sets, so this recursion is bounded too.
struct Shape<'l> {
    limits: &'l Limits,
    aliases: usize,
}

impl Shape<'_> {
    fn directives(&self, count: usize) -> Result<(), LimitError> {
        if count > self.limits.max_directives {
            return Err(LimitError::TooManyDirectives { max: self.limits.max_directives });
        }
        Ok(())
    }

    fn walk(&mut self, set: &SelectionSet) -> Result<(), LimitError> {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    self.directives(field.node.directives.len())?;
                    if field.node.alias.is_some() {
                        self.aliases += 1;
                        if self.aliases > self.limits.max_aliases {
                            return Err(LimitError::TooManyAliases { max: self.limits.max_aliases });
                        }
                    }
                    self.walk(&field.node.selection_set.node)?;
                }
                Selection::InlineFragment(fragment) => {
                    self.directives(fragment.node.directives.len())?;
                    self.walk(&fragment.node.selection_set.node)?;
                }
                Selection::FragmentSpread(spread) => self.directives(spread.node.directives.len())?,
            }
        }
        Ok(())
    }
}

/// Walks selection sets the way execution and validation do: a fragment spread stands for its
/// fragment's selections at every place it is spread, so a few lines spreading fragments that
/// spread others twice (a "fragment bomb") stand for millions of fields. Each selection visited
/// uses one unit of `budget`; the walk gives up (`None`) when it runs out, or when fragments
/// spread each other deeper than `max_path` (a chain of a thousand fragments would make this
/// walk, and async-graphql's own over the document, recurse a thousand times). A spread cycle
/// (refused later by validation) is not followed.
struct Expansion<'a> {
    document: &'a ExecutableDocument,
    budget: usize,
    max_path: usize,
    path: Vec<&'a str>,
}

impl<'a> Expansion<'a> {
    /// The fields `set` stands for (only its own level unless `deep`), or `None` past the budget.
    fn fields(&mut self, set: &'a SelectionSet, deep: bool) -> Option<usize> {
        let mut fields = 0usize;
        for selection in &set.items {
            self.budget = self.budget.checked_sub(1)?;
            fields += match &selection.node {
                Selection::Field(field) if deep => 1 + self.fields(&field.node.selection_set.node, deep)?,
                Selection::Field(_) => 1,
                Selection::InlineFragment(fragment) => self.fields(&fragment.node.selection_set.node, deep)?,
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    match self.document.fragments.get(&spread.node.fragment_name.node) {
                        Some(_) if self.path.len() >= self.max_path => return None,
                        Some(fragment) if !self.path.contains(&name) => {
                            self.path.push(name);
                            let fields = self.fields(&fragment.node.selection_set.node, deep);
                            self.path.pop();
                            fields?
                        }
                        _ => 0,
                    }
                }
            };
        }
        Some(fields)
    }
}

/// A refused document's error: the document is invalid for this server.
pub fn limit_error(err: &LimitError) -> ServerError {
    super::error::coded(err.to_string(), super::error::GRAPHQL_VALIDATION_FAILED)
}

/// The gate that applies the limits to every document before async-graphql parses and walks it
/// (its own recursion check follows every fragment spread, so a fragment bomb would keep it busy
/// for hours): [`prescan`], then the document is parsed here, once, checked ([`check_parsed`])
/// and kept on the request for the schema to use.
impl super::pipeline::Gate for Limits {
    async fn pass(&self, mut request: Request) -> ServerResult<Request> {
        prescan(&request.query, self).map_err(|err| limit_error(&err))?;
        // A document that does not parse is reported by the schema's own parse.
        if let Ok(document) = request.parsed_query() {
            check_parsed(document, self).map_err(|err| limit_error(&err))?;
        }
        Ok(request)
    }
}

/// Reading a document (the pre-scan, parsing, the limits, async-graphql's validation) is CPU work
/// without an await in it: a worst-case document keeps a worker thread busy for milliseconds.
/// At most one fewer than the worker threads read documents at once (others wait here, parked),
/// so one worker is always free for everything else (`/healthz`, database replies, sockets).
pub struct DocumentReading(pub std::sync::Arc<tokio::sync::Semaphore>);

impl DocumentReading {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self(std::sync::Arc::new(tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))))
    }

    /// A request's turn, not taken yet.
    pub fn turn(&self) -> Turn {
        Turn { share: self.0.clone(), permit: std::sync::Mutex::new(None) }
    }
}

impl Default for DocumentReading {
    fn default() -> Self {
        Self::new()
    }
}

/// One request's turn: taken before the document is read, given back once it is validated (or
/// when the request ends, if it never gets that far).
pub struct Turn {
    share: std::sync::Arc<tokio::sync::Semaphore>,
    permit: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl Turn {
    pub async fn take(&self) {
        if let Ok(permit) = self.share.clone().acquire_owned().await {
            *self.permit.lock().unwrap_or_else(|e| e.into_inner()) = Some(permit);
        }
    }

    pub fn give_back(&self) {
        self.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(document: &str) -> Result<(), LimitError> {
        prescan(document, &Limits::default())
    }

    #[test]
    fn nesting_counts_every_bracket_kind() {
        let max = Limits::default().max_nesting;
        let at_limit = format!("{{ user(username: {}\"a\"{}) {{ id }} }}", "[".repeat(max - 2), "]".repeat(max - 2));
        assert_eq!(scan(&at_limit), Ok(()));
        let past = format!("{{ user(username: {}\"a\"{}) {{ id }} }}", "[".repeat(max - 1), "]".repeat(max - 1));
        assert_eq!(scan(&past), Err(LimitError::TooDeep { max }));
        let objects = format!("{{ a(b: {}) }}", "{c: ".repeat(max) + &"}".repeat(max));
        assert_eq!(scan(&objects), Err(LimitError::TooDeep { max }));
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let brackets = "[".repeat(1_000);
        let document = format!(
            "{{ a(b: \"{brackets}\\\"{brackets}\", c: \"\"\"{brackets}\\\"\"\"{brackets}\"\"\") # {brackets}\n }}"
        );
        assert_eq!(scan(&document), Ok(()));
        // An unterminated string ends at its line: what follows is counted again.
        let document = format!("{{ a(b: \"x\n{brackets}) }}");
        assert!(matches!(scan(&document), Err(LimitError::TooDeep { .. })));
    }

    #[test]
    fn size_and_tokens_are_capped() {
        let limits = Limits::default();
        let big = format!("{{ a(b: \"{}\") }}", "x".repeat(limits.max_bytes));
        assert_eq!(scan(&big), Err(LimitError::TooLarge { max: limits.max_bytes }));
        let many = format!("{{ {} }}", "a ".repeat(limits.max_tokens - 1));
        assert_eq!(scan(&many), Err(LimitError::TooManyTokens { max: limits.max_tokens }));
        let enough = format!("{{ {} }}", "a ".repeat(limits.max_tokens - 2));
        assert_eq!(scan(&enough), Ok(()));
        // Numbers, spreads and directives count as the parser's tokens do.
        // `{ a ( b : -1.5e+3 ) ... F @ skip }`: 12 tokens.
        let limits = Limits { max_tokens: 12, ..Limits::default() };
        assert_eq!(prescan("{ a(b: -1.5e+3) ...F @skip }", &limits), Ok(()));
        assert!(prescan("{ a(b: -1.5e+3) ...F @skip(if: true) }", &limits).is_err());
    }

    #[test]
    fn aliases_directives_and_root_mutation_fields_are_counted_after_parsing() {
        let limits = Limits { max_aliases: 2, max_root_mutation_fields: 2, max_directives: 2, ..Limits::default() };
        let check = |document: &str| check_parsed(&async_graphql::parser::parse_query(document).unwrap(), &limits);
        assert_eq!(check("{ a: x b: y { c: z } }"), Err(LimitError::TooManyAliases { max: 2 }));
        assert_eq!(check("{ a: x ...F } fragment F on Q { b: y }"), Ok(()));
        assert_eq!(check("mutation { a b }"), Ok(()));
        assert_eq!(check("{ a @x @y ...F @x @y } fragment F on Q { ... @x @y { b } }"), Ok(()));
        assert_eq!(check("{ a @x @x @x }"), Err(LimitError::TooManyDirectives { max: 2 }));
        assert_eq!(check("{ ... @x @x @x { a } }"), Err(LimitError::TooManyDirectives { max: 2 }));
        assert_eq!(check("{ a } fragment F on Q { b { c @x @x @x } }"), Err(LimitError::TooManyDirectives { max: 2 }));
        assert_eq!(
            check("mutation { a ...F } fragment F on M { b ... { c } }"),
            Err(LimitError::TooManyRootMutationFields { max: 2 })
        );
        // A fragment spread twice runs its fields twice; cycles end.
        assert_eq!(check("mutation { ...F } fragment F on M { a ...F }"), Ok(()));
        assert_eq!(
            check("mutation { ...F ...F } fragment F on M { a b }"),
            Err(LimitError::TooManyRootMutationFields { max: 2 })
        );
    }

    #[test]
    fn fragment_bombs_are_refused() {
        let limits = Limits { max_expanded_selections: 1_000, ..Limits::default() };
        let check = |document: &str| check_parsed(&async_graphql::parser::parse_query(document).unwrap(), &limits);
        let bomb = |levels: usize, root: &str| {
            let fragments: String =
                (0..levels).map(|i| format!("fragment F{i} on Q {{ ...F{} ...F{} }} ", i + 1, i + 1)).collect();
            format!("{root} {{ ...F0 }} {fragments} fragment F{levels} on Q {{ a }}")
        };
        // 2^8 fields and the spreads to them: within 1,000 selections; 2^40 are not.
        assert_eq!(check(&bomb(8, "query")), Ok(()));
        assert_eq!(check(&bomb(40, "query")), Err(LimitError::TooManySelections { max: 1_000 }));
        assert!(check(&bomb(40, "mutation")).is_err());
        assert_eq!(check("{ a { ...F } } fragment F on Q { b { ...F } }"), Ok(()), "a cycle ends");
        let chain = |length: usize| {
            let fragments: String = (0..length).map(|i| format!("fragment F{i} on Q {{ ...F{} }} ", i + 1)).collect();
            format!("{{ ...F0 }} {fragments} fragment F{length} on Q {{ a }}")
        };
        let max = Limits::default().max_nesting;
        assert_eq!(check(&chain(max - 1)), Ok(()));
        assert_eq!(check(&chain(1_000)), Err(LimitError::TooManySelections { max: 1_000 }));
    }
}
