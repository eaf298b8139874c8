// A 360x740 phone: the list and the chat are separate views, everything fits the width,
// and chatting works by touch.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  assertLabelled,
  composer,
  expectCount,
  launchBrowser,
  messageItems,
  newPerson,
  send,
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

const PHONE = {
  viewport: { width: 360, height: 740 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};

/** @param {import('playwright-core').Page} page */
async function assertFitsWidth(page) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= client, `page is ${scroll}px wide in a ${client}px viewport`);
}

test('a 360x740 phone: list and chat as separate views', async () => {
  const pia = await newPerson(browser, server, 'pia', PHONE);
  const page = pia.page;
  await assertFitsWidth(page);
  const desk = await newPerson(browser, server, 'desk');
  await startChat(desk.page, 'pia');
  await send(desk.page, 'Hello phone! A longer message that has to wrap over several lines on a narrow screen without making the page scroll sideways: https://example.com/a/very/long/path/that/does/not/break/easily');

  // The list view: the conversation, no chat pane.
  const conversations = page.getByRole('list', { name: 'Conversations' });
  const link = conversations.getByRole('link', { name: /^desk/ });
  await link.waitFor();
  assert.equal(await page.getByRole('list', { name: 'Messages' }).count(), 0);
  await assertLabelled(page);

  // Tap: the chat replaces the list.
  await link.tap();
  await expectCount(messageItems(page, 'Hello phone!'), 1);
  assert.equal(await conversations.isVisible(), false, 'the list is hidden behind the chat');
  await assertFitsWidth(page);
  const box = await composer(page).boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= 360 && box.y + box.height <= 740, `composer at ${JSON.stringify(box)}`);
  const bubble = await messageItems(page, 'Hello phone!').locator('.bubble').boundingBox();
  assert.ok(bubble && bubble.x + bubble.width <= 360, `bubble at ${JSON.stringify(bubble)}`);

  await composer(page).tap();
  await send(page, 'Sent from my phone');
  await expectCount(messageItems(desk.page, 'Sent from my phone'), 1);

  // Back: the list again, with the latest preview.
  await page.getByRole('button', { name: 'Back to conversations' }).tap();
  await conversations.waitFor();
  assert.equal(await page.getByRole('list', { name: 'Messages' }).isVisible().catch(() => false), false);
  await link.filter({ hasText: 'You: Sent from my phone' }).waitFor();
  // The browser's back button works the same way.
  await link.tap();
  await page.getByRole('list', { name: 'Messages' }).waitFor();
  await page.goBack();
  await conversations.waitFor();

  // Dialogs fit too.
  await page.getByRole('button', { name: 'New group' }).tap();
  const dialog = page.getByRole('dialog', { name: 'New group' });
  const d = await dialog.boundingBox();
  assert.ok(d && d.width <= 360, `dialog ${JSON.stringify(d)}`);
  await dialog.getByRole('button', { name: 'Close' }).tap();

  assert.deepEqual(pia.errors.concat(desk.errors), []);
  await pia.context.close();
  await desk.context.close();
});
