//! Limits on a GraphQL document, checked before anything costly is done with it.
//!
//! async-graphql's parser recurses into list and object values without bound (a 4 KB argument
//! nested 2,000 deep overflows a worker's stack and aborts the process) and nothing bounds a
//! document's size. [`prescan`] is a linear, non-recursive pass over the text (bytes, tokens and
//! bracket nesting, aware of strings, block strings and comments) that every document goes
//! through before the parser sees it: the [`DocumentLimits`] extension runs it in the schema's
//! `parse_query` hook, which `execute` and `execute_stream` (every transport, the legacy layer
//! included) pass through, and the HTTP transport runs it before it parses a GET document itself.
//! Once parsed, the same extension counts aliases and root mutation fields.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 65_536,
            max_tokens: 10_000,
            max_nesting: 32,
            max_aliases: 100,
            max_root_mutation_fields: 10,
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

/// Checks a parsed document against the limits the text alone cannot show: aliases, and the
/// root fields of each mutation (fragments spread at the root included).
pub fn check_parsed(document: &ExecutableDocument, limits: &Limits) -> Result<(), LimitError> {
    let selection_sets = document
        .operations
        .iter()
        .map(|(_, operation)| &operation.node.selection_set.node)
        .chain(document.fragments.values().map(|fragment| &fragment.node.selection_set.node));
    let mut aliases = 0usize;
    for set in selection_sets {
        aliases += count_aliases(set);
        if aliases > limits.max_aliases {
            return Err(LimitError::TooManyAliases { max: limits.max_aliases });
        }
    }
    for (_, operation) in document.operations.iter() {
        if operation.node.ty == OperationType::Mutation {
            let max = limits.max_root_mutation_fields;
            let mut count = RootFields { document, max, fields: 0, visits: 0, path: Vec::new() };
            if !count.walk(&operation.node.selection_set.node) {
                return Err(LimitError::TooManyRootMutationFields { max: limits.max_root_mutation_fields });
            }
        }
    }
    Ok(())
}

/// Aliased fields in a selection set and the sets nested in it (fragment spreads not followed:
/// each fragment definition is counted once, by the caller). The parser bounds the nesting of
/// selection sets, so this recursion is bounded too.
fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Counts the fields a root selection set runs (each occurrence runs on its own: a fragment
/// spread twice runs its fields twice), through inline fragments and fragment spreads. Stops as
/// soon as `max` is passed; a spread cycle (refused later by validation) is not followed, and
/// more than [`MAX_SPREAD_VISITS`] spreads (a fragment bomb) count as too many.
struct RootFields<'a> {
    document: &'a ExecutableDocument,
    max: usize,
    fields: usize,
    visits: usize,
    path: Vec<&'a str>,
}

/// Fragment spreads followed while counting root fields before giving up.
const MAX_SPREAD_VISITS: usize = 1_000;

impl<'a> RootFields<'a> {
    /// `false` once there are too many.
    fn walk(&mut self, set: &'a SelectionSet) -> bool {
        for selection in &set.items {
            let within = match &selection.node {
                Selection::Field(_) => {
                    self.fields += 1;
                    self.fields <= self.max
                }
                Selection::InlineFragment(fragment) => self.walk(&fragment.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    self.visits += 1;
                    if self.visits > MAX_SPREAD_VISITS {
                        return false;
                    }
                    match self.document.fragments.get(&spread.node.fragment_name.node) {
                        Some(fragment) if !self.path.contains(&name) => {
                            self.path.push(name);
                            let within = self.walk(&fragment.node.selection_set.node);
                            self.path.pop();
                            within
                        }
                        _ => true,
                    }
                }
            };
            if !within {
                return false;
            }
        }
        true
    }
}

/// The schema extension that applies [`Limits`] to every document before it is parsed, and
/// [`check_parsed`] right after.
pub struct DocumentLimits(pub Limits);

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> std::sync::Arc<dyn Extension> {
        std::sync::Arc::new(DocumentLimits(self.0))
    }
}

/// A refused document's error: the document is invalid for this server.
pub fn limit_error(err: &LimitError) -> ServerError {
    let mut error = ServerError::new(err.to_string(), None);
    error.extensions.get_or_insert_with(Default::default).set("code", super::error::GRAPHQL_VALIDATION_FAILED);
    error
}

#[async_trait::async_trait]
impl Extension for DocumentLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        prescan(query, &self.0).map_err(|err| limit_error(&err))?;
        let document = next.run(ctx, query, variables).await?;
        check_parsed(&document, &self.0).map_err(|err| limit_error(&err))?;
        Ok(document)
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
    fn aliases_and_root_mutation_fields_are_counted_after_parsing() {
        let limits = Limits { max_aliases: 2, max_root_mutation_fields: 2, ..Limits::default() };
        let check = |document: &str| check_parsed(&async_graphql::parser::parse_query(document).unwrap(), &limits);
        assert_eq!(check("{ a: x b: y { c: z } }"), Err(LimitError::TooManyAliases { max: 2 }));
        assert_eq!(check("{ a: x ...F } fragment F on Q { b: y }"), Ok(()));
        assert_eq!(check("mutation { a b }"), Ok(()));
        assert_eq!(
            check("mutation { a ...F } fragment F on M { b ... { c } }"),
            Err(LimitError::TooManyRootMutationFields { max: 2 })
        );
        // A fragment spread twice runs its fields twice; cycles end.
        assert_eq!(check("mutation { ...F } fragment F on M { a ...F }"), Ok(()));
        assert!(check("mutation { ...F ...F } fragment F on M { a b }").is_err());
        let bomb: String = (0..20).map(|i| format!("fragment F{i} on M {{ ...F{} ...F{} }} ", i + 1, i + 1)).collect();
        assert!(check(&format!("mutation {{ ...F0 }} {bomb} fragment F20 on M {{ __typename }}")).is_err());
    }
}
