// Shared pieces of the browser tests: start a real `confab serve` on a free loopback port
// with a fresh data directory, launch Debian's Chromium through playwright-core, sign people
// up through the UI, and wait for things the way a person would see them.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '../..');
/** The server binary; scripts/test builds it first. */
export const BIN = process.env.WEB_TESTS_SERVER_BIN ?? path.join(ROOT, 'target/debug/confab');
/** Debian's Chromium: no browser is downloaded. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** How long a person would wait for something to show up. */
export const WAIT_MS = 15_000;

/** Fast password hashing, no rate limits in the way, quick presence changes. */
const SERVER_ENV = {
  CONFAB_PASSWORD_HASH_MEMORY_KIB: '64',
  CONFAB_PASSWORD_HASH_ITERATIONS: '1',
  CONFAB_AUTH_RATE_PER_MIN: '100000',
  CONFAB_SEND_RATE_PER_SEC: '10000',
  CONFAB_SEND_BURST: '10000',
  CONFAB_HEARTBEAT_INTERVAL_MS: '1000',
  CONFAB_PRESENCE_TIMEOUT_MS: '4000',
  CONFAB_LOG_FORMAT: 'json',
  CONFAB_LOG: 'info',
};

/**
 * @typedef {{url: string, listen: string, dataDir: string, stop: () => Promise<void>,
 *   restart: () => Promise<void>, kill: () => Promise<void>, logs: string[]}} Server
 */

/**
 * Spawns `confab serve` and resolves once it listens.
 * @param {{listen?: string, dataDir?: string}} [options]
 * @returns {Promise<Server>}
 */
export async function startServer(options = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`${BIN} is missing: build it first (cargo build -p confab)`);
  }
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'confab-web-')));
  /** @type {string[]} */
  const logs = [];
  let listen = options.listen ?? '127.0.0.1:0';
  /** @type {import('node:child_process').ChildProcess} */
  let child;

  const boot = () =>
    new Promise((resolve, reject) => {
      child = spawn(BIN, ['serve', '--listen', listen, '--data-dir', dataDir], {
        env: { ...process.env, ...SERVER_ENV },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const timer = setTimeout(() => reject(new Error(`confab did not start:\n${logs.join('\n')}`)), 20_000);
      let buffer = '';
      /** @param {Buffer} chunk */
      const onData = (chunk) => {
        buffer += chunk.toString();
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          logs.push(line);
          try {
            const entry = JSON.parse(line);
            const addr = entry.fields?.addr;
            if (entry.fields?.message === 'confab is serving' && addr) {
              clearTimeout(timer);
              listen = addr;
              resolve(undefined);
            }
          } catch {
            // Not a JSON log line.
          }
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`confab exited with ${code}:\n${logs.join('\n')}`));
      });
    });

  /** @param {NodeJS.Signals} signal */
  const halt = async (signal) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  await boot();
  const server = {
    get url() {
      return `http://${listen}`;
    },
    get listen() {
      return listen;
    },
    dataDir,
    logs,
    /** Stops the server for good and deletes its data. */
    async stop() {
      await halt('SIGTERM');
      await rm(dataDir, { recursive: true, force: true });
    },
    /** Kills the server, keeping its data and port. */
    async kill() {
      await halt('SIGKILL');
    },
    /** Starts it again on the same port and data. */
    async restart() {
      await halt('SIGTERM');
      await boot();
    },
  };
  return server;
}

/** @returns {Promise<import('playwright-core').Browser>} */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not at ${CHROMIUM}. Install Debian's package: apt-get install -y chromium`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * @typedef {{context: import('playwright-core').BrowserContext, page: import('playwright-core').Page,
 *   name: string, dialogs: string[], errors: string[]}} Person
 */

/**
 * Opens the app in a new browser context (its own storage, like another device or person).
 * @param {import('playwright-core').Browser} browser
 * @param {Server} server
 * @param {import('playwright-core').BrowserContextOptions} [options]
 * @returns {Promise<Omit<Person, 'name'>>}
 */
export async function openApp(browser, server, options = {}) {
  const context = await browser.newContext({
    baseURL: server.url,
    viewport: { width: 1280, height: 800 },
    locale: 'en-US',
    timezoneId: 'UTC',
    ...options,
  });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  /** @type {string[]} */
  const dialogs = [];
  /** @type {string[]} */
  const errors = [];
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (msg) => {
    // Failed loads while offline are expected; anything else red is a bug.
    if (msg.type() === 'error' && !/ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED|Failed to load resource|WebSocket connection/.test(msg.text())) {
      errors.push(msg.text());
    }
  });
  await page.goto('/');
  return { context, page, dialogs, errors };
}

/**
 * Signs up through the UI (and so logs in), then waits for the live connection.
 * @param {import('playwright-core').Page} page @param {string} username
 * @param {{displayName?: string, password?: string}} [options]
 */
