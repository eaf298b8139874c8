// Staying in sync: a reload keeps history and sends nothing twice; a message written
// offline waits in the outbox and is delivered once; a lost ack is resent with the same
// client_msg_id; with the server down the app still opens (service worker) and the outbox
// survives the reload.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  composer,
  eventually,
  expectCount,
  expectText,
  launchBrowser,
  messageItems,
  newPerson,
  openConversation,
  openConversationId,
  send,
  sessionOf,
  startChat,
  startServer,
  storedMessages,
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
 * Ada and Bob in a direct chat, both with it open.
 * @param {string} a @param {string} b
 */
async function pair(a, b) {
  const ada = await newPerson(browser, server, a);
  const bob = await newPerson(browser, server, b);
  await startChat(ada.page, b);
  await send(ada.page, `hello ${b}`);
  await openConversation(bob.page, new RegExp(`^${a}`));
  await expectCount(messageItems(bob.page, `hello ${b}`), 1);
  const id = await openConversationId(ada.page);
  return { ada, bob, id };
}

test('a reload keeps the history and sends nothing twice', async () => {
  const { ada, bob, id } = await pair('ada', 'bob');
  for (const text of ['one', 'two', 'three']) await send(ada.page, `msg ${text}`);
  for (const text of ['one', 'two', 'three']) await expectCount(messageItems(bob.page, `msg ${text}`), 1);
  await send(bob.page, 'from bob before the reload');
  await expectCount(messageItems(ada.page, 'from bob before the reload'), 1);

  await ada.page.reload();
  // Same conversation (the address keeps it), same history, each message once.
  await ada.page.getByRole('heading', { level: 2, name: 'bob' }).waitFor();
  await expectText(ada.page.getByRole('status'), 'Online');
  for (const text of ['hello bob', 'msg one', 'msg two', 'msg three', 'from bob before the reload']) {
    await expectCount(messageItems(ada.page, text), 1);
  }
  await send(bob.page, 'after the reload');
  await expectCount(messageItems(ada.page, 'after the reload'), 1);
  // Give a duplicate every chance to show up, then count on both sides and in the store.
  await new Promise((r) => setTimeout(r, 1500));
  for (const text of ['msg one', 'msg two', 'msg three']) {
    await expectCount(messageItems(bob.page, text), 1);
    await expectCount(messageItems(ada.page, text), 1);
  }
  const { token } = await sessionOf(bob.page);
  const bodies = (await storedMessages(server, token, id)).map((m) => m.body);
  assert.deepEqual(bodies, ['hello bob', 'msg one', 'msg two', 'msg three', 'from bob before the reload', 'after the reload']);
  await ada.context.close();
  await bob.context.close();
});

test('written offline, delivered once when back', async () => {
  const { ada, bob, id } = await pair('ann', 'ben');
  await ada.context.setOffline(true);
  await expectText(ada.page.getByRole('status'), 'Offline');
  await send(ada.page, 'written while offline');
  const mine = messageItems(ada.page, 'written while offline');
  await mine.getByRole('img', { name: 'Sending' }).waitFor();
  await expectText(ada.page.locator('.offline-note'), '1 message will be sent');
  await new Promise((r) => setTimeout(r, 1000));
  await expectCount(messageItems(bob.page, 'written while offline'), 0);

  await ada.context.setOffline(false);
  await expectText(ada.page.getByRole('status'), 'Online');
  await expectCount(messageItems(bob.page, 'written while offline'), 1);
  await mine.getByRole('img', { name: 'Read' }).waitFor();
  await new Promise((r) => setTimeout(r, 1000));
  await expectCount(messageItems(bob.page, 'written while offline'), 1);
  const { token } = await sessionOf(bob.page);
  const stored = (await storedMessages(server, token, id)).filter((m) => m.body === 'written while offline');
  assert.equal(stored.length, 1);
  await ada.context.close();
  await bob.context.close();
});

