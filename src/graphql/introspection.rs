//! Introspection as the specification has it: refused with an error when it is switched off,
//! and `__schema.description` the schema's own (none) rather than a text about `__Schema`.
//!
//! async-graphql's `disable_introspection` alone answers `__schema` and `__type` with a silent
//! `null`, which reads to a client like an empty schema; [`refuse_introspection`] refuses such a
//! query before it runs, with `extensions.code` FORBIDDEN. `__typename` stays allowed (clients
//! such as Apollo add it to every selection).

use async_graphql::extensions::ResolveInfo;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, ServerError, ServerResult};

use super::error::FORBIDDEN;

pub const DISABLED: &str = "Introspection is disabled.";

/// With introspection switched off: a parsed document that asks for `__schema` or `__type`
/// (in its operations or its fragments) is refused.
pub fn refuse_introspection(document: &ExecutableDocument) -> ServerResult<()> {
    let operations = document.operations.iter().map(|(_, op)| &op.node.selection_set.node);
    let fragments = document.fragments.values().map(|f| &f.node.selection_set.node);
    if operations.chain(fragments).any(introspects) {
        let mut extensions = ErrorExtensionValues::default();
        extensions.set("code", FORBIDDEN);
        let mut error = ServerError::new(DISABLED, None);
        error.extensions = Some(extensions);
        return Err(error);
    }
    Ok(())
}

/// Whether a selection (fragments are checked on their own) asks for `__schema` or `__type`.
fn introspects(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => {
            matches!(field.node.name.node.as_str(), "__schema" | "__type")
                || introspects(&field.node.selection_set.node)
        }
        Selection::InlineFragment(fragment) => introspects(&fragment.node.selection_set.node),
        Selection::FragmentSpread(_) => false,
    })
}

/// Whether the field being resolved is `__Schema.description`, which is answered null: it is
/// the schema's description, and this schema has none.
///
/// async-graphql 7.2.1 answers it with the text describing the `__Schema` type itself, so a
/// client building the schema from introspection (graphql-js `buildClientSchema`) would see a
/// schema description that `schema.graphql` does not have.
pub fn is_schema_description(info: &ResolveInfo<'_>) -> bool {
    info.parent_type == "__Schema" && info.name == "description"
}
