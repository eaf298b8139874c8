// The one WebSocket of this tab (docs/protocol.md, "WebSocket: GET /v1/ws"): `hello` with
// the stored cursor, heartbeats at the interval `welcome` names, a watchdog for silent
// connections, and reconnects with exponential backoff and jitter. It knows frames, not
// conversations: every server frame is passed on as a `frame` event for sync.js.

/** @typedef {'connecting' | 'online' | 'offline'} ConnectionState */

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** The server closes sessions that send no `hello` within 10 s; we give up a bit later. */
const WELCOME_TIMEOUT_MS = 12_000;

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential, capped, and "equal
 * jitter" (half fixed, half random) so that a restarted server is not hit by every client
 * in the same millisecond.
 * @param {number} attempt
 */
export function backoffDelay(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export class Socket extends EventTarget {
  /**
   * @param {{token: string, cursor: () => number | null}} options `cursor` returns the last
   *   inbox_seq this device processed, or null to let the server use its stored cursor.
   */
  constructor({ token, cursor }) {
    super();
    this.token = token;
    this.cursor = cursor;
    /** @type {ConnectionState} */
    this.state = 'offline';
    /** @type {WebSocket | null} */
    this.ws = null;
    this.attempt = 0;
    this.stopped = true;
    this.heartbeatMs = 5000;
    this.lastHeard = 0;
    /** Time the next attempt is due (for the status line), or 0. */
    this.retryAt = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.heartbeatTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.welcomeTimer = undefined;
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.drop('the browser went offline');
    this.onVisible = () => {
      if (document.visibilityState === 'visible' && this.state === 'offline') this.reconnectNow();
    };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.connect();
  }

  /** Closes for good (logout): a close frame ends this device's presence at once. */
  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    document.removeEventListener('visibilitychange', this.onVisible);
    clearTimeout(this.retryTimer);
    this.teardown(1000, 'bye');
    this.setState('offline');
  }

  /**
   * Sends a frame if the session is up. Returns false when it is not; callers keep what
   * they wanted to send and retry after the next `welcome`.
   * @param {object} frame
   */
  send(frame) {
    if (this.state !== 'online' || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Reconnects at once, skipping any backoff wait (the browser is back online). */
  reconnectNow() {
    if (this.stopped || this.state !== 'offline') return;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.retryAt = 0;
    // A first attempt shows as connecting; retries while down stay "offline" rather than
    // flickering between the two every few seconds.
    if (this.attempt === 0) this.setState('connecting');
    const url = new URL('/v1/ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const cursor = this.cursor();
      ws.send(
        JSON.stringify({ type: 'hello', token: this.token, ...(cursor === null ? {} : { cursor }) }),
      );
    };
    ws.onmessage = (event) => this.receive(event);
    ws.onclose = (event) => this.closed(event.code, event.reason);
    // onerror is always followed by onclose, which does the work.
    this.welcomeTimer = setTimeout(() => this.drop('no welcome in time'), WELCOME_TIMEOUT_MS);
  }

  /** @param {MessageEvent} event */
  receive(event) {
    this.lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === 'welcome') {
      clearTimeout(this.welcomeTimer);
      this.attempt = 0;
      this.heartbeatMs = Math.max(1000, Number(frame.heartbeat_interval_ms) || 5000);
      this.startHeartbeat();
      this.setState('online');
    } else if (frame.type === 'reconnect') {
      // The node is draining; a 1001 close follows. Nothing else to do on a single node.
    }
    this.dispatchEvent(new CustomEvent('frame', { detail: frame }));
  }

  startHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      // Any frame from the server counts as life; heartbeat_ack answers ours. Silence for
      // more than two intervals means the connection is gone without a close.
      if (Date.now() - this.lastHeard > this.heartbeatMs * 2 + 2000) {
        this.drop('the server stopped answering');
        return;
      }
      this.send({ type: 'heartbeat' });
    }, this.heartbeatMs);
  }

  /**
   * Gives up on the current connection without waiting for a close handshake that may never
   * come, and schedules the next attempt.
   * @param {string} why
   */
  drop(why) {
    if (!this.ws) return;
    this.teardown(4000, why);
    this.setState('offline');
    this.dispatchEvent(new CustomEvent('closed', { detail: { code: 0, reason: why } }));
    this.scheduleReconnect();
  }

  /** @param {number} code @param {string} reason */
  closed(code, reason) {
    this.teardown();
    if (this.stopped) return;
    this.setState('offline');
    this.dispatchEvent(new CustomEvent('closed', { detail: { code, reason } }));
    if (code === 4001) {
      // Bad token or this device was logged out: reconnecting cannot help.
      this.stopped = true;
      this.dispatchEvent(new CustomEvent('unauthorized'));
      return;
    }
    this.scheduleReconnect();
  }

  /** @param {number} [code] @param {string} [reason] */
  teardown(code, reason) {
    clearTimeout(this.welcomeTimer);
    clearInterval(this.heartbeatTimer);
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (code !== undefined && ws.readyState <= WebSocket.OPEN) {
      try {
        ws.close(code, reason);
      } catch {
        // Already closing.
      }
    }
  }

  scheduleReconnect() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.dispatchEvent(new CustomEvent('state', { detail: this.state }));
  }

  /** @param {ConnectionState} state */
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
  }
}
