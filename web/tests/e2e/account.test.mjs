// The account dialog: the devices logged in, with "Log out everywhere else" (the other
// browser is logged out), a password change (the old password stops working, the new one
// works), privacy switches kept by the server, the blocked users with "Unblock", a download
// of the user's data, and deleting the account (on a phone too). By roles and labels.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { readFile } from 'node:fs/promises';
import {
  api,
  assertLabelled,
  composer,
  eventually,
  expectCount,
  expectText,
  launchBrowser,
  messageWithBody,
  newPerson,
  openApp,
  openConversation,
  send,
  startChat,
  sessionOf,
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

/** @param {import('playwright-core').Page} page @param {string} name @param {string} password */
async function logIn(page, name, password) {
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

test('devices, log out everywhere else, change the password, privacy, unblock', async () => {
  const ada = await newPerson(browser, server, 'ada');
  const bob = await newPerson(browser, server, 'bob');
  const phone = await openApp(browser, server);
  await logIn(phone.page, 'ada', 'correct horse battery');
  await expectText(phone.page.getByRole('status').first(), 'Online');

  // Devices: this one and the phone; logging out everywhere else logs the phone out.
  const page = ada.page;
  await page.getByRole('button', { name: 'Account' }).click();
  const dialog = page.getByRole('dialog', { name: 'Account' });
  const devices = dialog.getByRole('list', { name: 'Devices' }).getByRole('listitem');
  await expectCount(devices, 2);
  await expectText(devices.filter({ hasText: 'This device' }), 'This device');
  await assertLabelled(page);
  await dialog.getByRole('button', { name: 'Log out everywhere else' }).click();
  await expectText(dialog.getByRole('status'), 'Logged out everywhere else.');
  await expectCount(devices, 1);
  await phone.page.getByRole('button', { name: 'Log in' }).waitFor();

  // Password: a wrong current one is refused; the change works from the next login on.
  await dialog.getByLabel('Current password').fill('not my password');
  await dialog.getByLabel(/^New password/).fill('a brand new secret');
  await dialog.getByRole('button', { name: 'Change password' }).click();
  await expectText(dialog.getByRole('alert'), 'That is not your current password.');
  await dialog.getByLabel('Current password').fill('correct horse battery');
  await dialog.getByLabel(/^New password/).fill('a brand new secret');
  await dialog.getByRole('button', { name: 'Change password' }).click();
  await expectText(dialog.getByRole('status'), 'Password changed.');
  await logIn(phone.page, 'ada', 'correct horse battery');
  await expectText(phone.page.getByRole('alert').first(), 'Wrong username or password.');
  await logIn(phone.page, 'ada', 'a brand new secret');
  await expectText(phone.page.getByRole('status').first(), 'Online');
  await dialog.getByRole('button', { name: 'Close' }).click();

  // Privacy: on by default; off is kept by the server.
  await page.getByRole('button', { name: 'Account' }).click();
  const lastSeen = dialog.getByRole('checkbox', { name: 'Show when I was last active' });
  const receipts = dialog.getByRole('checkbox', { name: 'Send read receipts' });
  await eventually(async () => assert.equal(await receipts.isChecked(), true));
  await receipts.uncheck();
  await lastSeen.uncheck();
  await eventually(async () => {
    const { token } = await sessionOf(phone.page);
    const { json } = await api(server, token, 'GET', '/v1/me/privacy');
    assert.deepEqual(json.privacy, { last_seen: false, read_receipts: false });
  });
  await dialog.getByRole('button', { name: 'Close' }).click();

  // Blocked users: bob, blocked from the chat, unblocked from the account.
  await startChat(page, 'bob');
  await send(page, 'hi bob');
  await page.getByRole('button', { name: 'Conversation settings' }).click();
  const settings = page.getByRole('dialog', { name: 'Conversation settings' });
  await settings.getByRole('button', { name: 'Block bob' }).click();
  await settings.getByRole('button', { name: 'Unblock bob' }).waitFor();
  await settings.getByRole('button', { name: 'Close' }).click();
  await page.getByRole('button', { name: 'Account' }).click();
  const blocked = dialog.getByRole('list', { name: 'Blocked users' }).getByRole('listitem');
  await expectCount(blocked, 1);
  await dialog.getByRole('button', { name: 'Unblock bob' }).click();
  await expectCount(blocked, 0);
  await expectText(dialog, 'You have not blocked anyone.');

  assert.deepEqual(ada.errors.concat(bob.errors, phone.errors), []);
  for (const p of [ada, bob, phone]) await p.context.close();
});

const PHONE = {
  viewport: { width: 360, height: 740 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};

for (const [where, options] of /** @type {const} */ ([['desktop', {}], ['phone', PHONE]])) {
  test(`on a ${where}: download my data, then delete the account`, async () => {
    const name = `dee${where.length}`;
    const dee = await newPerson(browser, server, name, options);
    const bob = await newPerson(browser, server, `bob${where.length}`);
    await startChat(bob.page, name);
    await send(bob.page, 'hello dee');
    const page = dee.page;
    await openConversation(page, `bob${where.length}`);
    await send(page, 'my words stay');
    await page.evaluate(() => {
      location.hash = '#/';
    });

    // The download is the export: a JSON file with the conversation and its messages.
    await page.getByRole('button', { name: 'Account' }).click();
    const dialog = page.getByRole('dialog', { name: 'Account' });
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      dialog.getByRole('button', { name: 'Download my data' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'confab-export.json');
    const file = JSON.parse(await readFile(/** @type {string} */ (await download.path()), 'utf8'));
    assert.equal(file.format, 'confab-export-1');
    assert.equal(file.user.username, name);
    const bodies = file.conversations.flatMap((/** @type {any} */ c) => c.messages.map((/** @type {any} */ m) => m.body));
    assert.deepEqual(bodies, ['hello dee', 'my words stay']);
    await expectText(dialog.getByRole('status'), 'Your data was downloaded as confab-export.json.');

    // Deleting asks for the password; a wrong one is refused and nothing happens.
    const deleteForm = dialog.getByLabel('Password to confirm');
    await deleteForm.fill('not my password');
    await dialog.getByRole('button', { name: 'Delete my account' }).click();
    await expectText(dialog.getByRole('alert'), 'That is not your password.');
    await deleteForm.fill('correct horse battery');
    await dialog.getByRole('button', { name: 'Delete my account' }).click();
    await expectText(page.getByRole('alert').first(), 'Your account was deleted.');
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    await logIn(page, name, 'correct horse battery');
    await expectText(page.getByRole('alert').first(), 'Wrong username or password.');

    // Bob still has the messages, from "Deleted user", and can no longer write there.
    await bob.page.reload();
    await bob.page.getByRole('heading', { level: 2, name: 'Deleted user' }).waitFor();
    await messageWithBody(bob.page, 'my words stay').waitFor();
    await expectText(bob.page.getByRole('main'), 'This account was deleted.');
    assert.equal(await composer(bob.page).isVisible(), false);

    assert.deepEqual(dee.errors.concat(bob.errors), []);
    for (const p of [dee, bob]) await p.context.close();
  });
}
