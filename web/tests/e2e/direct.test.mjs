// Two people, two browser contexts: sign up through the UI, start a direct chat, write both
// ways, see each other typing, the read tick, presence, unread badges; keyboard only.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  assertLabelled,
  composer,
  eventually,
  expectCount,
  expectText,
  launchBrowser,
  messageItems,
  newPerson,
  openApp,
  openConversation,
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

test('two people chat: messages both ways, typing, read tick, presence, unread', async () => {
  const ada = await newPerson(browser, server, 'ada');
  const bob = await newPerson(browser, server, 'bob');
  await assertLabelled(ada.page);

  // Ada starts the chat by username; Bob is online, and her header says so.
  await startChat(ada.page, 'bob');
  await expectText(ada.page.locator('.chat-head'), 'online');
  // The header names the @username too: a display name can be anyone's.
  await expectText(ada.page.locator('.chat-head'), '@bob');

  await send(ada.page, 'Hi Bob!');
  const sent = messageItems(ada.page, 'Hi Bob!');
  await expectCount(sent, 1);
  await sent.getByRole('img', { name: /^(Sent|Delivered|Read)$/ }).waitFor();

  // Bob gets a new conversation with an unread badge and a preview, not yet opened.
  const conversations = bob.page.getByRole('list', { name: 'Conversations' });
  const fromAda = conversations.getByRole('link', { name: /ada.*1 unread/ });
  await fromAda.waitFor();
  await expectText(conversations, 'Hi Bob!');
  await fromAda.click();
  await expectCount(messageItems(bob.page, 'Hi Bob!'), 1);
  await expectText(bob.page.locator('.chat-head'), 'online');

  // Bob has the chat on screen, so Ada's message turns "Read".
  await sent.getByRole('img', { name: 'Read' }).waitFor();
  // And the unread badge is gone on Bob's side.
  await conversations.getByRole('link', { name: /^ada(, online)?$/ }).waitFor();

  // Bob types: Ada sees it, then his message (with a Shift+Enter line break).
  await composer(bob.page).pressSequentially('Hello Ada', { delay: 20 });
  await ada.page.getByText('bob is typing…').waitFor();
  // The list shows it too.
  await ada.page.getByRole('list', { name: 'Conversations' }).getByText('typing…').waitFor();
  await composer(bob.page).press('Shift+Enter');
  await composer(bob.page).pressSequentially('second line');
  await composer(bob.page).press('Enter');
  const reply = messageItems(ada.page, 'Hello Ada');
  await expectCount(reply, 1);
  assert.match(await reply.locator('.body').innerText(), /^Hello Ada\nsecond line$/);
  // The message ends the typing display.
  await ada.page.getByText('bob is typing…').waitFor({ state: 'detached' });
  // The composer is empty again after sending.
  assert.equal(await composer(bob.page).inputValue(), '');
  await messageItems(bob.page, 'Hello Ada').getByRole('img', { name: 'Read' }).waitFor();

  // Presence: when Ada logs out, Bob sees her go offline.
  await ada.page.getByRole('button', { name: 'Log out' }).click();
  await ada.page.getByRole('button', { name: 'Log in' }).waitFor();
  await expectText(bob.page.locator('.chat-head'), /last seen/);

  assert.deepEqual(ada.errors.concat(bob.errors), []);
  await ada.context.close();
  await bob.context.close();
});

test('keyboard only: sign up, start a chat, send', async () => {
  const cat = await newPerson(browser, server, 'cat');
  const app = await openApp(browser, server);
  const page = app.page;
  const k = page.keyboard;
  // The username field has focus on arrival; walk to "Create an account".
  await page.getByLabel('Username').waitFor();
  await k.press('Tab'); // password
  await k.press('Tab'); // Log in
  await k.press('Tab'); // Create an account
  await k.press('Enter');
  await k.type('dan');
  await k.press('Tab'); // display name
  await k.type('Dan Keys');
  await k.press('Tab'); // password
  await k.type('correct horse battery');
  await k.press('Enter');
  await expectText(page.getByRole('status'), 'Online');
  await assertLabelled(page);

  // Tab from the top of the page to "New chat".
  await page.locator('body').focus();
  let focused = '';
  for (let i = 0; i < 10 && focused !== 'New chat'; i++) {
    await k.press('Tab');
    focused = await page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? '');
  }
  assert.equal(focused, 'New chat');
  await k.press('Enter');
  await page.getByRole('dialog', { name: 'New chat' }).waitFor();
  await assertLabelled(page);
  await k.type('cat');
  await k.press('Enter');
  await page.getByRole('heading', { level: 2, name: 'cat' }).waitFor();
  // The message box has focus in a new chat.
  await eventually(async () =>
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'composer-text'),
  );
  await k.type('typed without a mouse');
  await k.press('Enter');
  await openConversation(cat.page, /Dan Keys/);
  await expectCount(messageItems(cat.page, 'typed without a mouse'), 1);

  // Escape closes a dialog and focus can reach the group dialog too.
  await page.getByRole('button', { name: 'New group' }).focus();
  await k.press('Enter');
  await page.getByRole('dialog', { name: 'New group' }).waitFor();
  await assertLabelled(page);
  await k.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });

  assert.deepEqual(app.errors.concat(cat.errors), []);
  await app.context.close();
  await cat.context.close();
});
