//! Response fields in the order of the selection set, as the GraphQL specification asks.
//!
//! async-graphql 7.2.1 resolves the fields of an object concurrently and collects them in the
//! order they complete, so a field answered from a DataLoader comes after its plain siblings.
//! [`SelectionOrder`] works out each request's key order once, when its document is parsed,
//! and once the operation has run puts every object of `data` back in the order the document
//! selects its keys ("CollectFields": aliases, fragment spreads and inline fragments in place, fields
//! left out by `@skip`/`@include` not counted). Fragments are collected whatever their type
//! condition: an object of the `ChatEvent` union simply has none of the keys a fragment on
//! another member selects. Every transport runs operations through the schema, so every
//! transport gets the order.

use std::sync::{Arc, OnceLock};

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Response, Value, Variables};
use futures_util::stream::BoxStream;

/// One request's key order, worked out once when its document is parsed: a subscription
/// holds this small tree, not a copy of its document and variables, and each event it
/// delivers is put in order without walking the document again.
#[derive(Default)]
pub struct SelectionOrder {
    plans: Arc<OnceLock<Plans>>,
}

/// The hooks ([`super::pipeline`] calls them).
impl SelectionOrder {
    /// Once parsed: the order of every operation of the document.
    pub fn keep(&self, document: &ExecutableDocument, variables: &Variables) {
        let _ = self.plans.set(Plans::of(document, variables));
    }

    /// A response of the operation `name`, put in the document's order.
    pub fn apply(&self, name: Option<&str>, response: &mut Response) {
        if let Some(plan) = self.plans.get().and_then(|plans| plans.operation(name)) {
            plan.order(&mut response.data);
        }
    }

    /// Every response of a stream (an operation over a WebSocket), put in order.
    pub fn stream<'s>(&self, stream: BoxStream<'s, Response>) -> BoxStream<'s, Response> {
        use futures_util::StreamExt;
        let plans = self.plans.clone();
        stream
            .map(move |mut response| {
                if let Some(plan) = plans.get().and_then(Plans::subscription) {
                    plan.order(&mut response.data);
                }
                response
            })
            .boxed()
    }
}

/// The plan of each operation of a document, by name.
struct Plans(Vec<(Option<Name>, OperationType, Plan)>);

impl Plans {
    fn of(document: &ExecutableDocument, variables: &Variables) -> Self {
        let collect = Collect { document, variables };
        let plan = |name: Option<&Name>, operation: &OperationDefinition| {
            (name.cloned(), operation.ty, collect.plan(&[&operation.selection_set.node]))
        };
        Plans(match &document.operations {
            DocumentOperations::Single(operation) => vec![plan(None, &operation.node)],
            DocumentOperations::Multiple(operations) => {
                operations.iter().map(|(name, operation)| plan(Some(name), &operation.node)).collect()
            }
        })
    }

    /// The operation a request runs: the one named, or the only one.
    fn operation(&self, name: Option<&str>) -> Option<&Plan> {
        match (self.0.as_slice(), name) {
            ([(_, _, plan)], None) => Some(plan),
            (plans, Some(name)) => {
                plans.iter().find(|(n, _, _)| n.as_ref().is_none_or(|n| n.as_str() == name)).map(|(_, _, plan)| plan)
            }
            _ => None,
        }
    }

    /// The operation a stream runs (its name is not passed down to a stream): the only
    /// subscription of the document.
    fn subscription(&self) -> Option<&Plan> {
        let mut subscriptions = self.0.iter().filter(|(_, ty, _)| *ty == OperationType::Subscription);
        match (subscriptions.next(), subscriptions.next()) {
            (Some((_, _, plan)), None) => Some(plan),
            _ => self.operation(None),
        }
    }
}

/// The response keys of a selection in order, each with the plan of its own value (none for
/// a leaf).
#[derive(Debug)]
struct Plan(Vec<(Name, Plan)>);

impl Plan {
    /// Orders `value`: an object by the plan, a list item by item, a leaf not at all.
    fn order(&self, value: &mut Value) {
        match value {
            Value::List(items) => items.iter_mut().for_each(|item| self.order(item)),
            Value::Object(object) if !self.0.is_empty() => self.object(object),
            _ => {}
        }
    }

    fn object(&self, object: &mut IndexMap<Name, Value>) {
        let mut ordered = IndexMap::with_capacity(object.len());
        for (key, plan) in &self.0 {
            // The object is rebuilt in order: where a key is taken from does not matter.
            if let Some((key, mut value)) = object.swap_remove_entry(key.as_str()) {
                plan.order(&mut value);
                ordered.insert(key, value);
            }
        }
        // Anything not selected (there should be nothing) goes at the end.
        ordered.extend(std::mem::take(object));
        *object = ordered;
    }
}

/// "CollectFields" over a document, with its variables for `@skip` and `@include`.
struct Collect<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
}

impl<'a> Collect<'a> {
    /// The plan of the merged selection sets `sets`.
    fn plan(&self, sets: &[&'a SelectionSet]) -> Plan {
        let mut fields = Vec::new();
        let mut path = Vec::new();
        for set in sets {
            self.collect(set, &mut fields, &mut path);
        }
        Plan(fields.into_iter().map(|(key, subsets)| (key.clone(), self.plan(&subsets))).collect())
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
        Plans::of(&document, &variables).operation(None).unwrap().order(&mut value);
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

    #[test]
    fn each_operation_of_a_document_has_its_own_order() {
        let document = async_graphql::parser::parse_query(
            "query Q { b a } subscription S { added { id content } } query R { a b }",
        )
        .unwrap();
        let plans = Plans::of(&document, &Variables::default());
        let keys = |plan: &Plan| plan.0.iter().map(|(key, _)| key.to_string()).collect::<Vec<_>>();
        assert_eq!(keys(plans.operation(Some("Q")).unwrap()), ["b", "a"]);
        assert_eq!(keys(plans.operation(Some("R")).unwrap()), ["a", "b"]);
        assert!(plans.operation(None).is_none(), "three operations and no name: none of them");
        // A stream is told no name: it runs the document's only subscription.
        let subscription = plans.subscription().unwrap();
        assert_eq!(keys(subscription), ["added"]);
        assert_eq!(keys(&subscription.0[0].1), ["id", "content"]);
    }
}
