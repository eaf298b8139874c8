// Local state and what of it survives a reload. In memory: conversations, users, presence,
// typing, loaded history. In localStorage: the session, this device's sync cursor, the
// outbox of messages not yet acknowledged, and a snapshot of the conversation list and
// user names so the app opens offline. Views read the state and listen for change events;
// only sync.js (and the views through it) change it.

import { applyChange, isChange } from './changes.js';

/** @typedef {import('./api.js').User} User */
/** @typedef {import('./api.js').Message} Message */
/** @typedef {import('./api.js').Conversation} Conversation */
/** @typedef {import('./api.js').Login} Session */
/** @typedef {import('./socket.js').ConnectionState} ConnectionState */
/**
 * A message (or a change to one: `kind` and `target_seq`) written here and not yet
 * acknowledged by the server. `client_msg_id` is the idempotency key: a resend after any
 * failure uses the same one, so it is stored once.
 * @typedef {{client_msg_id: string, conversation_id: string, body: string, created_at: string,
 *   kind?: 'edit' | 'delete' | 'delete_for_me' | 'react' | 'unreact', target_seq?: number,
 *   reply_to?: number, failed?: string}} Pending
 */
/**
 * A conversation's loaded history: contiguous `items` ascending by seq.
 * @typedef {{items: Message[], hasOlder: boolean, loaded: boolean, loading: boolean,
 *   error?: string}} History
 */
/** @typedef {{status: 'online' | 'offline', last_active_at: string | null, at: number}} PresenceInfo */

/** The longest body the server accepts, in Unicode scalar values (code points). */
export const BODY_MAX_CHARS = 99_999;
/** How long someone shows as typing after their last `typing` event. */
export const TYPING_SHOW_MS = 5000;

const KEY = {
  session: 'confab.session',
  /** @param {string} device */
  cursor: (device) => `confab.cursor.${device}`,
  /** @param {string} device */
  outbox: (device) => `confab.outbox.${device}`,
  /** @param {string} user */
  snapshot: (user) => `confab.snapshot.${user}`,
};

/** @param {string} key @returns {any} */
function load(key) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? null : JSON.parse(raw);
  } catch {
    return null;
  }
}

