// Protocol audit of Agora's GraphQL WebSocket transport against a live server: the MUSTs of
// graphql-transport-ws (graphql-ws's PROTOCOL.md) checked on raw sockets, the `graphql-ws`
// client end to end, and the older `graphql-ws` protocol (subscriptions-transport-ws).
//
//   AGORA_URL=http://127.0.0.1:8000 node audit.mjs     (exit status 1 when a check fails)
//
// The server must run with its default `AGORA_WS_INIT_TIMEOUT_SECONDS` (3) or less.

import WebSocket from 'ws';
import { createClient } from 'graphql-ws';

const base = (process.env.AGORA_URL ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
const wsUrl = `${base.replace(/^http/, 'ws')}/graphql/ws`;
const WAIT_MS = 10_000;
const failures = [];

async function check(name, run) {
  try {
    await run();
    console.log(`ok    ${name}`);
  } catch (err) {
    failures.push(name);
    console.log(`FAIL  ${name}: ${err?.message ?? err}`);
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

function same(actual, expected, what) {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)];
  expect(a === e, `${what}: expected ${e}, got ${a}`);
}

async function gql(query, variables = {}, token) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${base}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await response.json();
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function user(prefix) {
  const username = `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
  const password = 'correct horse battery';
  await gql('mutation($u: String!, $e: String!, $p: String!) { register(input: {username: $u, email: $e, password: $p}) { id } }', {
    u: username, e: `${username}@example.com`, p: password,
  });
  const data = await gql('mutation($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { access } }', { u: username, p: password });
  return { username, token: data.tokenAuth.access };
}

/** A raw socket: `next()` is the next JSON message, or `{close: code, reason}` once closed. */
function raw(protocol) {
  const socket = new WebSocket(wsUrl, protocol);
  const queue = [];
  const waiters = [];
  const push = (item) => (waiters.length ? waiters.shift()(item) : queue.push(item));
  socket.on('message', (data) => {
    let message;
    try { message = JSON.parse(String(data)); } catch { message = { unparsable: String(data) }; }
    push(message);
  });
  socket.on('close', (code, reason) => push({ close: code, reason: String(reason), reasonBytes: reason.length }));
  socket.on('error', (err) => push({ close: 'error', reason: err.message }));
  const opened = new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject); });
  return {
    opened,
    send: (message) => socket.send(typeof message === 'string' ? message : JSON.stringify(message)),
    next: (skip = ['ka']) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message within ${WAIT_MS} ms`)), WAIT_MS);
      const take = (item) => {
        if (skip.includes(item.type)) return waiters.unshift(take);
        clearTimeout(timer);
        resolve(item);
      };
      queue.length ? take(queue.shift()) : waiters.push(take);
    }),
    close: () => socket.close(),
  };
}

/** A raw socket past `connection_ack`. */
async function initialised(protocol, token) {
  const ws = raw(protocol);
  await ws.opened;
  ws.send({ type: 'connection_init', payload: { Authorization: `Bearer ${token}` } });
  same(await ws.next(), { type: 'connection_ack' }, 'connection_init answer');
  return ws;
}

/** The socket's close, skipping anything before it. */
async function closeOf(ws) {
  for (;;) {
    const message = await ws.next();
    if ('close' in message) return message;
  }
}

const me = '{ me { username } }';
const alice = await user('wsaudit');
const bob = await user('wsaudit');
const room = (await gql('mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }', { r: bob.username }, alice.token))
  .createChatRoom.chatRoom.name;
const sendMessage = (content) => gql('mutation($r: String!, $c: String!) { sendMessage(roomName: $r, content: $c) { id } }', { r: room, c: content }, bob.token);

