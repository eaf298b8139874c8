// The chat view: header (title, presence or members, typing), the message list with older
// pages loaded on scrolling up, day separators, sender names in groups, your messages'
// status, system notices, and the composer (Enter sends, Shift+Enter is a new line, a
// counter near the length limit). Bodies are set with textContent, never parsed as HTML.
// Rows are keyed and reused, so new messages and status changes touch only what changed.
// Each message has an actions menu (react, reply, edit, delete for everyone or for me);
// replies show a quote, mentions of members are highlighted, and typing `@` in the
// composer offers the members to mention.

import { h, icon, replace, srOnly } from '../dom.js';
import {
  codePoints,
  dayKey,
  dayLabel,
  fullLabel,
  lastSeen,
  systemText,
  timeLabel,
  toneOf,
} from '../format.js';
import { QUICK_REACTIONS } from '../changes.js';
import { BODY_MAX_CHARS } from '../store.js';
import { avatar } from './list.js';

/** @typedef {import('../store.js').Store} Store */
/** @typedef {import('../store.js').Pending} Pending */
/** @typedef {import('../sync.js').Sync} Sync */
/** @typedef {import('../api.js').Message} Message */
/** @typedef {import('../api.js').Conversation} Conversation */
/**
 * One row of the list.
 * @typedef {{key: string, sig: string, make: () => HTMLLIElement}} Row
 */

/** Bodies longer than this (UTF-16 units) are shown cut, with a button for the rest. */
const LONG_BODY = 4000;
const CUT_AT = 1500;
/** The counter appears from here on. */
const COUNT_FROM = 90_000;
/** Messages this close together from one sender form a run (one name, tight spacing). */
const RUN_MS = 5 * 60_000;
/** Pixels from the top that trigger loading older messages. */
const LOAD_OLDER_PX = 400;
/** Pages of history loaded, at most, to reach a message opened from search. */
const REVEAL_PAGES_MAX = 50;

/** Whether the composer sizes itself to its text (CSS `field-sizing`). */
const GROWS_BY_ITSELF = CSS.supports('field-sizing', 'content');

