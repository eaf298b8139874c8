// HTTP calls to the Confab API under /v1 (docs/protocol.md, "HTTP API"). One method per
// route; errors come back as ApiError with the contract's `code`. No state lives here
// beyond the token.

/**
 * `deleted`: the account was deleted ("Deleted user"); its messages stay.
 * @typedef {{id: string, username: string, display_name: string, created_at: string,
 *   deleted?: boolean}} User
 */
/** @typedef {{emoji: string, count: number, me: boolean, user_ids: string[]}} Reaction */
/**
 * A message, or a change to one (`target_seq`): docs/protocol.md, "Messages that change".
 * @typedef {{id: string, conversation_id: string, seq: number, sender_id: string,
 *   client_msg_id: string,
 *   kind: 'text' | 'system' | 'edit' | 'delete' | 'delete_for_me' | 'react' | 'unreact',
 *   body: string, created_at: string, target_seq?: number, reply_to?: number,
 *   mentions?: string[], edited_at?: string, deleted_at?: string, reactions?: Reaction[],
 *   changed_seq?: number}} Message
 */
/** @typedef {{user_id: string, role: 'admin' | 'member', delivered_seq: number, read_seq: number}} Member */
/**
 * The caller's own settings for a conversation (docs/protocol.md, "Your settings for a
 * conversation").
 * @typedef {{notify: 'all' | 'mentions' | 'none', notify_until?: string, archived: boolean,
 *   pinned: boolean}} Settings
 */
/**
 * What to change of them; absent fields stay.
 * @typedef {{notify?: Settings['notify'], notify_until?: string, archived?: boolean,
 *   pinned?: boolean}} SettingsChange
 */
/**
 * @typedef {{id: string, kind: 'direct' | 'group', title: string | null, members: Member[],
 *   last_seq: number, read_seq: number, unread: number, unread_mentions?: number,
 *   last_message: Message | null, active?: boolean, settings?: Settings,
 *   _counted?: Counted}} Conversation
 *   `_counted` is the client's own (see Store.recount).
 */
/**
 * What the server counted as unread when it last told, and the messages that came since.
 * @typedef {{read: number, upto: number, unread: number, mentions: number,
 *   since: {seq: number, mention: boolean}[]}} Counted
 */
/** @typedef {{user_id: string, status: 'online' | 'offline', last_active_at: string | null}} Presence */
/** @typedef {{token: string, device_id: string, user: User}} Login */
/**
 * One logged-in device of the user.
 * @typedef {{id: string, name: string, created_at: string, last_active_at: string,
 *   cursor: number, current: boolean}} Device
 */
/** @typedef {{text: string, match?: boolean}} SnippetPart */
/** @typedef {{message: Message, snippet: SnippetPart[]}} SearchResult */
/** @typedef {{results: SearchResult[], next_cursor?: string}} SearchPage */

/** An error answer from the server, or `network` when there was no answer at all. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status; 0 for a network failure
   * @param {string} code the contract's error code, or `network`
   * @param {string} message a sentence for people
   * @param {number} [retryAfterMs] with `rate_limited`
   */
  constructor(status, code, message, retryAfterMs) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