/** @param {string} key @param {unknown} value @returns {boolean} false if it did not fit */
function save(key, value) {
  try {
    if (value === null || value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false;
  }
}

/** @returns {Session | null} */
export function loadSession() {
  const s = load(KEY.session);
  return s && typeof s.token === 'string' && s.user ? s : null;
}

/** @param {Session | null} session */
export function saveSession(session) {
  save(KEY.session, session);
}

export class Store extends EventTarget {
  /** @param {Session} session */
  constructor(session) {
    super();
    this.session = session;
    this.me = session.user.id;
    /** @type {Map<string, Conversation>} */
    this.conversations = new Map();
    /** Local time a conversation was last touched here (for sorting empty ones). */
    /** @type {Map<string, string>} */
    this.touched = new Map();
    /** Users this user blocked. @type {Set<string>} */
    this.blocked = new Set();
    /** @type {Map<string, User>} */
    this.users = new Map([[session.user.id, session.user]]);
    /** @type {Map<string, PresenceInfo>} */
    this.presence = new Map();
    /** conversation id -> user id -> time their typing display ends */
    /** @type {Map<string, Map<string, number>>} */
    this.typing = new Map();
    /** @type {Map<string, History>} */
    this.histories = new Map();
    /** Conversations whose unread counts only the server knows now: sync asks again. */
    /** @type {Set<string>} */
    this.stale = new Set();
    /** @type {ConnectionState} */
    this.connection = 'offline';
    /** Whether the conversation list came from the server this session (not the snapshot). */
    this.listLoaded = false;
    /** @type {string | null} the conversation on screen */
    this.openId = null;

    /** @type {number | null} */
    this.cursor = load(KEY.cursor(session.device_id));
    /** @type {Pending[]} */
    this.outbox = load(KEY.outbox(session.device_id)) ?? [];
    /** False when the outbox did not fit in localStorage (it is then kept in memory only). */
    this.outboxSaved = true;

    const snap = load(KEY.snapshot(this.me));
    if (snap) {
      for (const u of snap.users ?? []) this.users.set(u.id, u);
      for (const c of snap.conversations ?? []) this.conversations.set(c.id, c);
    }
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.snapshotTimer = undefined;
  }

  /**
   * Tells listeners what changed: `conversations`, `history` (detail: conversation id),
   * `users`, `presence`, `typing` (detail: conversation id), `outbox` (detail: conversation
   * id), `connection`, `receipts` (detail: conversation id).
   * @param {string} type @param {unknown} [detail]
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
    if (type === 'conversations' || type === 'users') this.scheduleSnapshot();
  }

  // ---- cursor and outbox -------------------------------------------------------------

  /** @param {number} inboxSeq */
  setCursor(inboxSeq) {
    this.cursor = inboxSeq;
    save(KEY.cursor(this.session.device_id), inboxSeq);
  }

  saveOutbox() {
    this.outboxSaved = save(KEY.outbox(this.session.device_id), this.outbox);
  }

  /** @param {Pending} pending */
  addPending(pending) {
    this.outbox.push(pending);
    this.saveOutbox();
    this.touched.set(pending.conversation_id, pending.created_at);
    this.emit('outbox', pending.conversation_id);
    this.emit('conversations');
  }

  /** @param {string} clientMsgId @returns {Pending | undefined} the removed entry */
  removePending(clientMsgId) {
    const i = this.outbox.findIndex((p) => p.client_msg_id === clientMsgId);
    if (i < 0) return undefined;
    const [gone] = this.outbox.splice(i, 1);
    this.saveOutbox();
    this.emit('outbox', gone.conversation_id);
    return gone;
  }

  /** @param {string} clientMsgId @param {string | undefined} failed */
  markPending(clientMsgId, failed) {
    const p = this.outbox.find((q) => q.client_msg_id === clientMsgId);
    if (!p) return;
    if (failed) p.failed = failed;
    else delete p.failed;
    this.saveOutbox();
    this.emit('outbox', p.conversation_id);
  }

  /** @param {string} conversationId */
  pendingIn(conversationId) {
    return this.outbox.filter((p) => p.conversation_id === conversationId);
  }

  // ---- conversations -------------------------------------------------------------------

  /**
   * Takes a conversation from the server, keeping whatever this client already knows that
   * is newer (a live message or receipt that raced the HTTP answer).
   * @param {Conversation} fresh
   */
  mergeConversation(fresh) {
    const old = this.conversations.get(fresh.id);
    const c = { ...fresh, active: fresh.active !== false };
    if (old) {
      if (old.last_seq > c.last_seq) {
        c.last_seq = old.last_seq;
        c.last_message = old.last_message;
      }
      c.read_seq = Math.max(old.read_seq, c.read_seq);
      for (const m of c.members) {
        const om = old.members.find((x) => x.user_id === m.user_id);
        if (om) {
          m.delivered_seq = Math.max(om.delivered_seq, m.delivered_seq);
          m.read_seq = Math.max(om.read_seq, m.read_seq);
        }
      }
    }
    // The server counts messages (not changes) after the watermark; keep its count, and
    // count here what arrives after it.
    const since = (old?._counted?.since ?? []).filter((x) => x.seq > fresh.last_seq);
    c._counted = {
      read: fresh.read_seq,
      upto: fresh.last_seq,
      unread: fresh.unread,
      mentions: fresh.unread_mentions ?? 0,
      since,
    };
    this.recount(c);
    this.conversations.set(c.id, c);
    return c;
  }

  /**
   * The unread and mention counts from the server's last count and what came since. A
   * watermark moved to the newest message clears them; one moved partway (read on another
   * device) leaves the server's part unknown: marked stale, for sync to ask again.
   * @param {Conversation} c
   */
  recount(c) {
    const newest = c.last_message?.seq ?? 0;
    if (c.read_seq >= newest) {
      c.unread = 0;
      c.unread_mentions = 0;
      return;
    }
    const counted = c._counted;
    if (!counted) return; // as the server said (a snapshot from the last session)
    const later = counted.since.filter((x) => x.seq > c.read_seq);
    const withServer = c.read_seq <= counted.read;
    if (!withServer && c.read_seq < counted.upto) this.stale.add(c.id);
    c.unread = (withServer ? counted.unread : 0) + later.length;
    c.unread_mentions = (withServer ? counted.mentions : 0) + later.filter((x) => x.mention).length;
  }

  /** Conversations: pinned ones first, then by most recent activity. */
  sortedConversations() {
    /** @param {Conversation} c */
    const key = (c) => {
      const last = c.last_message?.created_at ?? '';
      const touched = this.touched.get(c.id) ?? '';
      return last > touched ? last : touched;
    };
    return [...this.conversations.values()].sort((a, b) => {
      const pinned = Number(!!b.settings?.pinned) - Number(!!a.settings?.pinned);
      if (pinned) return pinned;
      const ka = key(a);
      const kb = key(b);
      return ka === kb ? Number(b.id) - Number(a.id) : ka < kb ? 1 : -1;
    });
  }

  /**
   * What notifies the user in `c` now: a level past its `notify_until` is `all` again.
   * @param {Conversation} c @returns {'all' | 'mentions' | 'none'}
   */
  levelOf(c) {
    const s = c.settings;
    if (!s || (s.notify_until && Date.parse(s.notify_until) <= Date.now())) return 'all';
    return s.notify;
  }

  /**
   * Whom the user blocked (from the server's list, and `block` frames).
   * @param {string} userId @param {boolean} blocked
   */
  setBlocked(userId, blocked) {
    if (blocked) this.blocked.add(userId);
    else this.blocked.delete(userId);
    this.emit('conversations');
  }

  /**
   * The user's settings for a conversation changed (here, or on another device).
   * @param {string} id @param {import('./api.js').Settings} settings
   */
  applySettings(id, settings) {
    const c = this.conversations.get(id);
    if (!c) return;
    c.settings = settings;
    this.emit('conversations');
  }

  /**
   * Applies a message from the server (live, backlog, ack or history) to the conversation
   * summary and, when that history is loaded, to it. Returns false when the conversation is
   * unknown here (the caller fetches it).
   * @param {Message} m
   */
  applyMessage(m) {
    if (isChange(m)) return this.applyChangeTo(m);
    const c = this.conversations.get(m.conversation_id);
    if (!c) return false;
    if (m.seq > (c.last_message?.seq ?? 0)) {
      c.last_message = m;
      // An archived conversation comes back with a message that would notify at its level,
      // as the server decides it too (docs/protocol.md, "Your settings for a conversation").
      const level = this.levelOf(c);
      const mentioned = (m.mentions ?? []).includes(this.me);
      if (c.settings?.archived && (level === 'all' || (level === 'mentions' && mentioned))) {
        c.settings = { ...c.settings, archived: false };
      }
    }
    if (m.seq > c.last_seq) {
      c.last_seq = m.seq;
      if (c._counted && m.seq > c._counted.upto && m.sender_id !== this.me) {
        c._counted.since.push({ seq: m.seq, mention: (m.mentions ?? []).includes(this.me) });
      }
    }
    if (m.sender_id === this.me) c.read_seq = Math.max(c.read_seq, m.seq);
    // Sending implies having read what came before (the server moves the sender's read
    // watermark without a receipt, docs/protocol.md decision d): a member's message at seq N
    // means they have read, and have, everything up to N.
    const sender = c.members.find((x) => x.user_id === m.sender_id);
    if (sender) {
      sender.read_seq = Math.max(sender.read_seq, m.seq);
      sender.delivered_seq = Math.max(sender.delivered_seq, m.seq);
      this.emit('receipts', m.conversation_id);
    }
    this.recount(c);
    this.stopTyping(m.conversation_id, m.sender_id);
    const h = this.histories.get(m.conversation_id);
    if (h?.loaded) this.insertIntoHistory(h, [m]);
    this.emit('conversations');
    this.emit('history', m.conversation_id);
    return true;
  }

  /**
   * Applies a change (edit, delete, reaction, delete for me) to the message it names, in the
   * conversation summary and in loaded history. It is not a message: no unread, no move up
   * the list. Returns false when the conversation is unknown here (the caller fetches it).
   * @param {Message} change
   */
  applyChangeTo(change) {
    const c = this.conversations.get(change.conversation_id);
    if (!c) return false;
    c.last_seq = Math.max(c.last_seq, change.seq);
    const target = change.target_seq;
    if (c.last_message && c.last_message.seq === target && change.kind !== 'delete_for_me') {
      c.last_message = applyChange(c.last_message, change, this.me);
    }
    const h = this.histories.get(change.conversation_id);
    const i = h?.loaded ? h.items.findIndex((x) => x.seq === target) : -1;
    if (h && i >= 0) {
      if (change.kind === 'delete_for_me') h.items.splice(i, 1);
      else h.items[i] = applyChange(h.items[i], change, this.me);
    }
    if (change.kind === 'delete' && c._counted) {
      // A deleted mention is none: the server counts again.
      this.stale.add(c.id);
    }
    this.emit('conversations');
    this.emit('history', change.conversation_id);
    return true;
  }

  /**
   * Adds messages to a history, keeping it sorted and free of duplicates.
   * @param {History} h @param {Message[]} messages
   */
  insertIntoHistory(h, messages) {
    const items = h.items;
    for (const m of messages) {
      const last = items[items.length - 1];
      if (!last || m.seq > last.seq) {
        items.push(m);
        continue;
      }
      // Rare: out of order. Binary search for the place; skip a duplicate.
      let lo = 0;
      let hi = items.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (items[mid].seq < m.seq) lo = mid + 1;
        else hi = mid;
      }
      if (items[lo]?.seq !== m.seq) items.splice(lo, 0, m);
    }
  }

  /** @param {string} id @returns {History} */
  history(id) {
    let h = this.histories.get(id);
    if (!h) {
      h = { items: [], hasOlder: true, loaded: false, loading: false };
      this.histories.set(id, h);
    }
    return h;
  }

  // ---- receipts, presence, typing --------------------------------------------------------

  /**
   * @param {{conversation_id: string, user_id: string, kind: 'delivered' | 'read', seq: number}} r
   */
  applyReceipt(r) {
    const c = this.conversations.get(r.conversation_id);
    if (!c) return;
    const m = c.members.find((x) => x.user_id === r.user_id);
    if (m) {
      if (r.kind === 'read') m.read_seq = Math.max(m.read_seq, r.seq);
      else m.delivered_seq = Math.max(m.delivered_seq, r.seq);
    }
    if (r.user_id === this.me && r.kind === 'read') {
      // Read on another device of mine (or the echo of this one).
      c.read_seq = Math.max(c.read_seq, r.seq);
      this.recount(c);
      this.emit('conversations');
    }
    this.emit('receipts', r.conversation_id);
  }

  /**
   * @param {import('./api.js').Presence} p
   * @param {number} [since] ignore this answer if an event arrived after this time
   */
  setPresence(p, since) {
    const old = this.presence.get(p.user_id);
    if (since !== undefined && old && old.at > since) return;
    if (old && old.status === p.status && old.last_active_at === p.last_active_at) return;
    this.presence.set(p.user_id, {
      status: p.status,
      last_active_at: p.last_active_at ?? old?.last_active_at ?? null,
      at: Date.now(),
    });
    this.emit('presence', p.user_id);
  }

  /** @param {string} conversationId @param {string} userId */
  startTyping(conversationId, userId) {
    let who = this.typing.get(conversationId);
    if (!who) {
      who = new Map();
      this.typing.set(conversationId, who);
    }
    who.set(userId, Date.now() + TYPING_SHOW_MS);
    this.emit('typing', conversationId);
    setTimeout(() => {
      const until = this.typing.get(conversationId)?.get(userId);
      if (until !== undefined && until <= Date.now()) this.stopTyping(conversationId, userId);
    }, TYPING_SHOW_MS + 50);
  }

  /** @param {string} conversationId @param {string} userId */
  stopTyping(conversationId, userId) {
    if (this.typing.get(conversationId)?.delete(userId)) this.emit('typing', conversationId);
  }

  /** @param {string} conversationId @returns {string[]} user ids typing now */
  typers(conversationId) {
    const who = this.typing.get(conversationId);
    if (!who) return [];
    const now = Date.now();
    return [...who].filter(([, until]) => until > now).map(([id]) => id);
  }

  // ---- names -----------------------------------------------------------------------------

  /** @param {string} id */
  nameOf(id) {
    const u = this.users.get(id);
    return u ? u.display_name || u.username : 'someone';
  }

  /**
   * `@username`: unique, unlike display names, so shown wherever a name could pass for
   * someone else's. @param {string} id
   */
  handleOf(id) {
    const u = this.users.get(id);
    return u ? `@${u.username}` : '';
  }

  /** The other member of a direct conversation. @param {Conversation} c */
  peerOf(c) {
    return c.members.find((m) => m.user_id !== this.me)?.user_id ?? null;
  }

  /** @param {Conversation} c */
  titleOf(c) {
    if (c.kind === 'group') return c.title ?? 'Group';
    const peer = this.peerOf(c);
    return peer ? this.nameOf(peer) : 'Direct chat';
  }

  // ---- snapshot --------------------------------------------------------------------------

  scheduleSnapshot() {
    clearTimeout(this.snapshotTimer);
    this.snapshotTimer = setTimeout(() => this.saveSnapshot(), 1000);
  }

  saveSnapshot() {
    // Bodies are cut short: the snapshot only draws the list while offline.
    const conversations = [...this.conversations.values()].map((c) => ({
      ...c,
      last_message: c.last_message && { ...c.last_message, body: c.last_message.body.slice(0, 200) },
    }));
    save(KEY.snapshot(this.me), { conversations, users: [...this.users.values()] });
  }

  /** Forgets everything this device kept (logout). */
  forget() {
    clearTimeout(this.snapshotTimer);
    save(KEY.cursor(this.session.device_id), null);
    save(KEY.outbox(this.session.device_id), null);
    save(KEY.snapshot(this.me), null);
    saveSession(null);
  }
}
