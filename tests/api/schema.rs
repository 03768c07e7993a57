//! The committed `schema.graphql` is what the code serves.

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repository root");
    let current = agora::graphql::sdl();
    assert!(committed == current, "schema.graphql is stale: run `cargo run -- export-schema --out schema.graphql`");
}
