// A user's own settings for a conversation in the web client: mute (for how long), pin and
// archive from the chat header's "Conversation settings"; the change shows on their other
// device live; archived conversations are listed apart and come back when a message would
// notify at the level; blocking from the same dialog stops the other writing, and
// unblocking lets them again. On a desktop and on a phone, by roles and labels.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  assertLabelled,
  expectCount,
  expectText,
  composer,
  launchBrowser,
  messageItems,
  newPerson,
  openApp,
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

/**
 * Another device of an existing user: a new browser context, logged in through the UI.
 * @param {string} name @param {import('playwright-core').BrowserContextOptions} [options]
 */
async function secondDevice(name, options) {
  const app = await openApp(browser, server, options);
  await app.page.getByLabel('Username').fill(name);
  await app.page.getByLabel('Password').fill('correct horse battery');
  await app.page.getByRole('button', { name: 'Log in' }).click();
  await expectText(app.page.getByRole('status').first(), 'Online');
  return app;
}

/** @param {import('playwright-core').Page} page */
function conversations(page) {
  return page.getByRole('list', { name: 'Conversations' }).getByRole('link');
}

/** @param {import('playwright-core').Page} page */
async function openSettings(page) {
  await page.getByRole('button', { name: 'Conversation settings' }).click();
  return page.getByRole('dialog', { name: 'Conversation settings' });
}

test('mute for an hour, pin and archive; the other device follows; a message brings it back', async () => {
  const ada = await newPerson(browser, server, 'ada');
  const bob = await newPerson(browser, server, 'bob');
  const carol = await newPerson(browser, server, 'carol');
  await startChat(ada.page, 'bob');
  await send(ada.page, 'hi bob');
  const other = await secondDevice('ada');
  await expectCount(conversations(other.page), 1);

  const dialog = await openSettings(ada.page);
  await dialog.getByLabel('For how long').selectOption({ label: '1 hour' });
  await dialog.getByRole('radio', { name: 'Nothing' }).check();
  await expectText(dialog.locator('#notify-until'), /Until \w{3},? \d\d:\d\d/);
  await dialog.getByRole('checkbox', { name: 'Pin to the top of the list' }).check();
  await assertLabelled(ada.page);
  // The other device hears of it live: muted and pinned.
  await other.page.getByRole('link', { name: /^bob, .*muted, pinned$/ }).waitFor();
  await dialog.getByRole('button', { name: 'Close' }).click();

  // Pinned stays on top when another conversation is newer.
  await startChat(ada.page, 'carol');
  await send(ada.page, 'hi carol');
  await expectCount(conversations(other.page), 2);
  await expectText(conversations(other.page).first(), 'bob');

  // Archived: out of the list, behind "Archived (1)", on both devices.
  await ada.page.getByRole('link', { name: /^bob/ }).click();
  const again = await openSettings(ada.page);
  await again.getByRole('checkbox', { name: /^Archive/ }).check();
  await again.getByRole('button', { name: 'Close' }).click();
  await expectCount(conversations(other.page), 1);
  await other.page.getByRole('button', { name: 'Archived (1)' }).click();
  await other.page.getByRole('list', { name: 'Archived conversations' }).getByRole('link', { name: /^bob/ }).waitFor();
  await other.page.getByRole('button', { name: 'Back to all chats' }).click();

  // Muted: a new message leaves it archived. Notified again: the next one brings it back.
  await startChat(bob.page, 'ada');
  await send(bob.page, 'still there?');
  await expectText(ada.page.getByRole('list', { name: 'Messages' }), 'still there?');
  await other.page.getByRole('button', { name: 'Archived (1)' }).waitFor();
  const third = await openSettings(ada.page);
  await third.getByRole('radio', { name: 'All messages' }).check();
  await third.getByRole('button', { name: 'Close' }).click();
  // Stored once the other device shows it: still archived, no longer muted.
  await other.page.getByRole('button', { name: 'Archived (1)' }).click();
  await other.page.getByRole('link', { name: /^bob(, online)?, pinned$/ }).waitFor();
  await other.page.getByRole('button', { name: 'Back to all chats' }).click();
  await send(bob.page, 'hello again');
  await expectCount(conversations(other.page), 2);
  assert.equal(await other.page.getByRole('button', { name: /^Archived/ }).isVisible(), false);
  await expectText(conversations(other.page).first(), 'hello again');

  assert.deepEqual(ada.errors.concat(bob.errors, carol.errors, other.errors), []);
  for (const p of [ada, bob, carol, other]) await p.context.close();
});

