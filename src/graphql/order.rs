//! Response fields in the order of the selection set, as the GraphQL specification asks.
//!
//! async-graphql 7.2.1 resolves the fields of an object concurrently and collects them in the
//! order they complete, so a field answered from a DataLoader comes after its plain siblings.
//! [`SelectionOrder`] keeps the parsed document of each request and, once the
//! operation has run, puts every object of `data` back in the order the document selects its
//! keys ("CollectFields": aliases, fragment spreads and inline fragments in place, fields
//! left out by `@skip`/`@include` not counted). Fragments are collected whatever their type
//! condition: an object of the `ChatEvent` union simply has none of the keys a fragment on
//! another member selects. Every transport runs operations through the schema, so every
//! transport gets the order.

use std::sync::{Arc, Mutex};

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Response, Value, Variables};
use futures_util::stream::BoxStream;

/// One request's document and variables, kept to order its responses.
#[derive(Default)]
pub struct SelectionOrder {
    parsed: Arc<Mutex<Option<(ExecutableDocument, Variables)>>>,
}

/// The hooks ([`super::pipeline`] calls them).
impl SelectionOrder {
    /// Once parsed: the document the responses will be ordered by.
    pub fn keep(&self, document: &ExecutableDocument, variables: &Variables) {
        *self.parsed.lock().expect("order lock") = Some((document.clone(), variables.clone()));
    }

    /// A response of the operation `name`, put in the document's order.
    pub fn apply(&self, name: Option<&str>, response: &mut Response) {
        reorder(&self.parsed, name, response);
    }

    /// Every response of a stream (an operation over a WebSocket), put in order.
    pub fn stream<'s>(&self, stream: BoxStream<'s, Response>) -> BoxStream<'s, Response> {
        use futures_util::StreamExt;
        let parsed = self.parsed.clone();
        stream
            .map(move |mut response| {
                reorder(&parsed, None, &mut response);
                response
            })
            .boxed()
    }
}

fn reorder(parsed: &Mutex<Option<(ExecutableDocument, Variables)>>, name: Option<&str>, response: &mut Response) {
    let guard = parsed.lock().expect("order lock");
    let Some((document, variables)) = guard.as_ref() else { return };
    let Some(operation) = operation(document, name) else { return };
    let order = Order { document, variables };
    order.value(&[&operation.selection_set.node], &mut response.data);
}

/// The operation a request runs (the only one when it names none).
fn operation<'a>(document: &'a ExecutableDocument, name: Option<&str>) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(&operation.node),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name).map(|o| &o.node),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|o| &o.node)
        }
        _ => None,
    }
}

struct Order<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
}

impl<'a> Order<'a> {
    /// Orders `value` (an object, a list of them, or a leaf) by the merged selection sets that
    /// produced it. The items of a list share their selection sets, so their keys are collected
    /// once for all of them.
    fn value(&self, sets: &[&'a SelectionSet], value: &mut Value) {
        match value {
            Value::List(items) => {
                let mut fields = None;
                for item in items {
                    if let Value::Object(object) = item {
                        self.object(fields.get_or_insert_with(|| self.fields(sets)), object);
                    } else {
                        self.value(sets, item);
                    }
                }
            }
            Value::Object(object) => self.object(&self.fields(sets), object),
            _ => {}
        }
    }

    /// The response keys of merged selection sets in order, each with its own selection sets.
    fn fields(&self, sets: &[&'a SelectionSet]) -> Vec<(&'a Name, Vec<&'a SelectionSet>)> {
        let mut fields = Vec::new();
        let mut path = Vec::new();
        for set in sets {
            self.collect(set, &mut fields, &mut path);
        }
        fields
    }

    fn object(&self, fields: &[(&'a Name, Vec<&'a SelectionSet>)], object: &mut IndexMap<Name, Value>) {
        let mut ordered = IndexMap::with_capacity(object.len());
        for (key, subsets) in fields {
            // The object is rebuilt in order: where a key is taken from does not matter.
            if let Some((key, mut value)) = object.swap_remove_entry(key.as_str()) {
                self.value(subsets, &mut value);
                ordered.insert(key, value);
            }
        }
        // Anything not selected (there should be nothing) goes at the end.
        ordered.extend(std::mem::take(object));
        *object = ordered;
    }

    /// The response keys of a selection set in order, each with the selection sets of the
    /// fields answering it (merged, in order).
    fn collect(
        &self,
        set: &'a SelectionSet,
        fields: &mut Vec<(&'a Name, Vec<&'a SelectionSet>)>,
        path: &mut Vec<&'a Name>,
    ) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) if self.included(&field.node.directives) => {
                    let key = field.node.response_key();
                    let subset = &field.node.selection_set.node;
                    match fields.iter_mut().find(|(k, _)| **k == key.node) {
                        Some((_, subsets)) => subsets.push(subset),
                        None => fields.push((&key.node, vec![subset])),
                    }
                }
                Selection::InlineFragment(fragment) if self.included(&fragment.node.directives) => {
                    self.collect(&fragment.node.selection_set.node, fields, path);
                }
                Selection::FragmentSpread(spread) if self.included(&spread.node.directives) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(fragment) = self.document.fragments.get(name)
                        && !path.contains(&name)
                    {
                        path.push(name);
                        self.collect(&fragment.node.selection_set.node, fields, path);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether `@skip` and `@include` keep a selection.
    fn included(&self, directives: &[Positioned<Directive>]) -> bool {
        directives.iter().all(|directive| {
            let condition = directive.node.get_argument("if").and_then(|value| {
                value.node.clone().into_const_with(|name| self.variables.get(&name).cloned().ok_or(())).ok()
            });
            match (directive.node.name.node.as_str(), condition) {
                ("skip", Some(Value::Boolean(skip))) => !skip,
                ("include", Some(Value::Boolean(include))) => include,
                _ => true,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(document: &str, variables: serde_json::Value, data: serde_json::Value) -> String {
        let document = async_graphql::parser::parse_query(document).unwrap();
        let variables = Variables::from_json(variables);
        let mut value = Value::from_json(data).unwrap();
        let order = Order { document: &document, variables: &variables };
        let operation = operation(&document, None).unwrap();
        order.value(&[&operation.selection_set.node], &mut value);
        // A GraphQL literal, in the value's own key order.
        value.to_string()
    }

    #[test]
    fn objects_take_the_order_of_their_selection_sets() {
        let data =
            serde_json::json!({"rooms": [{"name": "r", "last": {"id": "1", "content": "c"}}], "me": {"id": "2"}});
        let document = "{ me { id } rooms { last { content id } name } }";
        assert_eq!(
            ordered(document, serde_json::json!({}), data.clone()),
            r#"{me: {id: "2"}, rooms: [{last: {content: "c", id: "1"}, name: "r"}]}"#
        );
        // Fragments and inline fragments in place; a key's first occurrence counts; skipped
        // selections do not.
        let document = "query($no: Boolean!) { rooms { ...R name @skip(if: $no) } me @include(if: true) { id } } \
                        fragment R on Room { ... { last { id } } name last { content } }";
        assert_eq!(
            ordered(document, serde_json::json!({"no": true}), data),
            r#"{rooms: [{last: {id: "1", content: "c"}, name: "r"}], me: {id: "2"}}"#
        );
    }
}