export async function signUp(page, username, { displayName, password = 'correct horse battery' } = {}) {
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Username').fill(username);
  if (displayName) await page.getByLabel('Display name').fill(displayName);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await expectText(page.getByRole('status').first(), 'Online');
}

/**
 * A new person: a browser context, signed up.
 * @param {import('playwright-core').Browser} browser @param {Server} server @param {string} name
 * @param {import('playwright-core').BrowserContextOptions} [options]
 * @returns {Promise<Person>}
 */
export async function newPerson(browser, server, name, options) {
  const app = await openApp(browser, server, options);
  await signUp(app.page, name);
  return { ...app, name };
}

/**
 * Starts a direct chat with `username` through the "New chat" dialog.
 * @param {import('playwright-core').Page} page @param {string} username
 */
export async function startChat(page, username) {
  await page.getByRole('button', { name: 'New chat' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'New chat' });
  await dialog.getByLabel('Username').fill(username);
  await dialog.getByRole('button', { name: 'Start chat' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.getByRole('heading', { level: 2, name: username }).waitFor();
}

/** @param {import('playwright-core').Page} page */
export function composer(page) {
  return page.getByRole('textbox', { name: 'Message' });
}

/** @param {import('playwright-core').Page} page @param {string} text */
export async function send(page, text) {
  await composer(page).fill(text);
  await composer(page).press('Enter');
}

/** The message list's items holding `text`. @param {import('playwright-core').Page} page @param {string | RegExp} text */
export function messageItems(page, text) {
  return page.getByRole('list', { name: 'Messages' }).getByRole('listitem').filter({ hasText: text });
}

/** The message whose body is exactly `body`. @param {import('playwright-core').Page} page @param {string} body */
export function messageWithBody(page, body) {
  const exact = new RegExp(`^${body.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return page
    .getByRole('list', { name: 'Messages' })
    .getByRole('listitem')
    .filter({ has: page.locator('.body', { hasText: exact }) });
}

/** Opens a conversation from the list by its name. @param {import('playwright-core').Page} page @param {string | RegExp} name */
export async function openConversation(page, name) {
  await page.getByRole('list', { name: 'Conversations' }).getByRole('link', { name }).click();
}

/**
 * Polls until `check` passes (an assertion that throws until it holds).
 * @param {() => Promise<void> | void} check @param {number} [timeout]
 */
export async function eventually(check, timeout = WAIT_MS) {
  const end = Date.now() + timeout;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Waits until the locator's text matches.
 * @param {import('playwright-core').Locator} locator @param {string | RegExp} expected
 */
export async function expectText(locator, expected) {
  await eventually(async () => {
    const text = (await locator.textContent({ timeout: 1000 })) ?? '';
    if (typeof expected === 'string') assert.ok(text.includes(expected), `expected "${expected}" in "${text}"`);
    else assert.match(text, expected);
  });
}

/**
 * Waits until the locator matches exactly `n` elements.
 * @param {import('playwright-core').Locator} locator @param {number} n
 */
export async function expectCount(locator, n) {
  await eventually(async () => assert.equal(await locator.count(), n));
}

/** Checks every form field has a label and every button a name, on what is shown now. @param {import('playwright-core').Page} page */
export async function assertLabelled(page) {
  const problems = await page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('input, textarea, select')) {
      const labelled = /** @type {HTMLInputElement} */ (el).labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!labelled) bad.push(`field without a label: ${el.outerHTML.slice(0, 80)}`);
    }
    for (const el of document.querySelectorAll('button, a[href]')) {
      const name = (el.getAttribute('aria-label') ?? el.textContent ?? '').trim();
      if (!name) bad.push(`control without a name: ${el.outerHTML.slice(0, 80)}`);
    }
    return bad;
  });
  assert.deepEqual(problems, []);
}

/** Reads the signed-in session the app keeps, for API calls a test makes itself. @param {import('playwright-core').Page} page */
export async function sessionOf(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem('confab.session') ?? 'null'));
}

/**
 * Calls the HTTP API directly (to seed data or check what the server stored).
 * @param {Server} server @param {string} token @param {string} method @param {string} path @param {unknown} [body]
 */
export async function api(server, token, method, path, body) {
  const answer = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await answer.text();
  return { status: answer.status, headers: answer.headers, json: text ? JSON.parse(text) : null };
}

/** Messages the server stored in a conversation (up to 200, oldest first). @param {Server} server @param {string} token @param {string} id */
export async function storedMessages(server, token, id) {
  const { json } = await api(server, token, 'GET', `/v1/conversations/${id}/messages?limit=200`);
  return /** @type {{body: string, client_msg_id: string, sender_id: string, kind: string}[]} */ (json.messages);
}

/** The open conversation's id, from the address. @param {import('playwright-core').Page} page */
export async function openConversationId(page) {
  const m = /#\/c\/(\d+)/.exec(page.url());
  assert.ok(m, `no conversation open at ${page.url()}`);
  return m[1];
}
