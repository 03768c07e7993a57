//! The committed `schema.graphql` is what the code serves.

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repository root");
    let current = agora::graphql::sdl();
    assert!(committed == current, "schema.graphql is stale: run `cargo run -- export-schema --out schema.graphql`");
}

/// Stops a request after validation, so that a document is checked without running anything.
struct ValidateOnly;

impl async_graphql::extensions::ExtensionFactory for ValidateOnly {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(ValidateOnly)
    }
}

const VALID: &str = "valid (not run)";

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for ValidateOnly {
    async fn validation(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextValidation<'_>,
    ) -> Result<async_graphql::ValidationResult, Vec<async_graphql::ServerError>> {
        next.run(ctx).await?;
        Err(vec![async_graphql::ServerError::new(VALID, None)])
    }
}

/// The errors of validating `document` against the served schema (its limits included), with a
/// value of the declared type for each variable; empty when it is valid.
async fn validate(document: &str) -> Vec<String> {
    use async_graphql::parser::types::{BaseType, DocumentOperations};
    let schema = async_graphql::Schema::build(
        agora::graphql::Query::default(),
        agora::graphql::Mutation::default(),
        agora::graphql::Subscription::default(),
    )
    .limit_depth(agora::graphql::MAX_DEPTH)
    .limit_complexity(agora::graphql::MAX_COMPLEXITY)
    .extension(ValidateOnly)
    .finish();
    let mut variables = serde_json::Map::new();
    if let Ok(parsed) = async_graphql::parser::parse_query(document) {
        let operations: Vec<_> = match &parsed.operations {
            DocumentOperations::Single(op) => vec![op],
            DocumentOperations::Multiple(ops) => ops.values().collect(),
        };
        for op in operations {
            for definition in &op.node.variable_definitions {
                let ty = &definition.node.var_type.node;
                let value = match &ty.base {
                    BaseType::List(_) => serde_json::json!([]),
                    BaseType::Named(name) => match name.as_str() {
                        "Int" => serde_json::json!(1),
                        "Float" => serde_json::json!(1.5),
                        "Boolean" => serde_json::json!(true),
                        _ => serde_json::json!("x"),
                    },
                };
                variables.insert(definition.node.name.node.to_string(), value);
            }
        }
    }
    let request = async_graphql::Request::new(document)
        .variables(async_graphql::Variables::from_json(serde_json::Value::Object(variables)));
    let response = schema.execute(request).await;
    let mut messages: Vec<String> = response.errors.into_iter().map(|e| e.message).collect();
    assert!(!messages.is_empty(), "the document ran: {document}");
    messages.retain(|m| m != VALID);
    messages
}

/// Every GraphQL document the legacy layer sends (the REST table's operations and guards, the chat
/// socket's query, subscription and mutation) is valid against the schema: fields, arguments,
/// variable types, limits.
#[tokio::test]
async fn every_legacy_document_is_valid_against_the_schema() {
    let mut checked = 0;
    for document in agora::legacy::documents().map(|d| d.text) {
        assert_eq!(validate(document).await, Vec::<String>::new(), "{document}");
        checked += 1;
    }
    assert!(checked >= 15, "{checked} documents");
}

/// The check above finds invalid documents.
#[tokio::test]
async fn invalid_documents_fail_validation() {
    for document in [
        "query { noSuchField }",
        "query($n: Int!) { chatRoom(name: $n) { id } }",
        "query { me { id ",
        "{ users(first: 100) { nodes { posts(first: 100) { nodes { id } } } } }",
    ] {
        assert_ne!(validate(document).await, Vec::<String>::new(), "{document}");
    }
}

/// Introspection shows the schema `schema.graphql` describes: `__schema.description` is the
/// schema's own (it has none), not the text about the `__Schema` type; every scalar's
/// `specifiedByURL` is the `@specifiedBy` of the exported SDL, and the other way round.
/// (tools/graphql-audit/schema.mjs compares the whole schema, printed by graphql-js.)
#[tokio::test]
async fn introspection_agrees_with_the_exported_schema() {
    let app = crate::helpers::spawn_app().await;
    let data = app
        .gql_ok(None, "{ __schema { description types { kind name specifiedByURL } } }", serde_json::json!({}))
        .await;
    assert_eq!(data["__schema"]["description"], serde_json::Value::Null, "{data}");
    let sdl = agora::graphql::sdl();
    let mut introspected: Vec<(String, String)> = data["__schema"]["types"]
        .as_array()
        .expect("types")
        .iter()
        .filter(|ty| ty["kind"] == "SCALAR" && !ty["specifiedByURL"].is_null())
        .map(|ty| (ty["name"].as_str().unwrap().to_owned(), ty["specifiedByURL"].as_str().unwrap().to_owned()))
        .collect();
    let mut exported: Vec<(String, String)> = sdl
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("scalar ")?.split_once(" @specifiedBy(url: \"")?;
            Some((name.to_owned(), rest.strip_suffix("\")")?.to_owned()))
        })
        .collect();
    introspected.sort();
    exported.sort();
    assert!(introspected.iter().any(|(name, _)| name == "Upload"), "{introspected:?}");
    assert_eq!(introspected, exported);
    assert!(!sdl.contains("\"\"\"\nschema {"), "the exported schema has no description either");
}
