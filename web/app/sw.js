// Confab's service worker. It keeps the app shell (HTML, CSS, modules, icons) so the app
// opens without a network, and stays out of the API's way: nothing under /v1 is ever cached
// or answered from a cache.
//
// Shell files are fetched network-first (the server answers unchanged files with a cheap
// 304), so a deploy is picked up on the next load; the cached copy is used only when the
// network fails or is too slow.

/** @type {ServiceWorkerGlobalScope} */
const worker = /** @type {any} */ (self);
const CACHE = 'confab-shell-v1';
const SHELL = [
  '/',
  '/app.css',
  '/manifest.webmanifest',
  '/icons/icon.svg',
  '/icons/icon-192.png',
  '/js/main.js',
  '/js/api.js',
  '/js/changes.js',
  '/js/dom.js',
  '/js/format.js',
  '/js/push.js',
  '/js/socket.js',
  '/js/store.js',
  '/js/sync.js',
  '/js/views/auth.js',
  '/js/views/chat.js',
  '/js/views/dialogs.js',
  '/js/views/list.js',
  '/js/views/search.js',
  '/js/views/shell.js',
];
/** Past this, a slow network loses to the cached shell. */
const NETWORK_TIMEOUT_MS = 4000;

worker.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => worker.skipWaiting()),
  );
});

worker.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => worker.clients.claim()),
  );
});

worker.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== worker.location.origin) return;
  // The API, the WebSocket, health and metrics: straight to the network, never cached.
  if (url.pathname.startsWith('/v1/') || url.pathname === '/healthz' || url.pathname === '/metrics') {
    return;
  }
  event.respondWith(networkFirst(request));
});

/** @param {Request} request */
async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  // Every page of the app is index.html (routes live in the #fragment).
  const key = request.mode === 'navigate' ? '/' : request;
  const network = fetch(request).then((answer) => {
    if (answer.ok) cache.put(key, answer.clone());
    return answer;
  });
  network.catch(() => {});
  try {
    return await withTimeout(network, NETWORK_TIMEOUT_MS);
  } catch {
    // Offline, or slow: the cached copy if there is one, else whatever the network says.
    return (await cache.match(key)) ?? network;
  }
}

/** @template T @param {Promise<T>} promise @param {number} ms @returns {Promise<T>} */
function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('network timeout')), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

// ---- Push notifications ------------------------------------------------------------------
// The payload is docs/protocol.md's push payload. One notification per conversation (its
// tag): `new` shows it and alerts, `update` replaces it quietly (a message in it was edited
// or deleted), `close` removes it (nothing in it is left to show).

worker.addEventListener('push', (event) => {
  /** @type {{kind?: string, conversation_id?: string, title?: string, body?: string, badge?: number}} */
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    // Not ours or garbled: a plain notification still tells the user to look.
  }
  const id = data.conversation_id ?? '';
  const tag = `c${id}`;
  // The unread count on the app's icon, where the browser has one (installed apps).
  const nav = /** @type {{setAppBadge?: (n: number) => Promise<void>}} */ (/** @type {unknown} */ (worker.navigator));
  if (typeof data.badge === 'number' && nav.setAppBadge) {
    event.waitUntil(nav.setAppBadge(data.badge).catch(() => {}));
  }
  if (data.kind === 'close') {
    event.waitUntil(
      worker.registration
        .getNotifications({ tag })
        .then((shown) => shown.forEach((notification) => notification.close())),
    );
    return;
  }
  // An update replaces the notification without a sound, and shows it quietly if the
  // user had dismissed it (a browser expects every push to show something).
  const update = data.kind === 'update';
  /** @type {NotificationOptions & {renotify?: boolean}} */
  const options = {
    body: data.body || 'New message',
    tag,
    renotify: !update,
    silent: update,
    icon: '/icons/icon-192.png',
    data: { conversation_id: id },
  };
  event.waitUntil(worker.registration.showNotification(data.title || 'Confab', options));
});

worker.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const id = event.notification.data?.conversation_id;
  const url = id ? `/#/c/${id}` : '/';
  event.waitUntil(
    (async () => {
      const windows = await worker.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const open = windows[0];
      if (open) {
        await open.focus();
        await open.navigate(url);
      } else {
        await worker.clients.openWindow(url);
      }
    })(),
  );
});
