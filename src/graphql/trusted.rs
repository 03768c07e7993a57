//! Trusted documents: with `AGORA_TRUSTED_DOCUMENTS` set, only the GraphQL documents listed in
//! that file (produced at build time by the clients' codegen) run; anything else is refused
//! before it is parsed. A public API then runs only what its own clients were built with.
//!
//! The file is either a map from id to document (GraphQL Codegen's client preset,
//! `persisted-documents.json`) or Apollo's persisted query manifest (`{"format":
//! "apollo-persisted-query-manifest", "operations": [{"id", "body", …}]}`). A request names a
//! listed document by its id or SHA-256 in `extensions.persistedQuery.sha256Hash` (Apollo's
//! persisted-query link, no `query`), or sends the document's text itself, which runs when the
//! text is listed. Any other document is refused before it is parsed, as one that does not
//! validate against this server (`GRAPHQL_VALIDATION_FAILED`, no `data`; a 400 in
//! `application/graphql-response+json`). Automatic persisted queries cannot add documents in
//! this mode. The legacy layer's own documents are the server's, not a client's, and always run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use async_graphql::{Request, ServerResult};

use super::error::{GRAPHQL_VALIDATION_FAILED, coded};
use super::persisted;

/// Put on a request of the server's own (the legacy layer's documents): not a client's.
pub struct ServerDocument;

pub const NOT_TRUSTED: &str = "Only the documents this server trusts run here; this is not one of them.";

/// The trusted documents, by id and by the SHA-256 of their text.
#[derive(Debug, Default)]
pub struct TrustedDocuments {
    by_id: HashMap<String, Arc<str>>,
}

impl TrustedDocuments {
    /// Reads a manifest (see the module's documentation).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the trusted documents {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid trusted documents in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let Some(object) = value.as_object() else { bail!("not a JSON object") };
        let mut entries = Vec::new();
        if object.get("format").and_then(|f| f.as_str()) == Some("apollo-persisted-query-manifest") {
            let Some(operations) = object.get("operations").and_then(|o| o.as_array()) else {
                bail!("an Apollo manifest without `operations`")
            };
            for operation in operations {
                let id = operation.get("id").and_then(|v| v.as_str());
                let body = operation.get("body").and_then(|v| v.as_str());
                let (Some(id), Some(body)) = (id, body) else { bail!("an operation without `id` or `body`") };
                entries.push((id.to_owned(), body.to_owned()));
            }
        } else {
            for (id, body) in object {
                let Some(body) = body.as_str() else { bail!("the document of {id} is not a string") };
                entries.push((id.clone(), body.to_owned()));
            }
        }
        let mut by_id = HashMap::new();
        for (id, body) in entries {
            let body: Arc<str> = body.into();
            by_id.insert(persisted::hash(&body), body.clone());
            by_id.insert(id.to_ascii_lowercase(), body);
        }
        Ok(TrustedDocuments { by_id })
    }

    /// Documents listed (each counted once, however many ids name it).
    pub fn len(&self) -> usize {
        self.by_id.values().map(|d| d.as_ref()).collect::<std::collections::HashSet<_>>().len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn trusts(&self, text: &str) -> bool {
        self.by_id.get(&persisted::hash(text)).is_some_and(|d| d.as_ref() == text)
    }
}

/// The mode's gate ([`super::pipeline::Gate`], in place of automatic persisted queries).
impl super::pipeline::Gate for TrustedDocuments {
    async fn pass(&self, request: Request) -> ServerResult<Request> {
        if request.data.contains_key(&std::any::TypeId::of::<ServerDocument>()) {
            return Ok(request);
        }
        let wanted = persisted::requested_hash(&request)?;
        if request.query.is_empty()
            && let Some(id) = wanted
        {
            persisted::run_stored(request, self.by_id.get(&id).map(|d| d.as_ref()))
        } else if self.trusts(&request.query) {
            Ok(request)
        } else {
            Err(coded(NOT_TRUSTED, GRAPHQL_VALIDATION_FAILED))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_manifest_formats_are_read_and_keyed_by_hash_too() {
        let document = "query Me { me { id } }";
        let hash = persisted::hash(document);
        let codegen = TrustedDocuments::parse(&serde_json::json!({"abc123": document}).to_string()).unwrap();
        let apollo = TrustedDocuments::parse(
            &serde_json::json!({
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [{"id": hash, "name": "Me", "type": "query", "body": document}]
            })
            .to_string(),
        )
        .unwrap();
        for trusted in [&codegen, &apollo] {
            assert_eq!(trusted.len(), 1);
            assert!(trusted.trusts(document));
            assert!(!trusted.trusts("query Me { me { id username } }"));
            assert_eq!(trusted.by_id.get(&hash).map(|d| d.as_ref()), Some(document));
        }
        assert!(codegen.by_id.contains_key("abc123"));
        assert!(TrustedDocuments::parse("[]").is_err());
        assert!(TrustedDocuments::parse(r#"{"a": 1}"#).is_err());
    }
}
