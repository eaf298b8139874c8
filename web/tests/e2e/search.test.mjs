// Search in the web client: the search box finds messages across conversations, marks the
// matched words, opens the conversation at the message (loading older pages to reach it),
// and says when nothing is found. On a desktop and on a phone, by roles and labels.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  api,
  assertLabelled,
  expectCount,
  expectText,
  launchBrowser,
  newPerson,
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

/** @param {import('playwright-core').Page} page */
function searchBox(page) {
  return page.getByRole('searchbox', { name: 'Search messages' });
}

/**
 * Waits until the server's index has what `q` finds (the index follows the messages by
 * up to a second; docs/protocol.md, "Search").
 * @param {string} token @param {string} q
 */
async function indexed(token, q) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { status, json } = await api(server, token, 'GET', `/v1/search?q=${encodeURIComponent(q)}`);
    assert.equal(status, 200);
    if (json.results.length > 0) return;
    assert.ok(Date.now() < deadline, `the index never took “${q}”`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** @param {import('playwright-core').Page} page */
function results(page) {
  return page.getByRole('list', { name: 'Search results' }).getByRole('link');
}

test('search finds a message, marks the words and opens the conversation at it', async () => {
  const ada = await newPerson(browser, server, 'ada');
  const bob = await newPerson(browser, server, 'bob');
  await startChat(ada.page, 'bob');
  await send(ada.page, 'The lighthouse key is under the blue stone');
  await expectText(ada.page.getByRole('list', { name: 'Messages' }), 'blue stone');
  // Enough newer messages that the found one is not on the first page of history.
  const { token } = await sessionOf(ada.page);
  const chat = await openConversationId(ada.page);
  for (let i = 0; i < 70; i++) {
    const sent = await api(server, token, 'POST', `/v1/conversations/${chat}/messages`, {
      client_msg_id: `filler-${i}`,
      body: `filler message ${i}`,
    });
    assert.equal(sent.status, 201);
  }
  await indexed(token, 'lighthouse stone');

  const page = bob.page;
  await searchBox(page).fill('lighthouse stone');
  await expectCount(results(page), 1);
  const hit = results(page).first();
  await expectText(hit, 'ada: The lighthouse key is under the blue stone');
  assert.deepEqual(await hit.locator('mark').allTextContents(), ['lighthouse', 'stone']);
  await expectText(page.getByRole('status').filter({ hasText: 'found' }), '1 message found');
  await assertLabelled(page);

  await hit.click();
  const found = page.locator('li.msg.found');
  await expectText(found, 'The lighthouse key is under the blue stone');
  assert.equal(await openConversationId(page), chat);
  assert.ok(await found.evaluate((el) => {
    const box = el.getBoundingClientRect();
    return box.top >= 0 && box.bottom <= window.innerHeight;
  }), 'the found message is in view');

  // Nothing found says so; clearing the box brings the conversation list back.
  await searchBox(page).fill('xylophone');
  await expectText(page.getByRole('status').filter({ hasText: 'found' }), 'No messages found for “xylophone”.');
  await expectCount(results(page), 0);
  await searchBox(page).press('Escape');
  await page.getByRole('list', { name: 'Conversations' }).waitFor();
  assert.equal(await page.getByRole('list', { name: 'Search results' }).isVisible(), false);

  assert.deepEqual(ada.errors.concat(bob.errors), []);
  await ada.context.close();
  await bob.context.close();
});

const PHONE = {
  viewport: { width: 360, height: 740 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};

test('on a phone: search, open a result, and come back to the results', async () => {
  const pia = await newPerson(browser, server, 'pia', PHONE);
  const desk = await newPerson(browser, server, 'desk');
  await startChat(desk.page, 'pia');
  await send(desk.page, 'Café at seven, by the harbour');
  await send(desk.page, 'bring an umbrella');
  await indexed((await sessionOf(desk.page)).token, 'cafe');

  const page = pia.page;
  await searchBox(page).fill('cafe');
  await expectCount(results(page), 1);
  assert.deepEqual(await results(page).first().locator('mark').allTextContents(), ['Café']);
  await results(page).first().tap();
  await expectText(page.locator('li.msg.found'), 'Café at seven, by the harbour');
  // One pane at a time on a phone: back shows the results again.
  await page.getByRole('button', { name: 'Back to conversations' }).tap();
  await expectCount(results(page), 1);
  assert.equal(await searchBox(page).inputValue(), 'cafe');

  assert.deepEqual(pia.errors.concat(desk.errors), []);
  await pia.context.close();
  await desk.context.close();
});