const PHONE = {
  viewport: { width: 360, height: 740 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};

test('on a phone: mentions only and archive; only a mention brings it back', async () => {
  const pia = await newPerson(browser, server, 'pia', PHONE);
  const desk = await newPerson(browser, server, 'desk');
  await startChat(desk.page, 'pia');
  await send(desk.page, 'hello pia');

  const page = pia.page;
  await conversations(page).first().tap();
  await page.getByRole('button', { name: 'Conversation settings' }).tap();
  const dialog = page.getByRole('dialog', { name: 'Conversation settings' });
  await dialog.getByRole('radio', { name: 'Only mentions of me' }).tap();
  await expectText(dialog.locator('#notify-until'), 'Until you change it');
  await dialog.getByRole('checkbox', { name: /^Archive/ }).tap();
  await assertLabelled(page);
  await dialog.getByRole('button', { name: 'Close' }).tap();
  await page.getByRole('button', { name: 'Back to conversations' }).tap();
  await page.getByRole('button', { name: 'Archived (1)' }).waitFor();
  await expectCount(conversations(page), 0);

  await send(desk.page, 'a plain message');
  await page.getByRole('button', { name: 'Archived (1)' }).tap();
  await expectText(page.getByRole('list', { name: 'Archived conversations' }), 'a plain message');
  await page.getByRole('button', { name: 'Back to all chats' }).tap();
  await send(desk.page, '@pia this one is for you');
  await expectCount(conversations(page), 1);
  await expectText(conversations(page).first(), 'this one is for you');
  assert.equal(await page.getByRole('button', { name: /^Archived/ }).isVisible(), false);

  assert.deepEqual(pia.errors.concat(desk.errors), []);
  await pia.context.close();
  await desk.context.close();
});

test('block from the conversation settings: the other cannot write; unblock and they can', async () => {
  const ada = await newPerson(browser, server, 'ana');
  const bob = await newPerson(browser, server, 'ben');
  await startChat(ada.page, 'ben');
  await send(ada.page, 'hello ben');
  await startChat(bob.page, 'ana');
  await expectText(bob.page.getByRole('list', { name: 'Messages' }), 'hello ben');

  const dialog = await openSettings(ada.page);
  await dialog.getByRole('button', { name: 'Block ben' }).click();
  await dialog.getByRole('button', { name: 'Unblock ben' }).waitFor();
  await assertLabelled(ada.page);
  await dialog.getByRole('button', { name: 'Close' }).click();
  await expectText(ada.page.locator('.inactive-note'), 'You blocked ben.');
  assert.equal(await composer(ada.page).isVisible(), false);

  await send(bob.page, 'why?');
  await messageItems(bob.page, 'why?').getByRole('img', { name: 'Not sent' }).waitFor();
  assert.equal(await messageItems(ada.page, 'why?').count(), 0);

  const again = await openSettings(ada.page);
  await again.getByRole('button', { name: 'Unblock ben' }).click();
  await again.getByRole('button', { name: 'Block ben' }).waitFor();
  await again.getByRole('button', { name: 'Close' }).click();
  await composer(ada.page).waitFor();
  await send(bob.page, 'friends again');
  await expectText(ada.page.getByRole('list', { name: 'Messages' }), 'friends again');

  assert.deepEqual(ada.errors.concat(bob.errors), []);
  await ada.context.close();
  await bob.context.close();
});
