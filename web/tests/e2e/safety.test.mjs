// Bodies are text, never HTML; the served app forbids inline script; API errors stay JSON;
// the length limit is counted in code points with a live counter and a clear refusal; a
// 99,999-character message renders without freezing; older history loads on scrolling up.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  api,
  composer,
  eventually,
  expectCount,
  expectText,
  launchBrowser,
  messageItems,
  messageWithBody,
  newPerson,
  openConversation,
  openConversationId,
  send,
  sessionOf,
  startChat,
  startServer,
} from '../harness.mjs';

/** @type {import('../harness.mjs').Server} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the app is served with a strict CSP, and API errors stay JSON', async () => {
  const root = await fetch(`${server.url}/`);
  assert.equal(root.status, 200);
  assert.equal(root.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(root.headers.get('cache-control'), 'no-cache');
  const csp = root.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  const sw = await fetch(`${server.url}/sw.js`);
  assert.equal(sw.headers.get('cache-control'), 'no-cache');
  assert.equal(sw.headers.get('content-type'), 'text/javascript; charset=utf-8');
  const manifest = await (await fetch(`${server.url}/manifest.webmanifest`)).json();
  assert.equal(manifest.display, 'standalone');
  assert.equal(manifest.start_url, '/');
  assert.ok(manifest.icons.some((/** @type {any} */ i) => i.sizes === '512x512' && i.type === 'image/png'));
  const missing = await fetch(`${server.url}/v1/nope`);
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { error: { code: 'not_found', message: 'no such route' } });
  const notAFile = await fetch(`${server.url}/nope.html`);
  assert.equal(notAFile.status, 404);
  assert.equal((await notAFile.json()).error.code, 'not_found');
});

test('a body of <img src=x onerror=alert(1)> shows as text and runs nothing', async () => {
  const eve = await newPerson(browser, server, 'eve');
  const ada = await newPerson(browser, server, 'ada');
  await startChat(eve.page, 'ada');
  const payloads = [
    '<img src=x onerror=alert(1)>',
    '<script>alert(2)</script>',
    '<b>not bold</b> & <a href="javascript:alert(3)">link</a>',
  ];
  for (const p of payloads) await send(eve.page, p);
  await openConversation(ada.page, /^eve/);
  for (const person of [eve, ada]) {
    for (const p of payloads) {
      const item = messageItems(person.page, p);
      await expectCount(item, 1);
      assert.equal(await item.locator('.body').textContent(), p);
    }
    const list = person.page.getByRole('list', { name: 'Messages' });
    assert.equal(await list.locator('img, script, b, a').count(), 0);
  }
  // The preview in the list is text too.
  await expectText(ada.page.getByRole('list', { name: 'Conversations' }), '<b>not bold</b>');
  // A markup group title as well.
  await eve.page.getByRole('button', { name: 'New group' }).click();
  const dialog = eve.page.getByRole('dialog', { name: 'New group' });
  await dialog.getByLabel('Group name').fill('<img src=y onerror=alert(4)>');
  await dialog.getByLabel('Members').fill('ada');
  await dialog.getByRole('button', { name: 'Create group' }).click();
  await eve.page.getByRole('heading', { level: 2, name: '<img src=y onerror=alert(4)>' }).waitFor();
  await ada.page.getByRole('link', { name: /^<img src=y onerror=alert\(4\)>, group/ }).waitFor();
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(eve.dialogs.concat(ada.dialogs), [], 'no alert ran');
  assert.deepEqual(eve.errors.concat(ada.errors), []);
  await eve.context.close();
  await ada.context.close();
});

test('the length limit: counter near it, refusal past it, code points not UTF-16 units', async () => {
  const max = await newPerson(browser, server, 'max');
  const liz = await newPerson(browser, server, 'liz');
  await startChat(max.page, 'liz');
  const box = composer(max.page);
  const counter = max.page.locator('#composer-count');

  await box.fill('a'.repeat(89_999));
  assert.equal(await counter.isVisible(), false, 'no counter far from the limit');
  await box.fill('a'.repeat(99_998));
  await expectText(counter, '99,998 / 99,999 characters');
  await box.press('End');
  await box.press('b');
  await box.press('c');
  await expectText(counter, '100,000 / 99,999 characters: 1 too many');
  assert.equal(await box.getAttribute('aria-invalid'), 'true');
  await box.press('Enter');
  await expectText(max.page.getByRole('alert').filter({ hasText: 'over' }), 'This message is 1 character over the 99,999-character limit');
  assert.equal((await box.inputValue()).length, 100_000, 'the draft is kept');
  await expectCount(max.page.getByRole('list', { name: 'Messages' }).getByRole('listitem'), 0);

  // 99,998 letters and one emoji: 100,000 UTF-16 units but 99,999 characters. It goes.
  const longest = `${'a'.repeat(99_998)}😀`;
  await box.fill(longest);
  await expectText(counter, '99,999 / 99,999 characters');
  assert.equal(await box.getAttribute('aria-invalid'), null);
  await box.press('Enter');
  await eventually(async () => assert.equal(await box.inputValue(), ''));

  // Liz gets it: shown cut, with a button for the rest; the page stays responsive.
  await openConversation(liz.page, /^max/);
  const item = liz.page.getByRole('list', { name: 'Messages' }).getByRole('listitem').filter({ hasText: 'aaaaaaaaaaaaaaaa' });
  await expectCount(item, 1);
  await item.getByRole('button', { name: 'Show all 99,999 characters' }).click();
  await item.getByRole('button', { name: 'Show less' }).waitFor();
  const started = Date.now();
  const length = await item.locator('.body').evaluate((el) => el.textContent?.length);
  assert.equal(length, 100_000);
  assert.ok(Date.now() - started < 2000, 'the page answers at once');
  await max.context.close();
  await liz.context.close();
});

test('older history loads when scrolling up, with a day separator', async () => {
  const old = await newPerson(browser, server, 'old');
  const new_ = await newPerson(browser, server, 'new');
  await startChat(old.page, 'new');
  const id = await openConversationId(old.page);
  const { token } = await sessionOf(old.page);
  for (let i = 1; i <= 130; i++) {
    const answer = await api(server, token, 'POST', `/v1/conversations/${id}/messages`, {
      client_msg_id: `seed-${i}`,
      body: `seed ${i}`,
    });
    assert.equal(answer.status, 201);
  }
  await openConversation(new_.page, /^old/);
  const list = new_.page.getByRole('list', { name: 'Messages' });
  await expectCount(messageWithBody(new_.page, 'seed 130'), 1);
  // Only the newest page is there at first.
  assert.equal(await messageWithBody(new_.page, 'seed 1').count(), 0);
  const scroller = new_.page.getByRole('region', { name: 'Message history' });
  await eventually(async () => {
    await scroller.evaluate((el) => el.scrollTo({ top: 0 }));
    assert.equal(await messageWithBody(new_.page, 'seed 1').count(), 1);
  }, 20_000);
  // Every message once, in order, under one "Today" separator.
  const bodies = await list.locator('.msg .body').allTextContents();
  assert.deepEqual(bodies, Array.from({ length: 130 }, (_, i) => `seed ${i + 1}`));
  await expectCount(list.getByRole('listitem').filter({ hasText: /^Today$/ }), 1);
  await old.context.close();
  await new_.context.close();
});
