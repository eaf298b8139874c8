// Push notifications on this device: ask for permission when the user first sends a
// message (a moment when they want replies, and a click, which browsers require), then
// subscribe with the server's VAPID key and register the subscription. The service
// worker (sw.js) shows the notifications; the server sends them only while no device of
// the user is online.

/** @typedef {import('./api.js').Api} Api */

/** Is Web Push available here? (Not on http:// other than localhost, nor in old browsers.) */
function supported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/** @param {string} base64url @returns {Uint8Array<ArrayBuffer>} */
function bytes(base64url) {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** @param {Api} api */
async function subscribe(api) {
  const registration = await navigator.serviceWorker.ready;
  const key = await api.vapidPublicKey();
  let subscription = await registration.pushManager.getSubscription();
  // A subscription made with another server's key cannot receive this server's pushes.
  const current = subscription?.options.applicationServerKey;
  if (subscription && current && new Uint8Array(current).join() !== bytes(key).join()) {
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ??= await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: bytes(key),
  });
  const json = subscription.toJSON();
  if (!json.endpoint || !json.keys?.p256dh || !json.keys?.auth) return;
  // Registered on every start: the server moves an endpoint to the device that sends it.
  await api.subscribePush({ endpoint: json.endpoint, keys: { p256dh: json.keys.p256dh, auth: json.keys.auth } });
}

/**
 * Subscribes now if the user already allowed notifications, else asks at their first
 * sent message (a form submit in `root`).
 * @param {Api} api
 * @param {HTMLElement} root
 */
export function startPush(api, root) {
  if (!supported() || Notification.permission === 'denied') return;
  const attempt = () =>
    subscribe(api).catch((e) => console.warn('push subscription failed', e));
  if (Notification.permission === 'granted') {
    attempt();
    return;
  }
  const ask = () => {
    root.removeEventListener('submit', ask, true);
    Notification.requestPermission().then((answer) => {
      if (answer === 'granted') attempt();
    });
  };
  root.addEventListener('submit', ask, true);
}
