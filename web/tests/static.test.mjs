// Checks of web/app that need no browser: the JSDoc types hold (`tsc --checkJs --strict`,
// nothing emitted), the service worker precaches every module and index.html preloads
// them, and the page has no inline script or style for the CSP to refuse.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const app = path.resolve(here, '../app');
const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');

for (const project of ['tsconfig.app.json', 'tsconfig.sw.json']) {
  test(`JSDoc types check: ${project}`, () => {
    const run = spawnSync(process.execPath, [tsc, '-p', path.join(here, project)], { encoding: 'utf8' });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  });
}

/** Every module under web/app/js, as the URL path the server serves it at. */
function modules() {
  return readdirSync(path.join(app, 'js'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.js'))
    .map((f) => `/js/${f.split(path.sep).join('/')}`)
    .sort();
}

test('the service worker precaches the whole shell; index.html preloads every module', () => {
  const sw = readFileSync(path.join(app, 'sw.js'), 'utf8');
  const shell = [...sw.matchAll(/'(\/[^']*)',?\n/g)].map((m) => m[1]);
  for (const m of modules()) assert.ok(shell.includes(m), `sw.js SHELL lacks ${m}`);
  for (const f of ['/', '/app.css', '/manifest.webmanifest']) assert.ok(shell.includes(f), `sw.js SHELL lacks ${f}`);
  const html = readFileSync(path.join(app, 'index.html'), 'utf8');
  for (const m of modules().filter((m) => m !== '/js/main.js')) {
    assert.ok(html.includes(`<link rel="modulepreload" href="${m}">`), `index.html does not preload ${m}`);
  }
});

test('index.html has no inline script, style or event handler', () => {
  const html = readFileSync(path.join(app, 'index.html'), 'utf8');
  for (const script of html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)) {
    assert.match(script[0], /\bsrc="/, 'scripts come from files');
    assert.equal(script[1].trim(), '', 'no inline script');
  }
  assert.doesNotMatch(html, /<style\b|\sstyle="|\son[a-z]+=/i);
});
