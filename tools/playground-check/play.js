// Drives the GraphiQL playground in headless Chromium like a person would: runs a signed-in
// query, starts a subscription, sends a message from outside and waits for it to show up.
// Usage: node play.js BASE_URL ACCESS_TOKEN [SCREENSHOT] [ROOM]   (see README.md here)
const { chromium } = require('playwright-core');
const base = process.argv[2], token = process.argv[3];
async function run(page, query) {
  await page.click('.graphiql-query-editor .CodeMirror');
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(query); await page.waitForTimeout(1000);
  await page.click('.graphiql-execute-button');
}
(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  await page.goto(`${base}/graphiql?token=${token}`);
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 15000 });
  await run(page, '{ me { username email profile { image } } }');
  await page.waitForFunction(() => document.querySelector('.result-window')?.innerText.includes('username'), null, { timeout: 10000 });
  console.log('QUERY RESULT:', (await page.innerText('.result-window')).replace(/\s+/g, ' '));
  await run(page, 'subscription { messageAdded { content author { username } } }');
  await page.waitForTimeout(1500);
  const send = await fetch(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: `mutation { sendMessage(roomName: "${process.argv[5] || 'alice_bob'}", content: "hello from outside the playground") { id } }` }) });
  console.log('SEND:', await send.text());
  await page.waitForFunction(() => document.querySelector('.result-window')?.innerText.includes('hello from outside'), null, { timeout: 10000 });
  console.log('SUBSCRIPTION RESULT:', (await page.innerText('.result-window')).replace(/\s+/g, ' '));
  await page.screenshot({ path: process.argv[4] || 'playground.png' });
  await browser.close();
})().catch(e => { console.error('FAILED', e.message); process.exit(1); });