export class Api {
  /**
   * @param {string | null} token bearer token, or null before login
   * @param {() => void} [onUnauthorized] called when the server rejects the token
   */
  constructor(token = null, onUnauthorized = () => {}) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<any>} the parsed JSON body, or null for 204
   */
  async request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let answer;
    try {
      answer = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
    }
    if (answer.status === 204) return null;
    if (!answer.ok) throw await this.failure(answer);
    try {
      return await answer.json();
    } catch {
      return null;
    }
  }

  /**
   * The ApiError of a failing answer (a 401 also tells `onUnauthorized`).
   * @param {Response} answer @returns {Promise<ApiError>}
   */
  async failure(answer) {
    let json = null;
    try {
      json = await answer.json();
    } catch {
      // An answer without a JSON body (a proxy's error page) is reported by status below.
    }
    const err = json?.error;
    if (answer.status === 401 && this.token) this.onUnauthorized();
    return new ApiError(
      answer.status,
      err?.code ?? 'internal',
      err?.message ?? `The server answered ${answer.status}.`,
      err?.retry_after_ms,
    );
  }

  /**
   * Deletes the account, given its password: it leaves its groups, its messages stay as
   * from "Deleted user", and every device is logged out.
   * @param {string} password
   */
  async deleteAccount(password) {
    await this.request('DELETE', '/v1/me', { password });
  }

  /**
   * Everything the user can see, as the JSON file the server streams (GET /v1/me/export).
   * @returns {Promise<Blob>}
   */
  async exportFile() {
    let answer;
    try {
      answer = await fetch('/v1/me/export', {
        headers: this.token ? { authorization: `Bearer ${this.token}` } : {},
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
    }
    if (!answer.ok) throw await this.failure(answer);
    try {
      return await answer.blob();
    } catch {
      throw new ApiError(0, 'network', 'The download was cut off. Try again.');
    }
  }

  /** @param {string} username @param {string} password @param {string} [displayName] */
  signup(username, password, displayName) {
    return this.request('POST', '/v1/auth/signup', {
      username,
      password,
      ...(displayName ? { display_name: displayName } : {}),
    });
  }

  /**
   * @param {string} username @param {string} password @param {string} deviceName
   * @returns {Promise<Login>}
   */
  login(username, password, deviceName) {
    return this.request('POST', '/v1/auth/login', { username, password, device_name: deviceName });
  }

  logout() {
    return this.request('POST', '/v1/auth/logout');
  }

  /**
   * Changes the password; the account's other devices are logged out.
   * @param {string} current @param {string} next
   */
  async changePassword(current, next) {
    await this.request('POST', '/v1/me/password', { current_password: current, new_password: next });
  }

  /** @returns {Promise<{last_seen: boolean, read_receipts: boolean}>} */
  async privacy() {
    return (await this.request('GET', '/v1/me/privacy')).privacy;
  }

  /**
   * @param {{last_seen?: boolean, read_receipts?: boolean}} change
   * @returns {Promise<{last_seen: boolean, read_receipts: boolean}>}
   */
  async changePrivacy(change) {
    return (await this.request('PATCH', '/v1/me/privacy', change)).privacy;
  }

  /** @returns {Promise<Device[]>} */
  async devices() {
    return (await this.request('GET', '/v1/devices')).devices;
  }

  /** Logs one of the user's devices out. @param {string} id */
  async removeDevice(id) {
    await this.request('DELETE', `/v1/devices/${id}`);
  }

  /** @returns {Promise<User>} */
  async me() {
    return (await this.request('GET', '/v1/me')).user;
  }

  /** @param {string} username @returns {Promise<User>} */
  async userByName(username) {
    return (await this.request('GET', `/v1/users?username=${encodeURIComponent(username)}`)).user;
  }

  /** @param {string} id @returns {Promise<User>} */
  async user(id) {
    return (await this.request('GET', `/v1/users/${encodeURIComponent(id)}`)).user;
  }

  /** @returns {Promise<Conversation[]>} */
  async conversations() {
    // Every page; the server hands out at most 200 per request.
    const all = [];
    let cursor = null;
    do {
      const page = await this.request('GET', `/v1/conversations?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      all.push(...page.conversations);
      cursor = page.next_cursor ?? null;
    } while (cursor);
    return all;
  }

  /** @param {string} id @returns {Promise<Conversation>} */
  async conversation(id) {
    return (await this.request('GET', `/v1/conversations/${id}`)).conversation;
  }

  /** @returns {Promise<{user_id: string, created_at: string}[]>} */
  async blocks() {
    return (await this.request('GET', '/v1/blocks')).blocks;
  }

  /** @param {string} userId */
  async block(userId) {
    await this.request('PUT', `/v1/blocks/${userId}`);
  }

  /** @param {string} userId */
  async unblock(userId) {
    await this.request('DELETE', `/v1/blocks/${userId}`);
  }

  /** @param {string} id @param {SettingsChange} change @returns {Promise<Settings>} */
  async changeSettings(id, change) {
    return (await this.request('PATCH', `/v1/conversations/${id}/settings`, change)).settings;
  }

  /** @param {string} userId @returns {Promise<Conversation>} */
  async direct(userId) {
    return (await this.request('POST', '/v1/conversations/direct', { user_id: userId }))
      .conversation;
  }

  /** @param {string} title @param {string[]} memberIds @returns {Promise<Conversation>} */
  async createGroup(title, memberIds) {
    return (await this.request('POST', '/v1/groups', { title, member_ids: memberIds }))
      .conversation;
  }

  /** @param {string} id @param {string} title @returns {Promise<Conversation>} */
  async renameGroup(id, title) {
    return (await this.request('PATCH', `/v1/groups/${id}`, { title })).conversation;
  }

  /** @param {string} id @param {string} userId @returns {Promise<Conversation>} */
  async addMember(id, userId) {
    return (await this.request('POST', `/v1/groups/${id}/members`, { user_id: userId }))
      .conversation;
  }

  /** Removes a member; with your own id, leaves. @param {string} id @param {string} userId */
  removeMember(id, userId) {
    return this.request('DELETE', `/v1/groups/${id}/members/${userId}`);
  }

  /**
   * A page of history, ascending by seq.
   * @param {string} id
   * @param {{before_seq?: number, after_seq?: number, limit?: number}} [page]
   * @returns {Promise<Message[]>}
   */
  async messages(id, page = {}) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(page)) if (v !== undefined) query.set(k, String(v));
    const qs = query.toString();
    return (await this.request('GET', `/v1/conversations/${id}/messages${qs ? `?${qs}` : ''}`))
      .messages;
  }

  /**
   * Messages the caller may see that match `q` (docs/protocol.md, "Search"), newest first.
   * @param {string} q
   * @param {{cursor?: string, limit?: number, conversation_id?: string}} [page]
   * @returns {Promise<SearchPage>}
   */
  async search(q, page = {}) {
    const query = new URLSearchParams({ q });
    for (const [k, v] of Object.entries(page)) if (v !== undefined) query.set(k, String(v));
    return this.request('GET', `/v1/search?${query}`);
  }

  /** @param {string[]} userIds at most 200 @returns {Promise<Presence[]>} */
  async presence(userIds) {
    if (userIds.length === 0) return [];
    return (await this.request('GET', `/v1/presence?user_ids=${userIds.join(',')}`)).presence;
  }

  /** @returns {Promise<string>} the server's VAPID public key, base64url */
  async vapidPublicKey() {
    return (await this.request('GET', '/v1/push/vapid-public-key')).key;
  }

  /**
   * @param {{endpoint: string, keys: {p256dh: string, auth: string}}} subscription
   * @returns {Promise<string>} the subscription's id
   */
  async subscribePush(subscription) {
    return (await this.request('POST', '/v1/push/subscriptions', { kind: 'webpush', ...subscription })).id;
  }
}
