// Entry point: shows the sign-in screen or the app, routes #/, #/c/<id> and
// #/c/<id>/m/<seq> (a message found by search), and registers
// the service worker that lets the app open offline.

import { startPush } from './push.js';
import { Store, loadSession, saveSession } from './store.js';
import { Sync } from './sync.js';
import { renderAuth } from './views/auth.js';
import { Shell } from './views/shell.js';

/** @typedef {import('./api.js').Login} Session */

const root = /** @type {HTMLElement} */ (document.getElementById('app'));

/** @type {{store: Store, sync: Sync, shell: Shell} | null} */
let running = null;

/**
 * The conversation in the address (#/c/<id>, or #/c/<id>/m/<seq> at a message), or null
 * for the list.
 * @returns {[string | null, number | null]}
 */
function route() {
  const m = /^#\/c\/(\d+)(?:\/m\/(\d+))?$/.exec(location.hash);
  return m ? [m[1], m[2] ? Number(m[2]) : null] : [null, null];
}

/** @param {string} [notice] shown on the sign-in screen */
function signedOut(notice) {
  running = null;
  document.title = 'Confab';
  renderAuth(root, {
    notice,
    onSession: (session) => {
      saveSession(session);
      signedIn(session);
    },
  });
}

/** @param {Session} session */
function signedIn(session) {
  const store = new Store(session);
  const sync = new Sync(store, {
    onUnauthorized: () => {
      if (running?.store !== store) return;
      sync.stop();
      store.forget();
      signedOut('Your session ended. Log in again.');
    },
  });
  const shell = new Shell(root, store, sync, {
    onLogout: async () => {
      sync.stop();
      try {
        await sync.api.logout();
      } catch {
        // Offline or already gone: the token is forgotten here either way.
      }
      store.forget();
      location.hash = '';
      signedOut();
    },
    onDeleted: () => {
      // The server closed this device's sessions already; only the local state is left.
      sync.stop();
      store.forget();
      location.hash = '';
      signedOut('Your account was deleted.');
    },
  });
  running = { store, sync, shell };
  // Unread counts in the tab title.
  const title = () => {
    let unread = 0;
    for (const c of store.conversations.values()) unread += c.unread;
    document.title = unread ? `(${unread}) Confab` : 'Confab';
  };
  store.addEventListener('conversations', title);
  sync.start();
  startPush(sync.api, root);
  shell.route(...route());
  title();
}

window.addEventListener('hashchange', () => running?.shell.route(...route()));
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') running?.sync.markOpenRead();
  else {
    // Phones may never fire pagehide for a tab they later discard.
    running?.sync.flushDelivered();
    running?.sync.flushReads();
    running?.store.saveSnapshot();
  }
});
// Before the page goes away: tell the server how far this device got, and keep the list
// for an offline start.
window.addEventListener('pagehide', () => {
  running?.sync.flushDelivered();
  running?.sync.flushReads();
  running?.store.saveSnapshot();
});

const session = loadSession();
if (session) signedIn(session);
else signedOut();

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch((e) => console.warn('service worker', e));
}
