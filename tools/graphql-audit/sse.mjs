// Checks GraphQL over Server-Sent Events with the `graphql-sse` client (distinct connections
// mode) against a running Agora, e.g.
//   node sse.mjs http://127.0.0.1:8000/graphql
// Two users sign up; one subscribes over SSE and receives the message the other sends; a query,
// a document that does not validate and a subscription without a token go through the client
// too. Exits non-zero when a check fails.
import { createClient } from 'graphql-sse';

const url = process.argv[2] ?? 'http://127.0.0.1:8000/graphql';
const password = 'correct horse battery';
let failed = 0;
const check = (name, ok, detail) => {
  console.log(`${ok ? 'ok' : 'FAIL'} ${name}${ok ? '' : `: ${JSON.stringify(detail)}`}`);
  if (!ok) failed += 1;
};

/** A plain GraphQL-over-HTTP request (for the setup and the other user's actions). */
async function gql(query, variables = {}, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await response.json();
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function user(prefix) {
  const username = `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
  await gql('mutation($i: RegisterInput!) { register(input: $i) { id } }', {
    i: { username, email: `${username}@example.com`, password },
  });
  const { tokenAuth } = await gql('mutation($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { access } }', {
    u: username,
    p: password,
  });
  return { username, token: tokenAuth.access };
}

const client = (token) =>
  createClient({ url, retryAttempts: 0, headers: token ? { Authorization: `Bearer ${token}` } : {} });

/** Every result of one operation, until the server completes it. */
async function all(token, request) {
  const results = [];
  for await (const result of client(token).iterate(request)) results.push(result);
  return results;
}

const alice = await user('alice');
const bob = await user('bob');

const me = await all(alice.token, { query: '{ me { username } }' });
check('a query is one result', me.length === 1 && me[0].data?.me?.username === alice.username, me);

const invalid = await all(alice.token, { query: '{ noSuchField }' });
check(
  'a document that does not validate is one result with its error, without data',
  invalid.length === 1 && invalid[0].errors?.[0]?.extensions?.code === 'GRAPHQL_VALIDATION_FAILED' && !('data' in invalid[0]),
  invalid,
);

const anonymous = await all(undefined, { query: 'subscription { messageAdded { id } }' });
check(
  'a subscription without a token is refused',
  anonymous.length === 1 && anonymous[0].errors?.[0]?.extensions?.code === 'UNAUTHENTICATED',
  anonymous,
);

const { createChatRoom } = await gql(
  'mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name messages { edges { cursor } } } } }',
  { r: bob.username },
  alice.token,
);
const room = createChatRoom.chatRoom.name;
const send = 'mutation($room: String!, $c: String!) { sendMessage(roomName: $room, content: $c) { id } }';
await gql(send, { room, c: 'before' }, alice.token);
const { chatRoom } = await gql(
  'query($n: String!) { chatRoom(name: $n) { messages(last: 1) { edges { cursor } } } }',
  { n: room },
  alice.token,
);
// From the message before: what bob sends next arrives whether the feed is live yet or not.
const after = chatRoom.messages.edges[0].cursor;
const live = client(alice.token).iterate({
  query:
    'subscription($room: String, $after: String) { messageAdded(roomName: $room, after: $after) { content author { username } } }',
  variables: { room, after },
});
const first = live.next();
await gql(send, { room, c: 'hello over SSE' }, bob.token);
const received = await Promise.race([
  first,
  new Promise((resolve) => setTimeout(() => resolve({ timedOut: true }), 15000)),
]);
check(
  "a subscription receives the other user's message",
  received.value?.data?.messageAdded?.content === 'hello over SSE' &&
    received.value?.data?.messageAdded?.author?.username === bob.username,
  received,
);
await live.return();

console.log(`graphql-sse check of ${url}: ${failed === 0 ? 'all passed' : `${failed} failed`}`);
process.exit(failed === 0 ? 0 : 1);
