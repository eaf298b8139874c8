// A group of three: create it, talk with sender names, see who is online, add and remove
// members, leave; the list keeps the most recent conversation first.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  expectCount,
  expectText,
  launchBrowser,
  messageItems,
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

test('a group of three', async () => {
  const ada = await newPerson(browser, server, 'ada');
  const bob = await newPerson(browser, server, 'bob');
  const cat = await newPerson(browser, server, 'cat');

  // Ada creates "Crew" with Bob and Cat.
  await ada.page.getByRole('button', { name: 'New group' }).click();
  const dialog = ada.page.getByRole('dialog', { name: 'New group' });
  await dialog.getByLabel('Group name').fill('Crew');
  await dialog.getByLabel('Members').fill('bob, cat');
  await dialog.getByRole('button', { name: 'Create group' }).click();
  await ada.page.getByRole('heading', { level: 2, name: 'Crew' }).waitFor();
  await expectText(ada.page.locator('.chat-head'), '3 members');
  await messageItems(ada.page, 'You created the group “Crew”').waitFor();

  // Bob and Cat see it appear; Bob writes first.
  for (const p of [bob, cat]) {
    await p.page.getByRole('list', { name: 'Conversations' }).getByRole('link', { name: /^Crew, group/ }).waitFor();
  }
  await openConversation(bob.page, /^Crew/);
  await messageItems(bob.page, 'ada created the group “Crew”').waitFor();
  await send(bob.page, 'hi crew');
  await openConversation(cat.page, /^Crew/);
  const fromBob = messageItems(cat.page, 'hi crew');
  await expectCount(fromBob, 1);
  // Sender names in groups, with the @username no one else can take.
  assert.equal(await fromBob.locator('.sender').textContent(), 'bob @bob');
  await send(cat.page, 'hello both');
  await expectCount(messageItems(ada.page, 'hello both'), 1);
  await expectText(messageItems(ada.page, 'hello both').locator('.sender'), 'cat');
  // Bob's message has been read by the two others.
  await messageItems(bob.page, 'hi crew').getByRole('img', { name: 'Read by 2 of 2' }).waitFor();

  // Group info: members with presence (asked over HTTP), admin controls.
  await ada.page.getByRole('button', { name: 'Group info' }).click();
  const info = ada.page.getByRole('dialog', { name: 'Group info' });
  const members = info.getByRole('list', { name: '3 members' });
  await expectCount(members.getByRole('listitem'), 3);
  await expectText(members.getByRole('listitem').filter({ hasText: 'bob' }), 'online');
  await expectText(members.getByRole('listitem').filter({ hasText: 'ada' }), 'Admin');

  // Ada removes Cat: Cat sees it and can no longer write.
  await info.getByRole('button', { name: 'Remove cat' }).click();
  await expectCount(info.getByRole('list', { name: '2 members' }).getByRole('listitem'), 2);
  await messageItems(cat.page, 'ada removed you').waitFor();
  await expectText(cat.page.locator('.inactive-note'), 'no longer a member');
  assert.equal(await cat.page.getByRole('textbox', { name: 'Message' }).isVisible(), false);

  // And adds her back.
  await info.getByLabel('Add member by username').fill('cat');
  await info.getByRole('button', { name: 'Add' }).click();
  await expectCount(info.getByRole('list', { name: '3 members' }).getByRole('listitem'), 3);
  await messageItems(cat.page, 'ada added you').waitFor();
  await cat.page.getByRole('textbox', { name: 'Message' }).waitFor();
  await info.getByRole('button', { name: 'Close' }).click();

  // Bob leaves.
  await bob.page.getByRole('button', { name: 'Group info' }).click();
  const bobInfo = bob.page.getByRole('dialog', { name: 'Group info' });
  assert.equal(await bobInfo.getByRole('button', { name: /^Remove/ }).count(), 0, 'members cannot remove');
  await bobInfo.getByRole('button', { name: 'Leave group' }).click();
  await bobInfo.getByRole('button', { name: 'Leave', exact: true }).click();
  await bobInfo.waitFor({ state: 'detached' });
  await messageItems(ada.page, 'bob left').waitFor();
  await messageItems(bob.page, 'You left').waitFor();
  await expectText(bob.page.locator('.inactive-note'), 'no longer a member');

  // Most recent first: a new direct chat with a message goes on top of Ada's list.
  await startChat(ada.page, 'cat');
  await send(ada.page, 'just us');
  const first = ada.page.getByRole('list', { name: 'Conversations' }).getByRole('link').first();
  await expectText(first, 'just us');
  await send(cat.page, 'back in the group');
  await expectText(ada.page.getByRole('list', { name: 'Conversations' }).getByRole('link').first(), 'back in the group');

  assert.deepEqual([...ada.errors, ...bob.errors, ...cat.errors], []);
  for (const p of [ada, bob, cat]) await p.context.close();
});
