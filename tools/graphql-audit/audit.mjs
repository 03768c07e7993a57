// Runs graphql-http's GraphQL-over-HTTP server audits (every MUST, SHOULD and MAY of the
// specification it checks) against a running Agora, e.g.
//   node audit.mjs http://127.0.0.1:8000/graphql
// Prints one line per audit; exits non-zero when a MUST ("error") or a SHOULD ("warn") fails.
// MAYs that the server chooses not to do are listed as notices.
import { serverAudits } from 'graphql-http';

const url = process.argv[2] ?? 'http://127.0.0.1:8000/graphql';
let failed = 0;
let passed = 0;
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  const result = await audit.fn();
  if (result.status === 'ok') {
    passed += 1;
    continue;
  }
  if (result.status !== 'notice') failed += 1;
  let body = '';
  try {
    body = result.response ? (await result.response.text()).slice(0, 300) : '';
  } catch {
    // The body was read by the audit already.
  }
  console.log(`${result.status.toUpperCase()} ${audit.id} ${audit.name}: ${result.reason}${body ? `\n    body: ${body}` : ''}`);
}
console.log(`graphql-http audit of ${url}: ${passed} passed, ${failed} MUST/SHOULD failed`);
process.exit(failed === 0 ? 0 : 1);