console.log(`graphql-transport-ws on ${wsUrl}`);
await check('no connection_init within the wait: 4408', async () => {
  const ws = raw('graphql-transport-ws');
  await ws.opened;
  same((await closeOf(ws)).close, 4408, 'close code');
});
await check('subscribe before connection_ack: 4401', async () => {
  const ws = raw('graphql-transport-ws');
  await ws.opened;
  ws.send({ type: 'subscribe', id: '1', payload: { query: me } });
  same((await closeOf(ws)).close, 4401, 'close code');
});
await check('refused connection_init: 4403', async () => {
  const ws = raw('graphql-transport-ws');
  await ws.opened;
  ws.send({ type: 'connection_init', payload: { token: 'not-a-token' } });
  same((await closeOf(ws)).close, 4403, 'close code');
});
await check('a second connection_init: 4429', async () => {
  const ws = await initialised('graphql-transport-ws', alice.token);
  ws.send({ type: 'connection_init' });
  same((await closeOf(ws)).close, 4429, 'close code');
});
await check('subscribe with the id of a running operation: 4409', async () => {
  const ws = await initialised('graphql-transport-ws', alice.token);
  const subscribe = { type: 'subscribe', id: 'dup', payload: { query: 'subscription { messageAdded { id } }' } };
  ws.send(subscribe);
  ws.send(subscribe);
  const closed = await closeOf(ws);
  same([closed.close, closed.reason], [4409, 'Subscriber for dup already exists'], 'close');
});
for (const [what, message] of [
  ['not JSON', 'not json'],
  ['an unknown type (long)', JSON.stringify({ type: 'x'.repeat(300) })],
  ['subscribe without payload', JSON.stringify({ type: 'subscribe', id: '1' })],
  ['subscribe without query', JSON.stringify({ type: 'subscribe', id: '1', payload: {} })],
]) {
  await check(`invalid message (${what}): 4400 with a reason of at most 123 bytes`, async () => {
    const ws = await initialised('graphql-transport-ws', alice.token);
    ws.send(message);
    const closed = await closeOf(ws);
    same(closed.close, 4400, 'close code');
    expect(closed.reasonBytes > 0 && closed.reasonBytes <= 123, `reason of ${closed.reasonBytes} bytes`);
  });
}
await check('ping is answered with pong', async () => {
  const ws = await initialised('graphql-transport-ws', alice.token);
  ws.send({ type: 'ping', payload: { n: 1 } });
  same(await ws.next(), { type: 'pong', payload: { n: 1 } }, 'answer');
  ws.close();
});
await check('an operation that does not validate: one error message, nothing after', async () => {
  const ws = await initialised('graphql-transport-ws', alice.token);
  ws.send({ type: 'subscribe', id: 'bad', payload: { query: 'subscription { noSuchField }' } });
  const error = await ws.next();
  same([error.type, error.id], ['error', 'bad'], 'first message');
  expect(Array.isArray(error.payload) && error.payload.length > 0 && error.payload[0].message, 'payload: a list of GraphQL errors');
  // Nothing more for `bad`: the next message is the answer to an operation sent after it.
  ws.send({ type: 'subscribe', id: 'sentinel', payload: { query: me } });
  const next = await ws.next();
  same([next.type, next.id, next.payload?.data], ['next', 'sentinel', { me: { username: alice.username } }], 'then');
  same(await ws.next(), { type: 'complete', id: 'sentinel' }, 'then');
  ws.close();
});

console.log('graphql-ws client (graphql-ws library)');
const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { Authorization: `Bearer ${alice.token}` }, retryAttempts: 0, lazy: true });
await check('a query', async () => {
  const result = await client.iterate({ query: me }).next();
  same(result.value, { data: { me: { username: alice.username } } }, 'result');
});
await check('a live messageAdded subscription', async () => {
  const subscription = client.iterate({ query: 'subscription($r: String) { messageAdded(roomName: $r) { content } }', variables: { r: room } });
  const first = subscription.next();
  let got;
  first.then((result) => { got = result; });
  // Sends until the subscription is live (it may start after the first message).
  for (let i = 0; !got && i < 20; i++) {
    await sendMessage(`live ${i}`);
    await Promise.race([first, new Promise((r) => setTimeout(r, 500))]);
  }
  expect(got?.value?.data?.messageAdded?.content?.startsWith('live '), `got ${JSON.stringify(got)}`);
  await subscription.return();
});
await check('a validation failure reaches the client as an error list', async () => {
  const errors = await new Promise((resolve, reject) => {
    client.subscribe({ query: 'subscription { noSuchField }' }, { next: (v) => reject(new Error(`next: ${JSON.stringify(v)}`)), error: resolve, complete: () => reject(new Error('completed')) });
  });
  expect(Array.isArray(errors) && errors[0]?.message, `error: ${JSON.stringify(errors)}`);
});
await client.dispose();

console.log('graphql-ws (subscriptions-transport-ws)');
await check('connection_ack, then ka', async () => {
  const ws = await initialised('graphql-ws', alice.token);
  same(await ws.next([]), { type: 'ka' }, 'keep-alive');
  ws.close();
});
await check('an unparsable message: connection_error, the socket stays open', async () => {
  const ws = await initialised('graphql-ws', alice.token);
  ws.send('not json');
  same((await ws.next()).type, 'connection_error', 'answer');
  ws.send({ type: 'start', id: '1', payload: { query: me } });
  same(await ws.next(), { type: 'data', id: '1', payload: { data: { me: { username: alice.username } } } }, 'then');
  same(await ws.next(), { type: 'complete', id: '1' }, 'then');
  ws.close();
});
await check('an operation that does not validate: one error message', async () => {
  const ws = await initialised('graphql-ws', alice.token);
  ws.send({ type: 'start', id: 'bad', payload: { query: 'subscription { noSuchField }' } });
  const error = await ws.next();
  same([error.type, error.id, typeof error.payload?.message], ['error', 'bad', 'string'], 'first message');
  ws.send({ type: 'start', id: 'sentinel', payload: { query: me } });
  same((await ws.next()).id, 'sentinel', 'then');
  ws.close();
});
await check('stop is confirmed with complete', async () => {
  const ws = await initialised('graphql-ws', alice.token);
  ws.send({ type: 'start', id: 's', payload: { query: 'subscription { messageAdded { id } }' } });
  ws.send({ type: 'stop', id: 's' });
  same(await ws.next(), { type: 'complete', id: 's' }, 'answer');
  ws.close();
});

console.log(failures.length ? `\n${failures.length} check(s) failed` : '\nall checks passed');
process.exit(failures.length ? 1 : 0);