/** Cuts `text` to about `n` units without splitting a surrogate pair. @param {string} text @param {number} n */
function cut(text, n) {
  let end = n;
  const c = text.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

export class ChatView {
  /**
   * @param {HTMLElement} root the chat pane
   * @param {Store} store
   * @param {Sync} sync
   * @param {{onBack: () => void, onInfo: (id: string) => void, onSettings: (id: string) => void,
   *   onNewChat: () => void}} hooks
   */
  constructor(root, store, sync, hooks) {
    this.root = root;
    this.store = store;
    this.sync = sync;
    this.hooks = hooks;
    /** @type {string | null} */
    this.id = null;
    /** @type {Map<string, {el: HTMLLIElement, sig: string}>} */
    this.rows = new Map();
    /** Drafts per conversation, kept while the tab lives. */
    /** @type {Map<string, string>} */
    this.drafts = new Map();
    /** Keys of long messages shown in full. */
    /** @type {Set<string>} */
    this.expanded = new Set();
    this.stickToBottom = true;
    /** A message to scroll to once it is loaded (opened from search). @type {{seq: number, pages: number} | undefined} */
    this.reveal = undefined;
    /** True while a scroll we made ourselves may still report. */
    this.autoScrolled = false;
    this.autoScrollFrame = 0;
    this.messagesFrame = 0;
    /** @type {ResizeObserver | undefined} */
    this.resizes = undefined;
    /** @type {Map<number, Message>} */
    this.bySeq = new Map();
    /** Replying to or editing a message, from the composer. */
    /** @type {{kind: 'reply' | 'edit', seq: number} | undefined} */
    this.mode = undefined;
    /** @type {{menu: HTMLElement, button: HTMLElement, close: (e: Event) => void} | undefined} */
    this.actionsMenu = undefined;
    /** The members offered for `@`, and the one picked by the arrow keys. */
    /** @type {{users: import('../api.js').User[], active: number}} */
    this.mentioning = { users: [], active: 0 };

    /** @param {string} type @param {(detail: any) => void} fn */
    const on = (type, fn) =>
      store.addEventListener(type, (e) => {
        if (this.id) fn(/** @type {CustomEvent} */ (e).detail);
      });
    on('history', (id) => id === this.id && this.scheduleMessages());
    on('outbox', (id) => id === this.id && this.scheduleMessages());
    on('receipts', (id) => {
      if (id !== this.id) return;
      this.scheduleMessages();
      this.renderHeader();
      this.renderComposerState();
    });
    on('users', () => {
      this.scheduleMessages();
      this.renderHeader();
      this.renderComposerState();
    });
    on('presence', () => this.renderHeader());
    on('typing', (id) => id === this.id && this.renderTyping());
    on('conversations', () => {
      this.renderHeader();
      this.renderComposerState();
    });
    this.empty();
  }

  /**
   * Shows conversation `id`, or the empty state for null; at the message `seq` if given
   * (older pages load until it is there, then it is scrolled to and marked).
   * @param {string | null} id @param {number | null} [seq]
   */
  open(id, seq = null) {
    if (id !== null && seq !== null) {
      this.reveal = { seq, pages: 0 };
      if (id === this.id) {
        this.stickToBottom = false;
        this.scheduleMessages();
        return;
      }
    }
    if (id === this.id) return;
    if (this.mode) this.endMode();
    this.closeActions();
    this.saveDraft();
    this.id = id;
    this.store.openId = id;
    this.rows = new Map();
    this.stickToBottom = seq === null;
    if (seq === null) this.reveal = undefined;
    if (!id) {
      this.resizes?.disconnect();
      this.empty();
      return;
    }
    this.build(id);
    this.sync.openHistory(id);
    this.sync.markOpenRead();
    const c = this.store.conversations.get(id);
    if (c?.kind === 'group') this.sync.refreshPresence(c.members.map((m) => m.user_id));
    // The peer's profile as it is now: renamed, or deleted since it was fetched.
    const refreshPeer = () => {
      const now = this.store.conversations.get(id);
      const peer = now?.kind === 'direct' ? this.store.peerOf(now) : null;
      if (peer) this.sync.refreshUser(peer);
    };
    if (c) refreshPeer();
    else this.sync.fetchConversation(id).then(refreshPeer);
  }

  empty() {
    replace(
      this.root,
      h(
        'div',
        { class: 'chat-empty' },
        h('img', { src: '/icons/icon.svg', alt: '', width: 72, height: 72 }),
        h('h2', {}, 'Your conversations'),
        h('p', {}, 'Pick a conversation from the list, or start a new one.'),
        h('button', { type: 'button', class: 'btn primary', onclick: () => this.hooks.onNewChat() }, 'New chat'),
      ),
    );
  }

  /** @param {string} id */
  build(id) {
    this.backBtn = h(
      'button',
      { type: 'button', class: 'icon-btn back', 'aria-label': 'Back to conversations', onclick: () => this.hooks.onBack() },
      icon('back'),
    );
    this.avatarSlot = h('span', { class: 'avatar-wrap' });
    this.titleEl = h('h2', { class: 'chat-title', id: 'chat-title' });
    this.subEl = h('p', { class: 'chat-sub' });
    this.infoBtn = h(
      'button',
      { type: 'button', class: 'icon-btn', 'aria-label': 'Group info', title: 'Group info', onclick: () => this.hooks.onInfo(id) },
      icon('info'),
    );
    this.settingsBtn = h(
      'button',
      { type: 'button', class: 'icon-btn', 'aria-label': 'Conversation settings', title: 'Notifications, pin, archive', 'aria-haspopup': 'dialog', onclick: () => this.hooks.onSettings(id) },
      icon('bell'),
    );
    this.list = h('ul', { class: 'messages', 'aria-label': 'Messages' });
    this.top = h('div', { class: 'history-top' });
    this.emptyNote = h('p', { class: 'no-messages', hidden: true }, 'No messages yet. Say hello!');
    this.scroller = h(
      'div',
      { class: 'scroller', tabindex: '0', role: 'region', 'aria-label': 'Message history' },
      this.top,
      this.emptyNote,
      this.list,
    );
    this.scroller.addEventListener('scroll', () => this.onScroll(), { passive: true });
    // Rows off screen have an estimated height (content-visibility) until they are drawn,
    // and the composer grows as one types: whenever sizes change, stay at the bottom if
    // that is where the reader was.
    this.resizes?.disconnect();
    this.resizes = new ResizeObserver(() => {
      if (this.stickToBottom) this.scrollToBottom(false);
    });
    this.resizes.observe(this.list);
    this.resizes.observe(this.scroller);
    this.jumpBtn = h(
      'button',
      { type: 'button', class: 'jump', hidden: true, 'aria-label': 'Jump to the newest message', onclick: () => this.scrollToBottom(true) },
      icon('arrowDown'),
    );
    this.typingEl = h('p', { class: 'chat-typing', 'aria-live': 'polite' });

    this.text = h('textarea', {
      id: 'composer-text',
      class: 'composer-text',
      rows: '1',
      placeholder: 'Message',
      'aria-describedby': 'composer-count composer-refusal',
      'aria-autocomplete': 'list',
      'aria-controls': 'mention-list',
      'aria-expanded': 'false',
      enterkeyhint: 'send',
    });
    this.text.value = this.drafts.get(id) ?? '';
    this.text.addEventListener('input', () => this.onInput());
    this.text.addEventListener('keydown', (e) => {
      if (this.mentionKey(e)) return;
      if (e.key === 'Escape' && this.mode) {
        e.preventDefault();
        this.endMode();
        return;
      }
      if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    this.count = h('p', { class: 'count', id: 'composer-count', 'aria-live': 'polite' });
    this.refusal = h('p', { class: 'refusal', id: 'composer-refusal', role: 'alert' });
    this.banner = h('div', { class: 'composer-banner', hidden: true });
    this.mentionList = h('ul', { class: 'mention-list', id: 'mention-list', role: 'listbox', 'aria-label': 'Mention someone', hidden: true });
    this.composer = h(
      'form',
      { class: 'composer', 'aria-label': 'Write a message' },
      this.banner,
      this.mentionList,
      h('label', { for: 'composer-text', class: 'sr-only' }, 'Message'),
      this.text,
      h('button', { type: 'submit', class: 'send', 'aria-label': 'Send', title: 'Send (Enter)' }, icon('send')),
      h('div', { class: 'composer-notes' }, this.refusal, this.count),
    );
    this.composer.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.inactiveNote = h('p', { class: 'inactive-note', hidden: true });

    replace(
      this.root,
      h(
        'section',
        { class: 'chat', 'aria-labelledby': 'chat-title' },
        h(
          'header',
          { class: 'chat-head' },
          this.backBtn,
          this.avatarSlot,
          h('div', { class: 'chat-heading' }, this.titleEl, this.subEl),
          this.settingsBtn,
          this.infoBtn,
        ),
        h('div', { class: 'scroll-wrap' }, this.scroller, this.jumpBtn),
        this.typingEl,
        this.composer,
        this.inactiveNote,
      ),
    );
    this.renderHeader();
    this.renderMessages();
    this.renderTyping();
    this.renderComposerState();
    this.updateCount();
    if (matchMedia('(pointer: fine)').matches) this.text.focus({ preventScroll: true });
  }

  saveDraft() {
    if (this.id && this.text) this.drafts.set(this.id, this.text.value);
  }

  // ---- header ----------------------------------------------------------------------------

  renderHeader() {
    const { id, titleEl, subEl, avatarSlot, infoBtn } = this;
    if (!id || !titleEl || !subEl || !avatarSlot || !infoBtn) return;
    const store = this.store;
    const c = store.conversations.get(id);
    if (!c) {
      titleEl.textContent = 'Loading…';
      return;
    }
    const title = store.titleOf(c);
    titleEl.textContent = title;
    const peer = c.kind === 'direct' ? store.peerOf(c) : null;
    replace(
      avatarSlot,
      avatar(c.kind === 'group' ? `g${c.id}` : peer ?? c.id, title, c.kind === 'group'),
      peer && h('span', { class: `dot${store.presence.get(peer)?.status === 'online' ? ' online' : ''}` }),
    );
    infoBtn.hidden = c.kind !== 'group';
    this.settingsBtn?.replaceChildren(icon(store.levelOf(c) === 'all' ? 'bell' : 'bellOff'));
    let sub = '';
    if (c.kind === 'direct' && peer) {
      const p = store.presence.get(peer);
      const seen = p?.status === 'online' ? 'online' : p ? lastSeen(p.last_active_at) : '';
      sub = [store.handleOf(peer), seen].filter(Boolean).join(' · ');
      subEl.classList.toggle('online', p?.status === 'online');
    } else {
      const online = c.members.filter(
        (m) => m.user_id !== store.me && store.presence.get(m.user_id)?.status === 'online',
      ).length;
      sub = `${c.members.length} member${c.members.length === 1 ? '' : 's'}${online ? `, ${online} online` : ''}`;
      subEl.classList.remove('online');
    }
    subEl.textContent = sub;
    subEl.hidden = sub === '';
  }

  renderTyping() {
    if (!this.id || !this.typingEl) return;
    const names = this.store.typers(this.id).map((u) => this.store.nameOf(u));
    this.typingEl.textContent =
      names.length === 0
        ? ''
        : names.length === 1
          ? `${names[0]} is typing…`
          : names.length === 2
            ? `${names[0]} and ${names[1]} are typing…`
            : 'Several people are typing…';
    this.typingEl.classList.toggle('on', names.length > 0);
  }

  renderComposerState() {
    const { id, composer, inactiveNote } = this;
    if (!id || !composer || !inactiveNote) return;
    const c = this.store.conversations.get(id);
    const inactive = c?.active === false;
    // A direct conversation with someone the user blocked takes no writes until they unblock.
    const peer = c?.kind === 'direct' ? this.store.peerOf(c) : null;
    const blocked = peer !== null && this.store.blocked.has(peer);
    // A deleted account's direct conversations take no more writes.
    const gone = peer !== null && this.store.users.get(peer)?.deleted === true;
    composer.hidden = inactive || blocked || gone;
    inactiveNote.hidden = !inactive && !blocked && !gone;
    if (inactive) inactiveNote.textContent = 'You are no longer a member of this group.';
    else if (gone) inactiveNote.textContent = 'This account was deleted. Its messages stay here.';
    else if (blocked && peer) {
      inactiveNote.textContent = `You blocked ${this.store.nameOf(peer)}. Unblock them in the conversation settings to write here.`;
    }
  }

  // ---- messages ----------------------------------------------------------------------------

  /** The rows to show, in order. @returns {Row[]} */
  describe() {
    const store = this.store;
    const id = /** @type {string} */ (this.id);
    const c = store.conversations.get(id);
    const hist = store.history(id);
    const group = c?.kind === 'group';
    const others = c ? c.members.filter((m) => m.user_id !== store.me) : [];
    const own = new Set();
    for (const m of hist.items) if (m.sender_id === store.me) own.add(m.client_msg_id);
    /** The loaded messages by seq, for the quotes of replies. */
    this.bySeq = new Map(hist.items.map((m) => [m.seq, m]));
    /** @type {{key: string, at: Date, sender: string, system: boolean, m?: Message, p?: Pending}[]} */
    const entries = [];
    for (const m of hist.items) {
      const key = m.sender_id === store.me && m.kind === 'text' ? `c:${m.client_msg_id}` : `m:${m.id}`;
      entries.push({ key, at: new Date(m.created_at), sender: m.sender_id, system: m.kind === 'system', m });
    }
    if (hist.loaded || !hist.loading) {
      for (const p of store.pendingIn(id)) {
        // A change waiting to go shows once applied, not as a message of its own.
        if (own.has(p.client_msg_id) || p.kind) continue;
        entries.push({ key: `c:${p.client_msg_id}`, at: new Date(p.created_at), sender: store.me, system: false, p });
      }
    }
    /** @type {Row[]} */
    const rows = [];
    let day = '';
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const dk = dayKey(e.at);
      if (dk !== day) {
        day = dk;
        const label = dayLabel(e.at);
        rows.push({
          key: `d:${dk}`,
          sig: label,
          make: () => h('li', { class: 'day' }, h('span', {}, label)),
        });
      }
      if (e.system && e.m) {
        const m = e.m;
        const text = systemText(m.body, m.sender_id, (u) => store.nameOf(u), store.me);
        rows.push({
          key: e.key,
          sig: text,
          make: () =>
            h('li', { class: 'system' }, h('p', {}, text, ' ', h('time', { datetime: m.created_at, class: 'sr-only' }, timeLabel(e.at)))),
        });
        continue;
      }
      const prev = entries[i - 1];
      const next = entries[i + 1];
      const joins = (/** @type {typeof e | undefined} */ a, /** @type {typeof e} */ b) =>
        !!a && !a.system && !b.system && a.sender === b.sender && dayKey(a.at) === dayKey(b.at) && Math.abs(b.at.getTime() - a.at.getTime()) < RUN_MS;
      const first = !joins(prev, e);
      const last = !next || !joins(e, next);
      const mine = e.sender === store.me;
      const status = mine ? this.statusOf(e, others, group) : null;
      const name = store.nameOf(e.sender);
      const handle = store.handleOf(e.sender);
      const showName = group && !mine && first;
      const expanded = this.expanded.has(e.key);
      const m = e.m;
      const quoted = m?.reply_to ? this.bySeq.get(m.reply_to) : undefined;
      const state = m && [m.body, m.edited_at, m.deleted_at, m.reactions, m.mentions, quoted?.body, quoted?.deleted_at];
      const sig = JSON.stringify([status, name, handle, showName, first, last, expanded, state]);
      rows.push({ key: e.key, sig, make: () => this.messageRow(e, { mine, first, last, showName, name, handle, status, expanded }) });
    }
    return rows;
  }

  /**
   * Sending (in the outbox), not sent, sent (acknowledged), delivered (another member's
   * device has it) or read, from the members' watermarks.
   * @param {{m?: Message, p?: Pending}} e
   * @param {import('../api.js').Member[]} others
   * @param {boolean} group
   * @returns {{kind: string, label: string}}
   */
  statusOf(e, others, group) {
    if (e.p) return e.p.failed ? { kind: 'failed', label: 'Not sent' } : { kind: 'sending', label: 'Sending' };
    const seq = /** @type {Message} */ (e.m).seq;
    const read = others.filter((m) => m.read_seq >= seq).length;
    const delivered = others.filter((m) => m.delivered_seq >= seq || m.read_seq >= seq).length;
    const of = group ? ` ${others.length}` : '';
    if (read > 0) return { kind: 'read', label: group ? `Read by ${read} of${of}` : 'Read' };
    if (delivered > 0) return { kind: 'delivered', label: group ? `Delivered to ${delivered} of${of}` : 'Delivered' };
    return { kind: 'sent', label: 'Sent' };
  }

  /**
   * @param {{key: string, at: Date, sender: string, m?: Message, p?: Pending}} e
   * @param {{mine: boolean, first: boolean, last: boolean, showName: boolean, name: string,
   *   handle: string, status: {kind: string, label: string} | null, expanded: boolean}} o
   */
  messageRow(e, o) {
    const m = e.m;
    const body = m ? m.body : /** @type {Pending} */ (e.p).body;
    const long = body.length > LONG_BODY;
    const deleted = !!m?.deleted_at;
    const bodyEl = h('div', { class: `body${deleted ? ' deleted' : ''}`, dir: 'auto' });
    if (deleted) bodyEl.textContent = 'This message was deleted';
    else this.fillBody(bodyEl, long && !o.expanded ? cut(body, CUT_AT) : body, m?.mentions ?? []);
    const statusIcon = { sending: 'clock', failed: 'alert', sent: 'check', delivered: 'checks', read: 'checks' };
    const li = h(
      'li',
      {
        class: `msg ${o.mine ? 'mine' : 'theirs'}${o.first ? ' first' : ''}${o.last ? ' last' : ''}`,
        dataset: m ? { seq: String(m.seq) } : undefined,
      },
      h(
        'div',
        { class: 'bubble' },
        o.showName
          ? h('p', { class: 'sender', dataset: { tone: String(toneOf(e.sender)) } }, o.name, o.handle && h('span', { class: 'handle' }, ` ${o.handle}`))
          : srOnly(`${o.mine ? 'You' : o.name}: `),
        m?.reply_to && !deleted && this.quote(m.reply_to),
        bodyEl,
        long &&
          h(
            'button',
            {
              type: 'button',
              class: 'more',
              'aria-expanded': String(o.expanded),
              onclick: () => {
                if (this.expanded.has(e.key)) this.expanded.delete(e.key);
                else this.expanded.add(e.key);
                this.renderMessages();
              },
            },
            o.expanded ? 'Show less' : `Show all ${codePoints(body).toLocaleString()} characters`,
          ),
        h(
          'span',
          { class: 'meta' },
          m && this.actionsButton(m, o.mine),
          m?.edited_at && !deleted && h('span', { class: 'edited', title: `Edited ${fullLabel(new Date(m.edited_at))}` }, 'edited'),
          h('time', { datetime: e.at.toISOString(), title: fullLabel(e.at) }, timeLabel(e.at)),
          o.status &&
            h(
              'span',
              { class: `status ${o.status.kind}`, role: 'img', 'aria-label': o.status.label, title: o.status.label },
              icon(/** @type {any} */ (statusIcon)[o.status.kind]),
            ),
        ),
      ),
      e.p?.failed &&
        h(
          'div',
          { class: 'failed-note' },
          h('span', {}, e.p.failed),
          h('button', { type: 'button', class: 'link', onclick: () => this.sync.retry(/** @type {Pending} */ (e.p).client_msg_id) }, 'Retry'),
          h('button', { type: 'button', class: 'link', onclick: () => this.sync.discard(/** @type {Pending} */ (e.p).client_msg_id) }, 'Delete'),
        ),
      m && !deleted && (m.reactions ?? []).length > 0 && this.reactionsRow(m),
    );
    return li;
  }

  /**
   * The body as text nodes, with `@name`s of the members it mentions highlighted (yours
   * most). @param {HTMLElement} el @param {string} text @param {string[]} mentions
   */
  fillBody(el, text, mentions) {
    const names = new Map();
    for (const id of mentions) {
      const u = this.store.users.get(id);
      if (u) names.set(u.username.toLowerCase(), id);
    }
    if (names.size === 0) {
      el.textContent = text;
      return;
    }
    let at = 0;
    for (const match of text.matchAll(/@([A-Za-z0-9_.-]+)/g)) {
      const name = match[1].replace(/[.-]+$/, '').toLowerCase();
      const id = names.get(name);
      if (id === undefined) continue;
      const start = /** @type {number} */ (match.index);
      const end = start + 1 + name.length;
      el.append(text.slice(at, start));
      el.append(h('span', { class: `mention${id === this.store.me ? ' me' : ''}` }, text.slice(start, end)));
      at = end;
    }
    el.append(text.slice(at));
  }

  /** The quote of the message a reply answers, or a placeholder. @param {number} seq */
  quote(seq) {
    const target = this.bySeq.get(seq);
    if (!target) return h('div', { class: 'quote missing' }, 'Reply to a message not shown here');
    if (target.deleted_at) return h('div', { class: 'quote missing' }, 'Reply to a deleted message');
    const name = target.sender_id === this.store.me ? 'You' : this.store.nameOf(target.sender_id);
    return h('div', { class: 'quote' }, h('span', { class: 'quote-name' }, name), h('span', { class: 'quote-text' }, cut(target.body, 120)));
  }

  /** The reactions under a message: each a button that adds or takes back yours. @param {Message} m */
  reactionsRow(m) {
    const id = /** @type {string} */ (this.id);
    return h(
      'div',
      { class: 'reactions' },
      (m.reactions ?? []).map((r) => {
        const who = r.user_ids.map((u) => (u === this.store.me ? 'you' : this.store.nameOf(u))).join(', ');
        return h(
          'button',
          {
            type: 'button',
            class: `reaction${r.me ? ' mine' : ''}`,
            'aria-pressed': String(r.me),
            'aria-label': `${r.emoji} ${r.count}: ${who}`,
            title: who,
            onclick: () => this.sync.change(id, { kind: r.me ? 'unreact' : 'react', target_seq: m.seq, body: r.emoji }),
          },
          r.emoji,
          ' ',
          String(r.count),
        );
      }),
    );
  }

  /**
   * The button that opens a message's actions: react, reply, edit (yours), delete.
   * @param {Message} m @param {boolean} mine
   */
  actionsButton(m, mine) {
    const button = h(
      'button',
      { type: 'button', class: 'msg-actions', 'aria-label': 'Message actions', 'aria-haspopup': 'menu', 'aria-expanded': 'false' },
      '⋯',
    );
    button.addEventListener('click', () => this.openActions(button, m, mine));
    return button;
  }

  /** @param {HTMLElement} button @param {Message} m @param {boolean} mine */
  openActions(button, m, mine) {
    const toggled = this.actionsMenu?.button === button;
    this.closeActions();
    if (toggled) return;
    const id = /** @type {string} */ (this.id);
    const deleted = !!m.deleted_at;
    const c = this.store.conversations.get(id);
    const admin = c?.kind === 'group' && c.members.some((x) => x.user_id === this.store.me && x.role === 'admin');
    /** @param {string} label @param {() => void} act @param {Record<string, unknown>} [props] */
    const item = (label, act, props = {}) =>
      h('button', { type: 'button', role: 'menuitem', ...props, onclick: () => {
        this.closeActions();
        act();
      } }, label);
    const text = m.kind === 'text';
    const menu = h(
      'div',
      { class: 'menu', role: 'menu', 'aria-label': 'Message actions' },
      text && !deleted &&
        h('div', { class: 'menu-reactions' }, QUICK_REACTIONS.map((emoji) =>
          item(emoji, () => this.sync.change(id, { kind: 'react', target_seq: m.seq, body: emoji }), { 'aria-label': `React with ${emoji}` }))),
      text && !deleted && c?.active !== false && item('Reply', () => this.startReply(m)),
      text && !deleted && mine && c?.active !== false && item('Edit', () => this.startEdit(m)),
      item('Delete…', () => this.confirmDelete(m, text && (mine || admin) && !deleted)),
    );
    button.setAttribute('aria-expanded', 'true');
    button.closest('li')?.append(menu);
    /** @type {HTMLElement | null} */ (menu.querySelector('[role=menuitem]'))?.focus();
    const close = (/** @type {Event} */ e) => {
      const current = this.actionsMenu?.button ?? button;
      const outside = !menu.contains(/** @type {Node} */ (e.target)) && !current.contains(/** @type {Node} */ (e.target));
      if (e instanceof KeyboardEvent ? e.key === 'Escape' : outside) {
        this.closeActions();
        if (e instanceof KeyboardEvent) current.focus();
      }
    };
    document.addEventListener('pointerdown', close, true);
    document.addEventListener('keydown', close, true);
    this.actionsMenu = { menu, button, close };
  }

  /**
   * A message redrawn while its actions menu is open (its status or reactions changed)
   * keeps the menu open. @param {HTMLElement} old @param {HTMLElement} fresh
   */
  keepActionsOpen(old, fresh) {
    const open = this.actionsMenu;
    const button = fresh.querySelector('.msg-actions');
    if (!open || !old.contains(open.menu) || !(button instanceof HTMLElement)) return;
    fresh.append(open.menu);
    button.setAttribute('aria-expanded', 'true');
    open.button = button;
  }

  closeActions() {
    const open = this.actionsMenu;
    if (!open) return;
    this.actionsMenu = undefined;
    open.menu.remove();
    open.button.setAttribute('aria-expanded', 'false');
    document.removeEventListener('pointerdown', open.close, true);
    document.removeEventListener('keydown', open.close, true);
  }

  /** Asks how to delete: for everyone (your message, or any as a group's admin) or for you. @param {Message} m @param {boolean} forEveryone */
  confirmDelete(m, forEveryone) {
    const id = /** @type {string} */ (this.id);
    const dialog = h('dialog', { class: 'sheet', 'aria-labelledby': 'delete-heading' });
    /** @param {string} label @param {'delete' | 'delete_for_me' | null} kind @param {string} cls */
    const choice = (label, kind, cls) =>
      h('button', { type: 'button', class: `btn ${cls}`, onclick: () => {
        if (kind) this.sync.change(id, { kind, target_seq: m.seq });
        dialog.close();
      } }, label);
    dialog.append(
      h('div', { class: 'sheet-head' }, h('h2', { id: 'delete-heading' }, 'Delete message?')),
      h(
        'div',
        { class: 'sheet-body delete-choices' },
        forEveryone && choice('Delete for everyone', 'delete', 'danger'),
        choice('Delete for me', 'delete_for_me', forEveryone ? 'subtle' : 'danger'),
        choice('Cancel', null, 'subtle'),
      ),
    );
    dialog.addEventListener('close', () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  }

  /** @param {Message} m */
  startReply(m) {
    this.mode = { kind: 'reply', seq: m.seq };
    const name = m.sender_id === this.store.me ? 'yourself' : this.store.nameOf(m.sender_id);
    this.showBanner(`Replying to ${name}: ${cut(m.body, 80)}`, 'Cancel reply');
  }

  /** @param {Message} m */
  startEdit(m) {
    const text = /** @type {HTMLTextAreaElement} */ (this.text);
    if (this.mode?.kind !== 'edit') this.saveDraft();
    this.mode = { kind: 'edit', seq: m.seq };
    text.value = m.body;
    this.onInput();
    this.showBanner('Editing your message', 'Cancel edit');
  }

  /** @param {string} text @param {string} cancelLabel */
  showBanner(text, cancelLabel) {
    const banner = /** @type {HTMLElement} */ (this.banner);
    replace(
      banner,
      h('span', { class: 'banner-text' }, text),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': cancelLabel, onclick: () => this.endMode() }, icon('close')),
    );
    banner.hidden = false;
    /** @type {HTMLTextAreaElement} */ (this.text).focus();
  }

  /** Leaves reply or edit mode (an edit gives the draft back). */
  endMode() {
    const editing = this.mode?.kind === 'edit';
    this.mode = undefined;
    const banner = /** @type {HTMLElement} */ (this.banner);
    banner.hidden = true;
    banner.replaceChildren();
    if (editing && this.text) {
      this.text.value = (this.id && this.drafts.get(this.id)) ?? '';
      this.onInput();
    }
  }

  /** Redraws the messages once per frame however many changes arrive (a long backlog). */
  scheduleMessages() {
    if (!this.messagesFrame) this.messagesFrame = requestAnimationFrame(() => this.renderMessages());
  }

  renderMessages() {
    cancelAnimationFrame(this.messagesFrame);
    this.messagesFrame = 0;
    if (!this.id || !this.list) return;
    const scroller = /** @type {HTMLElement} */ (this.scroller);
    const hist = this.store.history(this.id);
    // Keep what the reader looks at still when rows are added above it (older pages).
    const atBottom = this.stickToBottom;
    /** @type {Element | null} */
    let anchor = null;
    let anchorTop = 0;
    if (!atBottom) {
      const top = scroller.getBoundingClientRect().top;
      for (const row of this.list.children) {
        const r = row.getBoundingClientRect();
        if (r.bottom > top) {
          anchor = row;
          anchorTop = r.top;
          break;
        }
      }
    }

    const rows = this.describe();
    /** @type {Map<string, {el: HTMLLIElement, sig: string}>} */
    const next = new Map();
    let cursor = this.list.firstElementChild;
    for (const row of rows) {
      let have = this.rows.get(row.key);
      if (have && have.sig !== row.sig) {
        const fresh = row.make();
        this.keepActionsOpen(have.el, fresh);
        if (have.el === cursor) cursor = fresh;
        have.el.replaceWith(fresh);
        if (anchor === have.el) anchor = fresh;
        have = { el: fresh, sig: row.sig };
      } else if (!have) {
        have = { el: row.make(), sig: row.sig };
      }
      next.set(row.key, have);
      if (have.el === cursor) cursor = cursor.nextElementSibling;
      else this.list.insertBefore(have.el, cursor);
    }
    for (const [key, row] of this.rows) if (next.get(key)?.el !== row.el) row.el.remove();
    while (cursor) {
      const after = cursor.nextElementSibling;
      cursor.remove();
      cursor = after;
    }
    this.rows = next;

    // Top of the history: loading, an error, or a button (also loaded by scrolling).
    const top = /** @type {HTMLElement} */ (this.top);
    if (hist.error) {
      replace(
        top,
        h('p', { class: 'history-error', role: 'alert' }, hist.error, ' '),
        h('button', { type: 'button', class: 'link', onclick: () => this.retryHistory() }, 'Try again'),
      );
    } else if (hist.loading) {
      replace(top, h('p', { class: 'history-loading' }, 'Loading…'));
    } else if (hist.loaded && hist.hasOlder) {
      replace(
        top,
        h('button', { type: 'button', class: 'btn subtle', onclick: () => this.sync.loadOlder(/** @type {string} */ (this.id)) }, 'Load earlier messages'),
      );
    } else {
      top.replaceChildren();
    }
    /** @type {HTMLElement} */ (this.emptyNote).hidden = !(hist.loaded && rows.length === 0);

    if (this.reveal && hist.loaded) this.revealMessage(hist);
    else if (atBottom) this.scrollToBottom(false);
    else if (anchor) scroller.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
    // A short history may not fill the view: keep loading until it scrolls or ends.
    if (hist.loaded && hist.hasOlder && !hist.loading && scroller.scrollTop < LOAD_OLDER_PX) {
      queueMicrotask(() => this.id && this.sync.loadOlder(this.id));
    }
  }

  /**
   * Scrolls to the message a search found and marks it, once it is loaded; until then
   * loads older pages (at most REVEAL_PAGES_MAX of them).
   * @param {{items: Message[], loading: boolean, hasOlder: boolean}} hist
   */
  revealMessage(hist) {
    const reveal = /** @type {{seq: number, pages: number}} */ (this.reveal);
    const row = /** @type {HTMLElement | null} */ (this.list?.querySelector(`li[data-seq="${reveal.seq}"]`) ?? null);
    if (row) {
      this.reveal = undefined;
      this.stickToBottom = false;
      row.classList.add('found');
      row.tabIndex = -1;
      row.scrollIntoView({ block: 'center', behavior: 'instant' });
      row.focus({ preventScroll: true });
      setTimeout(() => row.classList.remove('found'), 4000);
      return;
    }
    const first = hist.items[0];
    if (hist.loading) return;
    if (first && first.seq > reveal.seq && hist.hasOlder && reveal.pages < REVEAL_PAGES_MAX) {
      reveal.pages++;
      queueMicrotask(() => this.id && this.sync.loadOlder(this.id));
    } else {
      // Not in this history (deleted since, or too far back): the newest messages, then.
      this.reveal = undefined;
      this.scrollToBottom(false);
    }
  }

  retryHistory() {
    if (!this.id) return;
    const hist = this.store.history(this.id);
    hist.error = undefined;
    if (hist.loaded) this.sync.loadOlder(this.id);
    else this.sync.openHistory(this.id);
  }

  onScroll() {
    const s = /** @type {HTMLElement} */ (this.scroller);
    const fromBottom = s.scrollHeight - s.scrollTop - s.clientHeight;
    // Our own scrolls to the bottom say nothing about where the reader wants to be.
    if (!this.autoScrolled) this.stickToBottom = fromBottom < 60;
    /** @type {HTMLElement} */ (this.jumpBtn).hidden = fromBottom < 300;
    if (s.scrollTop < LOAD_OLDER_PX && this.id) this.sync.loadOlder(this.id);
    if (this.stickToBottom) this.sync.markOpenRead();
  }

  /** @param {boolean} smooth */
  scrollToBottom(smooth) {
    const s = /** @type {HTMLElement} */ (this.scroller);
    this.stickToBottom = true;
    this.autoScrolled = true;
    s.scrollTo({ top: s.scrollHeight, behavior: smooth ? 'smooth' : 'instant' });
    /** @type {HTMLElement} */ (this.jumpBtn).hidden = true;
    // Scroll events of this frame are dispatched before animation frame callbacks.
    cancelAnimationFrame(this.autoScrollFrame);
    this.autoScrollFrame = requestAnimationFrame(() => {
      this.autoScrollFrame = requestAnimationFrame(() => {
        this.autoScrolled = false;
      });
    });
  }

  // ---- composing -------------------------------------------------------------------------

  onInput() {
    const text = /** @type {HTMLTextAreaElement} */ (this.text);
    if (!GROWS_BY_ITSELF) {
      // Browsers without `field-sizing: content`: grow with the text up to the CSS max-height.
      text.style.height = 'auto';
      text.style.height = `${text.scrollHeight + 2}px`;
    }
    if (this.id && text.value.trim() !== '') this.sync.typing(this.id);
    /** @type {HTMLElement} */ (this.refusal).textContent = '';
    this.updateCount();
    this.updateMentions();
  }

  /** Offers the members whose username or name starts with the `@word` before the caret. */
  updateMentions() {
    const text = /** @type {HTMLTextAreaElement} */ (this.text);
    const c = this.id ? this.store.conversations.get(this.id) : undefined;
    const typed = /(^|[^A-Za-z0-9_.-])@([A-Za-z0-9_.-]*)$/.exec(text.value.slice(0, text.selectionStart ?? 0));
    const prefix = typed ? typed[2].toLowerCase() : null;
    const users =
      c && prefix !== null
        ? c.members
            .flatMap((m) => {
              const u = this.store.users.get(m.user_id);
              return u && u.id !== this.store.me ? [u] : [];
            })
            .filter((u) => u.username.startsWith(prefix) || u.display_name.toLowerCase().startsWith(prefix))
            .slice(0, 8)
        : [];
    this.mentioning = { users, active: 0 };
    this.renderMentions();
  }

  renderMentions() {
    const text = /** @type {HTMLTextAreaElement} */ (this.text);
    const list = /** @type {HTMLElement} */ (this.mentionList);
    const { users, active } = this.mentioning;
    list.hidden = users.length === 0;
    text.setAttribute('aria-expanded', String(users.length > 0));
    if (users.length === 0) {
      list.replaceChildren();
      text.removeAttribute('aria-activedescendant');
      return;
    }
    replace(
      list,
      users.map((u, i) =>
        h(
          'li',
          {
            id: `mention-${u.id}`,
            role: 'option',
            'aria-selected': String(i === active),
            onpointerdown: (/** @type {Event} */ e) => {
              e.preventDefault(); // keep the focus in the composer
              this.mention(u);
            },
          },
          u.display_name,
          ' ',
          h('span', { class: 'handle' }, `@${u.username}`),
        ),
      ),
    );
    text.setAttribute('aria-activedescendant', `mention-${users[active].id}`);
  }

  /** Arrow keys, Enter or Tab and Escape while members are offered; true if it took the key. @param {KeyboardEvent} e */
  mentionKey(e) {
    const { users, active } = this.mentioning;
    if (users.length === 0 || e.isComposing) return false;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      this.mentioning.active = (active + (e.key === 'ArrowDown' ? 1 : users.length - 1)) % users.length;
      this.renderMentions();
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      this.mention(users[active]);
    } else if (e.key === 'Escape') {
      this.mentioning = { users: [], active: 0 };
      this.renderMentions();
    } else {
      return false;
    }
    e.preventDefault();
    return true;
  }

  /** Puts `@username ` in place of the `@word` before the caret. @param {import('../api.js').User} u */
  mention(u) {
    const text = /** @type {HTMLTextAreaElement} */ (this.text);
    const caret = text.selectionStart ?? text.value.length;
    const before = text.value.slice(0, caret).replace(/@[A-Za-z0-9_.-]*$/, `@${u.username} `);
    text.value = before + text.value.slice(caret);
    text.setSelectionRange(before.length, before.length);
    this.onInput();
    text.focus();
  }

  /** Shows the counter near the limit; past it, says so. */
  updateCount() {
    const text = /** @type {HTMLTextAreaElement} */ (this.text);
    const count = /** @type {HTMLElement} */ (this.count);
    // codePoints(text) <= text.length: short drafts need no counting at all.
    const n = text.value.length < COUNT_FROM ? 0 : codePoints(text.value);
    const over = n > BODY_MAX_CHARS;
    count.hidden = n < COUNT_FROM;
    count.classList.toggle('over', over);
    count.textContent =
      n < COUNT_FROM
        ? ''
        : over
          ? `${n.toLocaleString()} / ${BODY_MAX_CHARS.toLocaleString()} characters: ${(n - BODY_MAX_CHARS).toLocaleString()} too many`
          : `${n.toLocaleString()} / ${BODY_MAX_CHARS.toLocaleString()} characters`;
    if (over) text.setAttribute('aria-invalid', 'true');
    else text.removeAttribute('aria-invalid');
  }

  submit() {
    if (!this.id) return;
    const text = /** @type {HTMLTextAreaElement} */ (this.text);
    const mode = this.mode;
    const refused =
      mode?.kind === 'edit'
        ? this.sync.edit(this.id, mode.seq, text.value)
        : this.sync.send(this.id, text.value, mode?.kind === 'reply' ? mode.seq : undefined);
    if (refused) {
      /** @type {HTMLElement} */ (this.refusal).textContent = text.value.trim() === '' && !mode ? '' : refused;
      return;
    }
    if (mode) this.endMode();
    if (mode?.kind === 'edit') return;
    text.value = '';
    if (!GROWS_BY_ITSELF) text.style.height = '';
    this.drafts.delete(this.id);
    this.updateCount();
    this.scrollToBottom(false);
    text.focus();
  }
}
