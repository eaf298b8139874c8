// Messages that change, in the web client: react, reply, edit, mention with the composer's
// suggestions, delete for everyone and for me; each seen by the other person live. On a
// desktop and on a phone, by roles and labels.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  composer,
  expectCount,
  expectText,
  launchBrowser,
  messageItems,
  messageWithBody,
  newPerson,
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

/**
 * Opens the actions of the message whose text is `body` and picks `item`.
 * @param {import('playwright-core').Page} page @param {string} body @param {string} item
 * @param {boolean} [touch]
 */
async function act(page, body, item, touch = false) {
  const row = messageWithBody(page, body);
  const open = row.getByRole('button', { name: 'Message actions' });
  const choose = row.getByRole('menu', { name: 'Message actions' }).getByRole('menuitem', { name: item });
  if (touch) {
    await open.tap();
    await choose.tap();
  } else {
    await open.click();
    await choose.click();
  }
}

test('react, reply, edit, mention and delete, seen live by the other person', async () => {
  const ada = await newPerson(browser, server, 'ada');
  const bob = await newPerson(browser, server, 'bob');
  await startChat(ada.page, 'bob');
  await send(ada.page, 'first, to start');
  await openConversation(bob.page, /^ada/);
  await send(bob.page, 'Lunch at noon?');
  await expectCount(messageItems(ada.page, 'Lunch at noon?'), 1);

  // A reaction: bob sees it under his message, with who reacted.
  await act(ada.page, 'Lunch at noon?', 'React with 👍');
  const thumbs = messageItems(bob.page, 'Lunch at noon?').getByRole('button', { name: /^👍 1: ada$/ });
  await thumbs.waitFor();
  assert.equal(await thumbs.getAttribute('aria-pressed'), 'false');
  const mine = messageWithBody(ada.page, 'Lunch at noon?').getByRole('button', { name: /^👍 1: you$/ });
  assert.equal(await mine.getAttribute('aria-pressed'), 'true');

  // A reply quotes the message it answers.
  await act(ada.page, 'Lunch at noon?', 'Reply');
  await expectText(ada.page.locator('.composer-banner'), 'Replying to bob: Lunch at noon?');
  await send(ada.page, 'Yes, see you there');
  const reply = messageItems(bob.page, 'Yes, see you there');
  await expectCount(reply, 1);
  await expectText(reply.locator('.quote'), 'Lunch at noon?');

  // An edit: the composer holds the text; both see the new one, marked edited, and the
  // quote of it follows.
  await act(bob.page, 'Lunch at noon?', 'Edit');
  await expectText(bob.page.locator('.composer-banner'), 'Editing your message');
  assert.equal(await composer(bob.page).inputValue(), 'Lunch at noon?');
  await composer(bob.page).fill('Lunch at one?');
  await composer(bob.page).press('Enter');
  const edited = messageWithBody(ada.page, 'Lunch at one?');
  await expectCount(edited, 1);
  await expectText(edited.locator('.meta'), 'edited');
  await expectText(messageItems(ada.page, 'Yes, see you there').locator('.quote'), 'Lunch at one?');
  assert.equal(await composer(bob.page).inputValue(), '', 'the composer is free again');

  // A mention, picked from the suggestions: highlighted for bob as his.
  await composer(ada.page).pressSequentially('thanks @b');
  const suggestions = ada.page.getByRole('listbox', { name: 'Mention someone' });
  await suggestions.getByRole('option', { name: /bob @bob/ }).waitFor();
  await composer(ada.page).press('Enter');
  assert.equal(await composer(ada.page).inputValue(), 'thanks @bob ');
  await composer(ada.page).pressSequentially('for lunch');
  await composer(ada.page).press('Enter');
  const mention = messageItems(bob.page, 'thanks @bob for lunch');
  await expectCount(mention, 1);
  await expectText(mention.locator('.mention.me'), '@bob');

  // Delete for everyone: a tombstone on both sides.
  await act(ada.page, 'Yes, see you there', 'Delete…');
  const dialog = ada.page.getByRole('dialog', { name: 'Delete message?' });
  await dialog.getByRole('button', { name: 'Delete for everyone' }).click();
  await expectCount(messageItems(bob.page, 'Yes, see you there'), 0);
  await expectCount(messageItems(bob.page, 'This message was deleted'), 1);
  await expectCount(messageItems(ada.page, 'This message was deleted'), 1);

  // Delete for me: gone for bob only. Another's message offers no "for everyone".
  await act(bob.page, 'thanks @bob for lunch', 'Delete…');
  const mineOnly = bob.page.getByRole('dialog', { name: 'Delete message?' });
  assert.equal(await mineOnly.getByRole('button', { name: 'Delete for everyone' }).count(), 0);
  await mineOnly.getByRole('button', { name: 'Delete for me' }).click();
  await expectCount(messageItems(bob.page, 'thanks @bob for lunch'), 0);
  await ada.page.waitForTimeout(300);
  await expectCount(messageItems(ada.page, 'thanks @bob for lunch'), 1);

  // Taking the reaction back.
  await messageWithBody(ada.page, 'Lunch at one?').getByRole('button', { name: /^👍 1: you$/ }).click();
  await expectCount(messageWithBody(bob.page, 'Lunch at one?').getByRole('button', { name: /^👍/ }), 0);

  // After a reload, history shows the same: the edit, the tombstone, no hidden message.
  await bob.page.reload();
  await openConversation(bob.page, /^ada/);
  await expectCount(messageItems(bob.page, 'Lunch at one?'), 1);
  await expectCount(messageItems(bob.page, 'This message was deleted'), 1);
  await expectCount(messageItems(bob.page, 'thanks @bob for lunch'), 0);

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

test('on a phone: react, edit and delete by touch, and the menu fits the screen', async () => {
  const pia = await newPerson(browser, server, 'pia', PHONE);
  const desk = await newPerson(browser, server, 'desk');
  await startChat(desk.page, 'pia');
  await send(desk.page, 'How was the trip?');
  const page = pia.page;
  await page.getByRole('list', { name: 'Conversations' }).getByRole('link', { name: /^desk/ }).tap();
  await expectCount(messageItems(page, 'How was the trip?'), 1);

  await act(page, 'How was the trip?', 'React with ❤️', true);
  await messageItems(desk.page, 'How was the trip?').getByRole('button', { name: /^❤️ 1: pia$/ }).waitFor();

  await composer(page).tap();
  await send(page, 'Grate, thanks');
  await expectCount(messageItems(desk.page, 'Grate, thanks'), 1);
  const row = messageWithBody(page, 'Grate, thanks');
  await row.getByRole('button', { name: 'Message actions' }).tap();
  const menu = row.getByRole('menu', { name: 'Message actions' });
  const box = await menu.boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= 360, `menu at ${JSON.stringify(box)}`);
  await menu.getByRole('menuitem', { name: 'Edit' }).tap();
  await composer(page).fill('Great, thanks');
  await page.getByRole('button', { name: 'Send' }).tap();
  await expectText(messageItems(desk.page, 'Great, thanks').locator('.meta'), 'edited');

  await act(page, 'Great, thanks', 'Delete…', true);
  await page.getByRole('dialog', { name: 'Delete message?' }).getByRole('button', { name: 'Delete for everyone' }).tap();
  await expectCount(messageItems(desk.page, 'This message was deleted'), 1);

  assert.deepEqual(pia.errors.concat(desk.errors), []);
  await pia.context.close();
  await desk.context.close();
});
