// Makes the README's screenshots: docs/screenshots/desktop.png (1280x800) and phone.png
// (360x740), from a real server and Debian's Chromium. Run by hand after a UI change:
//   cargo build -p confab && (cd web/tests && npm ci && node screenshots.mjs)

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  api,
  launchBrowser,
  openApp,
  openConversation,
  sessionOf,
  signUp,
  startServer,
} from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, '../../docs/screenshots');
const PHONE = { viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

const server = await startServer();
const browser = await launchBrowser();
try {
  /** @param {string} username @param {string} displayName @param {object} [options] */
  const person = async (username, displayName, options) => {
    const app = await openApp(browser, server, { colorScheme: 'light', ...options });
    await signUp(app.page, username, { displayName });
    const { token, user } = await sessionOf(app.page);
    return { ...app, token, id: user.id };
  };
  const ada = await person('ada', 'Ada Lovelace');
  const grace = await person('grace', 'Grace Hopper', PHONE);
  const alan = await person('alan', 'Alan Turing');
  const tim = await person('tim', 'Tim Berners-Lee');

  let n = 0;
  /** @param {{token: string}} from @param {string} conversation @param {string} body */
  const say = async (from, conversation, body) => {
    n += 1;
    await api(server, from.token, 'POST', `/v1/conversations/${conversation}/messages`, {
      client_msg_id: `shot-${n}`,
      body,
    });
  };
  /** @param {{token: string}} a @param {{id: string}} b */
  const direct = async (a, b) =>
    (await api(server, a.token, 'POST', '/v1/conversations/direct', { user_id: b.id })).json.conversation.id;

  const withAlan = await direct(ada, alan);
  await say(alan, withAlan, 'Did you get a chance to read my notes on computable numbers?');
  await say(ada, withAlan, 'Yes! The part about the machine reading its own table is brilliant.');

  const group = (
    await api(server, ada.token, 'POST', '/v1/groups', {
      title: 'Engine room',
      member_ids: [grace.id, alan.id, tim.id],
    })
  ).json.conversation.id;
  await say(ada, group, 'Welcome, everyone. This is where we plan Friday’s demo.');
  await say(tim, group, 'I can put the results on a web page so everyone can follow along.');
  await say(alan, group, 'I will bring the test tapes.');
  await say(alan, group, 'And a question for the machine that it cannot answer 😉');
  await say(grace, group, 'I will bring a compiler. Nobody believes it works yet.');
  await say(ada, group, 'Perfect. Demo at 10, coffee at 9:30.');
  await say(tim, group, 'See you there!');
  await alan.context.close();
  await tim.context.close();

  const withGrace = await direct(ada, grace);
  await say(grace, withGrace, 'Morning! Are we still on for the review at 3?');
  await say(ada, withGrace, "Yes! I'll bring the diagrams.");
  await say(grace, withGrace, 'Perfect. Also: I found the bug. It was an actual moth, stuck in relay 70.');
  await say(ada, withGrace, 'No way 😄 Did you tape it into the log book?');
  await say(grace, withGrace, 'Of course. "First actual case of bug being found."');
  await say(
    ada,
    withGrace,
    'Sending you my notes now.\nSection G has the Bernoulli numbers: the first program ever written, if you ask me.',
  );

  // Ada on a laptop with the chat with Grace open, Grace typing to her. Grace on her phone,
  // in the group.
  await ada.page.reload();
  await openConversation(ada.page, /^Grace Hopper/);
  await grace.page.reload();
  await openConversation(grace.page, /^Ada Lovelace/);
  await ada.page.getByRole('img', { name: 'Read' }).last().waitFor();
  await grace.page.getByRole('textbox', { name: 'Message' }).pressSequentially('See you at 3', { delay: 30 });
  await ada.page.getByText('Grace Hopper is typing…').waitFor();
  await ada.page.mouse.move(0, 0);
  await ada.page.screenshot({ path: path.join(out, 'desktop.png') });

  await grace.page.getByRole('button', { name: 'Back to conversations' }).tap();
  await openConversation(grace.page, /^Engine room/);
  await grace.page.getByText('Perfect. Demo at 10').waitFor();
  await grace.page.getByRole('textbox', { name: 'Message' }).blur();
  await grace.page.screenshot({ path: path.join(out, 'phone.png') });
  console.log(`wrote ${out}/desktop.png and phone.png`);
} finally {
  await browser.close();
  await server.stop();
}
