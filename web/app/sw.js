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
  '/js/dom.js',
  '/js/format.js',
  '/js/socket.js',
  '/js/store.js',
  '/js/sync.js',
  '/js/views/auth.js',
  '/js/views/chat.js',
  '/js/views/dialogs.js',
  '/js/views/list.js',
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
// Reserved for the push notifications issue. It adds here:
//   worker.addEventListener('push', (event) => { ... worker.registration.showNotification(...) });
//   worker.addEventListener('notificationclick', (event) => { ... focus or open /#/c/<id> });
// and the page side (subscribe with the server's VAPID key, POST /v1/push/...) in
// js/push.js. Nothing in this file caches or intercepts /v1, so push needs no change above.
// -------------------------------------------------------------------------------------------