test('an ack lost with the connection: resent with the same client_msg_id, stored once', async () => {
  const { ada, bob, id } = await pair('amy', 'bea');
  // From now on Ada's WebSocket goes through this relay. It swallows the first ack (and
  // the echo of the message) and cuts the connection, as a network failure would.
  /** @type {string[]} */
  const sentIds = [];
  let cut = false;
  await ada.context.routeWebSocket(/\/v1\/ws$/, (ws) => {
    const upstream = ws.connectToServer();
    ws.onMessage((m) => {
      const f = JSON.parse(String(m));
      if (f.type === 'send') sentIds.push(f.client_msg_id);
      upstream.send(m);
    });
    upstream.onMessage((m) => {
      const f = JSON.parse(String(m));
      const ours = f.type === 'ack' || (f.type === 'message' && f.message.body === 'ack gets lost');
      if (!cut && ours) {
        if (f.type === 'ack') {
          cut = true;
          ws.close({ code: 4000, reason: 'relay cut' });
          upstream.close();
        }
        return;
      }
      ws.send(m);
    });
  });
  // New sockets only: reconnect Ada through the relay.
  await ada.page.reload();
  await expectText(ada.page.getByRole('status'), 'Online');
  await send(ada.page, 'ack gets lost');
  await eventually(() => assert.ok(cut, 'the relay saw the ack'));
  await expectCount(messageItems(bob.page, 'ack gets lost'), 1);
  await messageItems(ada.page, 'ack gets lost').getByRole('img', { name: /^(Sent|Delivered|Read)$/ }).waitFor();
  assert.ok(sentIds.length >= 2, `sent ${sentIds.length} times`);
  assert.ok(sentIds.every((x) => x === sentIds[0]), `one client_msg_id: ${sentIds}`);
  await new Promise((r) => setTimeout(r, 1000));
  await expectCount(messageItems(ada.page, 'ack gets lost'), 1);
  await expectCount(messageItems(bob.page, 'ack gets lost'), 1);
  const { token } = await sessionOf(bob.page);
  const stored = (await storedMessages(server, token, id)).filter((m) => m.body === 'ack gets lost');
  assert.equal(stored.length, 1);
  await ada.context.close();
  await bob.context.close();
});

test('server down: the app opens from the service worker and the outbox survives the reload', async () => {
  const { ada, bob, id } = await pair('abe', 'bud');
  // The service worker controls the page once it has activated.
  await ada.page.evaluate(async () => {
    await navigator.serviceWorker.ready;
  });
  await ada.page.reload();
  await eventually(async () =>
    assert.ok(await ada.page.evaluate(() => !!navigator.serviceWorker.controller), 'controlled'),
  );

  await server.kill();
  await expectText(ada.page.getByRole('status'), /Offline|Connecting/);
  await send(ada.page, 'queued while the server is down');
  await messageItems(ada.page, 'queued while the server is down').getByRole('img', { name: 'Sending' }).waitFor();

  // Reload with no server at all: the shell comes from the cache, the outbox from storage.
  await ada.page.reload();
  await ada.page.getByRole('heading', { level: 1, name: 'Confab' }).waitFor();
  await ada.page.getByRole('list', { name: 'Conversations' }).getByRole('link', { name: /^bud/ }).waitFor();
  await messageItems(ada.page, 'queued while the server is down').getByRole('img', { name: 'Sending' }).waitFor();
  await expectText(ada.page.getByRole('status'), /Offline|Connecting/);

  await server.restart();
  await expectText(ada.page.getByRole('status'), 'Online');
  await expectCount(messageItems(bob.page, 'queued while the server is down'), 1);
  await messageItems(ada.page, 'queued while the server is down').getByRole('img', { name: /^(Sent|Delivered|Read)$/ }).waitFor();
  await expectCount(messageItems(ada.page, 'queued while the server is down'), 1);
  const { token } = await sessionOf(bob.page);
  const stored = (await storedMessages(server, token, id)).filter((m) => m.body === 'queued while the server is down');
  assert.equal(stored.length, 1);
  assert.equal(await composer(ada.page).inputValue(), '');
  await ada.context.close();
  await bob.context.close();
});
