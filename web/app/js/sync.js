// Keeps the Store in step with the server: loads the conversation list, feeds socket frames
// into the store, acknowledges what it processed (`delivered`), sends the outbox one
// message at a time with each message's original client_msg_id, marks what is on screen
// as read, and sends `typing`. Views call the actions here; they never touch the socket.

import { isChange } from './changes.js';
import { Api, ApiError } from './api.js';
import { Socket } from './socket.js';
import { BODY_MAX_CHARS, Store } from './store.js';
import { codePoints } from './format.js';

/** @typedef {import('./api.js').Message} Message */
/** @typedef {import('./api.js').Conversation} Conversation */

const PAGE = 50;
/** Typing is sent at most this often per conversation while composing. */
const TYPING_EVERY_MS = 2000;
/** `delivered` frames are cumulative; one per this interval is plenty. */
const DELIVERED_EVERY_MS = 300;
/** A burst of messages in the open conversation becomes one `read` frame. */
const READ_EVERY_MS = 150;

/** A client_msg_id: 1-64 printable ASCII, unique enough to never collide per user. */
export function newClientMsgId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `w-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export class Sync {
  /**
   * @param {Store} store
   * @param {{onUnauthorized: () => void}} hooks
   */
  constructor(store, { onUnauthorized }) {
    this.store = store;
    this.onUnauthorized = onUnauthorized;
    this.api = new Api(store.session.token, () => this.onUnauthorized());
    this.socket = new Socket({ token: store.session.token, cursor: () => store.cursor });
    /** @type {string | null} client_msg_id of the send awaiting its ack */
    this.inflight = null;
    /** Earliest time the next send may go (after `rate_limited` or `overloaded`). */
    this.sendNotBefore = 0;
    /** Sends refused in a row (`rate_limited`, `overloaded`): each doubles the wait. */
    this.refusals = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.sendTimer = undefined;
    /** @type {number | null} highest inbox_seq processed and not yet acknowledged */
    this.deliveredPending = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.deliveredTimer = undefined;
    /** @type {Map<string, number>} conversation -> read watermark not yet sent */
    this.unsentReads = new Map();
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.readTimer = undefined;
    /** @type {Map<string, number>} conversation -> last time we sent `typing` */
    this.typingSent = new Map();
    /** @type {Map<string, Promise<void>>} conversations being fetched */
    this.fetchingConversation = new Map();
    /** @type {Map<string, Promise<unknown>>} users being fetched */
    this.fetchingUser = new Map();
    /** @type {Promise<void>} */
    this.firstLoad = Promise.resolve();
    this.welcomed = false;

    this.socket.addEventListener('frame', (e) => this.onFrame(/** @type {CustomEvent} */ (e).detail));
    this.socket.addEventListener('state', () => {
      store.connection = this.socket.state;
      if (this.socket.state === 'offline') {
        this.inflight = null;
        // Nobody's presence is known without a connection; the next welcome tells again.
        if (store.presence.size) {
          store.presence.clear();
          store.emit('presence');
        }
      }
      store.emit('connection');
    });
    this.socket.addEventListener('unauthorized', () => this.onUnauthorized());
  }

  start() {
    this.firstLoad = this.loadConversations();
    this.welcomed = false;
    this.socket.start();
  }

  stop() {
    clearTimeout(this.sendTimer);
    clearTimeout(this.deliveredTimer);
    this.flushDelivered();
    this.flushReads();
    this.socket.stop();
  }

  // ---- loading -------------------------------------------------------------------------

  async loadConversations() {
    try {
      const [list, blocks] = await Promise.all([this.api.conversations(), this.api.blocks()]);
      this.store.blocked = new Set(blocks.map((b) => b.user_id));
      for (const c of list) this.store.mergeConversation(c);
      this.store.listLoaded = true;
      this.store.emit('conversations');
      this.ensureUsers(list.flatMap((c) => c.members.map((m) => m.user_id)));
    } catch (e) {
      // Offline: the snapshot drew the list; the next welcome tries again.
      if (!(e instanceof ApiError) || e.code !== 'network') console.warn('conversations', e);
    }
  }

  /** @param {string} id */
  fetchConversation(id) {
    let p = this.fetchingConversation.get(id);
    if (!p) {
      p = this.api
        .conversation(id)
        .then((c) => {
          this.store.mergeConversation(c);
          this.store.touched.set(c.id, new Date().toISOString());
          this.store.emit('conversations');
          this.store.emit('receipts', c.id);
          this.ensureUsers(c.members.map((m) => m.user_id));
          // A new contact: presence events only come on changes, so ask once.
          const peer = c.kind === 'direct' ? this.store.peerOf(c) : null;
          if (peer && !this.store.presence.has(peer)) this.refreshPresence([peer]);
        })
        .catch((e) => console.warn('conversation', id, e))
        .finally(() => this.fetchingConversation.delete(id));
      this.fetchingConversation.set(id, p);
    }
    return p;
  }

  /** Fetches a user's profile again (a name changed, an account deleted). @param {string} id */
  refreshUser(id) {
    this.api
      .user(id)
      .then((u) => {
        this.store.users.set(u.id, u);
        this.store.emit('users');
      })
      .catch(() => {});
  }

  /** Fetches names for ids not known yet. @param {string[]} ids */
  ensureUsers(ids) {
    for (const id of new Set(ids)) {
      if (this.store.users.has(id) || this.fetchingUser.has(id)) continue;
      const p = this.api
        .user(id)
        .then((u) => {
          this.store.users.set(u.id, u);
          this.store.emit('users');
        })
        .catch(() => {})
        .finally(() => this.fetchingUser.delete(id));
      this.fetchingUser.set(id, p);
    }
  }

  /**
   * Presence for these users (group members, contacts). Answers older than a live event
   * for the same user are ignored.
   * @param {string[]} ids
   */
  async refreshPresence(ids) {
    const since = Date.now();
    const unique = [...new Set(ids)].filter((id) => id !== this.store.me).slice(0, 200);
    try {
      for (const p of await this.api.presence(unique)) this.store.setPresence(p, since);
    } catch {
      // Presence is decoration; the next welcome refreshes it.
    }
  }

  /** Contacts: the other side of every direct conversation. */
  contacts() {
    return [...this.store.conversations.values()]
      .filter((c) => c.kind === 'direct')
      .map((c) => this.store.peerOf(c))
      .filter((id) => id !== null);
  }

  /**
   * The newest page of a conversation, once per session; live messages keep it current.
   * @param {string} id
   */
  async openHistory(id) {
    const h = this.store.history(id);
    if (h.loaded || h.loading) return;
    h.loading = true;
    h.error = undefined;
    this.store.emit('history', id);
    try {
      const page = await this.api.messages(id, { limit: PAGE });
      h.items = [];
      this.store.insertIntoHistory(h, page);
      h.hasOlder = page.length === PAGE;
      h.loaded = true;
      this.ensureUsers(page.map((m) => m.sender_id).concat(page.flatMap(systemUserIds)));
      // Messages that arrived over the socket while the page was on its way.
      const c = this.store.conversations.get(id);
      if (c && h.items.length && c.last_seq > h.items[h.items.length - 1].seq) {
        await this.fillGap(id);
      }
    } catch (e) {
      h.error = e instanceof ApiError ? e.message : String(e);
    } finally {
      h.loading = false;
      this.store.emit('history', id);
    }
  }

  /** An older page, for scrolling up. @param {string} id */
  async loadOlder(id) {
    const h = this.store.history(id);
    if (!h.loaded || h.loading || !h.hasOlder) return;
    const first = h.items[0];
    if (!first) {
      h.hasOlder = false;
      return;
    }
    h.loading = true;
    this.store.emit('history', id);
    try {
      const page = await this.api.messages(id, { before_seq: first.seq, limit: PAGE });
      h.items = page.concat(h.items);
      h.hasOlder = page.length === PAGE;
      this.ensureUsers(page.map((m) => m.sender_id).concat(page.flatMap(systemUserIds)));
    } catch (e) {
      h.error = e instanceof ApiError ? e.message : String(e);
    } finally {
      h.loading = false;
      this.store.emit('history', id);
    }
  }

  /** Fetches what is missing after the newest loaded message. @param {string} id */
  async fillGap(id) {
    const h = this.store.history(id);
    for (;;) {
      const last = h.items[h.items.length - 1];
      const page = await this.api.messages(id, { after_seq: last ? last.seq : 0, limit: 200 });
      this.store.insertIntoHistory(h, page);
      if (page.length < 200) break;
    }
    this.store.emit('history', id);
  }

  // ---- frames ----------------------------------------------------------------------------

  /** @param {any} f */
  onFrame(f) {
    const store = this.store;
    switch (f.type) {
      case 'welcome':
        // A cursor from data the server no longer has: start over at its head.
        if (store.cursor !== null && store.cursor > f.inbox_seq) store.setCursor(f.inbox_seq);
        // After a gap, receipts and membership changes may have been missed: reload the list
        // (the first welcome shares the load that start() began).
        (this.welcomed ? this.loadConversations() : this.firstLoad).then(() =>
          this.refreshPresence(this.contacts()),
        );
        this.welcomed = true;
        this.pump();
        this.markOpenRead();
        this.flushReads();
        // A history that failed to load while offline loads now.
        if (store.openId) this.openHistory(store.openId);
        break;
      case 'message':
        this.onMessage(f.message, f.inbox_seq);
        break;
      case 'ack':
        this.onAck(f.message);
        break;
      case 'error':
        this.onError(f);
        break;
      case 'receipt':
        store.applyReceipt(f);
        this.refreshStale();
        break;
      case 'typing':
        if (f.user_id !== store.me) store.startTyping(f.conversation_id, f.user_id);
        break;
      case 'presence':
        store.setPresence(f);
        break;
      case 'settings':
        store.applySettings(f.conversation_id, f.settings);
        break;
      case 'block':
        store.setBlocked(f.user_id, f.blocked);
        break;
      default:
        break;
    }
  }

  /** @param {Message} m @param {number} inboxSeq */
  onMessage(m, inboxSeq) {
    const store = this.store;
    if (m.sender_id === store.me && store.removePending(m.client_msg_id)) {
      // Our own message came back before its ack (or after a reload): it is stored.
      if (this.inflight === m.client_msg_id) this.sendDone();
    }
    const hiddenLast =
      m.kind === 'delete_for_me' && store.conversations.get(m.conversation_id)?.last_message?.seq === m.target_seq;
    if (!store.applyMessage(m)) {
      this.fetchConversation(m.conversation_id).then(() => store.applyMessage(m));
    } else if (m.kind === 'system' || hiddenLast) {
      // Members, roles, title or our own membership changed; or the list's preview was
      // deleted for us, and the message before it is the server's to say.
      this.fetchConversation(m.conversation_id);
    }
    this.ensureUsers([m.sender_id, ...systemUserIds(m)]);
    const h = store.histories.get(m.conversation_id);
    const last = h?.items[h.items.length - 1];
    // Changes take seqs that history does not list: only a message can show a gap.
    if (!isChange(m) && h?.loaded && last && m.seq > last.seq + 1) this.fillGap(m.conversation_id).catch(() => {});
    this.refreshStale();
    if (m.conversation_id === store.openId) this.markOpenRead();
    // Processed: this device's cursor moves past it.
    store.setCursor(inboxSeq);
    this.deliveredPending = inboxSeq;
    if (this.deliveredTimer === undefined) {
      this.deliveredTimer = setTimeout(() => this.flushDelivered(), DELIVERED_EVERY_MS);
    }
  }

  flushDelivered() {
    clearTimeout(this.deliveredTimer);
    this.deliveredTimer = undefined;
    if (this.deliveredPending === null) return;
    if (this.socket.send({ type: 'delivered', inbox_seq: this.deliveredPending })) {
      this.deliveredPending = null;
    }
  }

  /** @param {Message} m */
  onAck(m) {
    this.refusals = 0;
    this.store.removePending(m.client_msg_id);
    if (!this.store.applyMessage(m)) this.fetchConversation(m.conversation_id);
    if (this.inflight === m.client_msg_id) this.sendDone();
  }

  /** @param {{req?: string, code: string, message: string, retry_after_ms?: number}} f */
  onError(f) {
    if (!f.req || f.req !== this.inflight) {
      if (f.code !== 'rate_limited') console.warn('server error', f);
      return;
    }
    this.inflight = null;
    if (f.code === 'rate_limited' || f.code === 'overloaded' || f.code === 'internal') {
      // The server's wait, doubled for each refusal in a row (at most 30 s): a client that
      // came back at the hint every time would keep an overloaded node busy refusing it.
      this.refusals += 1;
      const wait = (f.retry_after_ms ?? 1000) * 2 ** Math.min(this.refusals - 1, 5);
      this.sendNotBefore = Date.now() + Math.min(wait, 30_000);
    } else if (this.store.outbox.find((p) => p.client_msg_id === f.req)?.kind) {
      // A change the server will not apply (the message was deleted meanwhile, ...): the
      // message stays as the server has it.
      this.store.removePending(f.req);
    } else {
      // The server will never take this one as it is: show it as not sent.
      this.store.markPending(f.req, failureText(f.code, f.message));
    }
    this.pump();
  }

  // ---- sending ---------------------------------------------------------------------------

  /** Asks the server again for conversations whose unread counts only it knows now. */
  refreshStale() {
    for (const id of this.store.stale) {
      this.store.stale.delete(id);
      this.fetchConversation(id).catch(() => {});
    }
  }

  /**
   * Puts a change to a message (an edit, a delete, a reaction) in the outbox and sends it
   * when it can, like a message: with its own client_msg_id, applied once.
   * @param {string} conversationId
   * @param {{kind: 'edit' | 'delete' | 'delete_for_me' | 'react' | 'unreact', target_seq: number, body?: string}} change
   */
  change(conversationId, change) {
    this.store.addPending({
      client_msg_id: newClientMsgId(),
      conversation_id: conversationId,
      body: change.body ?? '',
      kind: change.kind,
      target_seq: change.target_seq,
      created_at: new Date().toISOString(),
    });
    this.pump();
  }

  /**
   * Puts a message in the outbox (it survives reloads) and sends it when it can.
   * @param {string} conversationId @param {string} body
   * @param {number} [replyTo] the seq of the message it answers
   * @returns {string | null} why it was refused, or null
   */
  send(conversationId, body, replyTo) {
    const refused = refusalOf(body);
    if (refused) return refused;
    this.store.addPending({
      client_msg_id: newClientMsgId(),
      conversation_id: conversationId,
      body,
      ...(replyTo ? { reply_to: replyTo } : {}),
      created_at: new Date().toISOString(),
    });
    if (!this.store.outboxSaved) {
      console.warn('outbox did not fit in localStorage; kept in memory');
    }
    this.typingSent.delete(conversationId);
    this.pump();
    return null;
  }

  /**
   * Replaces the text of message `seq` (one of yours), checked like a new message.
   * @param {string} conversationId @param {number} seq @param {string} body
   * @returns {string | null} why it was refused, or null
   */
  edit(conversationId, seq, body) {
    const refused = refusalOf(body);
    if (refused) return refused;
    this.change(conversationId, { kind: 'edit', target_seq: seq, body });
    return null;
  }

  /** Sends the next outbox message, one at a time so order is kept. */
  pump() {
    clearTimeout(this.sendTimer);
    if (this.inflight || this.store.connection !== 'online') return;
    const wait = this.sendNotBefore - Date.now();
    if (wait > 0) {
      this.sendTimer = setTimeout(() => this.pump(), wait);
      return;
    }
    const next = this.store.outbox.find((p) => !p.failed);
    if (!next) return;
    const sent = this.socket.send({
      type: 'send',
      req: next.client_msg_id,
      conversation_id: next.conversation_id,
      client_msg_id: next.client_msg_id,
      ...(next.kind ? { kind: next.kind, target_seq: next.target_seq } : {}),
      ...(next.reply_to ? { reply_to: next.reply_to } : {}),
      body: next.body,
    });
    if (sent) this.inflight = next.client_msg_id;
  }

  sendDone() {
    this.inflight = null;
    this.pump();
  }

  /** Tries a failed message again, with the same client_msg_id. @param {string} clientMsgId */
  retry(clientMsgId) {
    this.store.markPending(clientMsgId, undefined);
    this.pump();
  }

  /** @param {string} clientMsgId */
  discard(clientMsgId) {
    if (this.inflight === clientMsgId) return;
    this.store.removePending(clientMsgId);
  }

  /** Someone is composing in this conversation. @param {string} conversationId */
  typing(conversationId) {
    const now = Date.now();
    if (now - (this.typingSent.get(conversationId) ?? 0) < TYPING_EVERY_MS) return;
    if (this.socket.send({ type: 'typing', conversation_id: conversationId })) {
      this.typingSent.set(conversationId, now);
    }
  }

  // ---- reading ---------------------------------------------------------------------------

  /**
   * The conversation on screen, if the page is visible: everything in it is read. The
   * unread count drops at once; the `read` frame follows, one per burst of messages.
   */
  markOpenRead() {
    const id = this.store.openId;
    if (!id || document.visibilityState !== 'visible') return;
    const c = this.store.conversations.get(id);
    if (!c || c.active === false || c.last_seq <= c.read_seq) return;
    c.read_seq = c.last_seq;
    this.store.recount(c);
    this.store.emit('conversations');
    this.unsentReads.set(id, c.read_seq);
    if (this.readTimer === undefined) {
      this.readTimer = setTimeout(() => this.flushReads(), READ_EVERY_MS);
    }
  }

  /** Sends the read watermarks decided here; what cannot go now goes after `welcome`. */
  flushReads() {
    clearTimeout(this.readTimer);
    this.readTimer = undefined;
    for (const [id, seq] of this.unsentReads) {
      if (!this.socket.send({ type: 'read', conversation_id: id, seq })) return;
      this.unsentReads.delete(id);
    }
  }

  // ---- conversations -----------------------------------------------------------------------

  /** @param {string} username @returns {Promise<Conversation>} */
  async startDirect(username) {
    const user = await this.api.userByName(normalizeUsername(username));
    if (user.id === this.store.me) throw new ApiError(400, 'invalid_request', 'That is you.');
    this.store.users.set(user.id, user);
    const c = this.store.mergeConversation(await this.api.direct(user.id));
    this.store.touched.set(c.id, new Date().toISOString());
    this.store.emit('users');
    this.store.emit('conversations');
    this.refreshPresence([user.id]);
    return c;
  }

  /** @param {string} title @param {string[]} usernames @returns {Promise<Conversation>} */
  async createGroup(title, usernames) {
    const ids = [];
    for (const name of usernames) {
      let user;
      try {
        user = await this.api.userByName(normalizeUsername(name));
      } catch (e) {
        if (e instanceof ApiError && e.code === 'not_found') {
          throw new ApiError(404, 'not_found', `There is no user named “${name}”.`);
        }
        throw e;
      }
      this.store.users.set(user.id, user);
      if (user.id !== this.store.me) ids.push(user.id);
    }
    const c = this.store.mergeConversation(await this.api.createGroup(title, ids));
    this.store.touched.set(c.id, new Date().toISOString());
    this.store.emit('users');
    this.store.emit('conversations');
    return c;
  }

  /** @param {string} id @param {string} username */
  async addMember(id, username) {
    const user = await this.api.userByName(normalizeUsername(username));
    this.store.users.set(user.id, user);
    this.store.mergeConversation(await this.api.addMember(id, user.id));
    this.store.emit('users');
    this.store.emit('conversations');
    this.store.emit('receipts', id);
  }

  /** @param {string} id @param {string} userId */
  async removeMember(id, userId) {
    await this.api.removeMember(id, userId);
    await this.fetchConversation(id);
  }

  /** The block list as the server has it (the store's set is kept by frames). */
  async blockList() {
    const blocks = await this.api.blocks();
    this.store.blocked = new Set(blocks.map((b) => b.user_id));
    this.ensureUsers(blocks.map((b) => b.user_id));
    return blocks;
  }

  /**
   * Blocks or unblocks a user; every device of this user hears of it.
   * @param {string} userId @param {boolean} blocked
   */
  async setBlocked(userId, blocked) {
    await (blocked ? this.api.block(userId) : this.api.unblock(userId));
    this.store.setBlocked(userId, blocked);
  }

  /**
   * Changes the user's settings for a conversation; every device of theirs hears of it.
   * @param {string} id @param {import('./api.js').SettingsChange} change
   */
  async changeSettings(id, change) {
    this.store.applySettings(id, await this.api.changeSettings(id, change));
  }

  /** @param {string} id @param {string} title */
  async renameGroup(id, title) {
    this.store.mergeConversation(await this.api.renameGroup(id, title));
    this.store.emit('conversations');
    this.store.emit('receipts', id);
  }
}

/** Usernames are lower case; people type "@Bob ". @param {string} name */
function normalizeUsername(name) {
  return name.trim().replace(/^@/, '').toLowerCase();
}

/** User ids a system message names. @param {Message} m @returns {string[]} */
function systemUserIds(m) {
  if (m.kind !== 'system') return [];
  try {
    const body = JSON.parse(m.body);
    return typeof body.user_id === 'string' ? [body.user_id] : [];
  } catch {
    return [];
  }
}

/** @param {string} code @param {string} message */
function failureText(code, message) {
  switch (code) {
    case 'message_too_long':
      return 'Too long to send.';
    case 'quota_exceeded':
      return 'Your storage is full: this message cannot be stored.';
    case 'forbidden':
      return 'You are no longer a member of this conversation.';
    case 'not_found':
      return 'This conversation no longer exists.';
    default:
      return message;
  }
}

/**
 * Why a text cannot be sent as it is (empty, or over the limit), or null.
 * @param {string} body
 */
function refusalOf(body) {
  if (body.trim() === '') return 'Write something first.';
  const n = codePoints(body);
  if (n <= BODY_MAX_CHARS) return null;
  const over = n - BODY_MAX_CHARS;
  return `This message is ${over.toLocaleString()} character${over === 1 ? '' : 's'} over the ${BODY_MAX_CHARS.toLocaleString()}-character limit. Shorten it to send it.`;
}
