// Checks that the schema a client gets by introspection is the one committed in schema.graphql
// (a codegen from the URL and one from the file must be identical), e.g.
//   node schema.mjs http://127.0.0.1:8000/graphql ../../schema.graphql
// Both are built with graphql-js (buildClientSchema of the standard introspection query, with
// descriptions, deprecations, `specifiedByURL` and repeatable directives; buildSchema of the
// file) and printed; the two prints must be equal, types and fields in the same order.
// Exits non-zero and prints a unified diff when they differ.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClientSchema, buildSchema, getIntrospectionQuery, printSchema } from 'graphql';

const url = process.argv[2] ?? 'http://127.0.0.1:8000/graphql';
const file = process.argv[3] ?? new URL('../../schema.graphql', import.meta.url);

const query = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
});
const response = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
  body: JSON.stringify({ query }),
});
const result = await response.json();
if (!response.ok || result.errors) {
  console.log(`introspection failed: ${response.status} ${JSON.stringify(result).slice(0, 500)}`);
  process.exit(1);
}

// Type order: introspection lists types by name, the file in its own order; graphql-js prints in
// the order it was given, so both are sorted by name. Fields, arguments and values keep theirs.
const sortedTypes = (schema) => {
  const config = schema.toConfig();
  config.types = [...config.types].sort((a, b) => a.name.localeCompare(b.name));
  return printSchema(new (schema.constructor)(config));
};
const introspected = sortedTypes(buildClientSchema(result.data));
const exported = sortedTypes(buildSchema(readFileSync(file, 'utf8')));
if (introspected === exported) {
  console.log(`schema check: introspection of ${url} equals ${file} (${exported.split('\n').length} lines)`);
  process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'agora-schema-'));
writeFileSync(join(dir, 'introspection.graphql'), introspected);
writeFileSync(join(dir, 'schema.graphql'), exported);
spawnSync('diff', ['-u', 'introspection.graphql', 'schema.graphql'], { cwd: dir, stdio: 'inherit' });
rmSync(dir, { recursive: true });
console.log('schema check: introspection and schema.graphql differ');
process.exit(1);
