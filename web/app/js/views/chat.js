// The chat view: header (title, presence or members, typing), the message list with older
// pages loaded on scrolling up, day separators, sender names in groups, your messages'
// status, system notices, and the composer (Enter sends, Shift+Enter is a new line, a
// counter near the length limit). Bodies are set with textContent, never parsed as HTML.
// Rows are keyed and reused, so new messages and status changes touch only what changed.

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
   * @param {{onBack: () => void, onInfo: (id: string) => void, onNewChat: () => void}} hooks
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
    /** True while a scroll we made ourselves may still report. */
    this.autoScrolled = false;
    this.autoScrollFrame = 0;
    this.messagesFrame = 0;
    /** @type {ResizeObserver | undefined} */
    this.resizes = undefined;

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
    });
    on('presence', () => this.renderHeader());
    on('typing', (id) => id === this.id && this.renderTyping());
    on('conversations', () => {
      this.renderHeader();
      this.renderComposerState();
    });
    this.empty();
  }

  /** Shows conversation `id`, or the empty state for null. @param {string | null} id */
  open(id) {
    if (id === this.id) return;
    this.saveDraft();
    this.id = id;
    this.store.openId = id;
    this.rows = new Map();
    this.stickToBottom = true;
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
    if (!c) this.sync.fetchConversation(id);
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
      enterkeyhint: 'send',
    });
    this.text.value = this.drafts.get(id) ?? '';
    this.text.addEventListener('input', () => this.onInput());
    this.text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    this.count = h('p', { class: 'count', id: 'composer-count', 'aria-live': 'polite' });
    this.refusal = h('p', { class: 'refusal', id: 'composer-refusal', role: 'alert' });
    this.composer = h(
      'form',
      { class: 'composer', 'aria-label': 'Write a message' },
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
    const inactive = this.store.conversations.get(id)?.active === false;
    composer.hidden = inactive;
    inactiveNote.hidden = !inactive;
    if (inactive) inactiveNote.textContent = 'You are no longer a member of this group.';
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
    /** @type {{key: string, at: Date, sender: string, system: boolean, m?: Message, p?: Pending}[]} */
    const entries = [];
    for (const m of hist.items) {
      const key = m.sender_id === store.me && m.kind === 'text' ? `c:${m.client_msg_id}` : `m:${m.id}`;
      entries.push({ key, at: new Date(m.created_at), sender: m.sender_id, system: m.kind === 'system', m });
    }
    if (hist.loaded || !hist.loading) {
      for (const p of store.pendingIn(id)) {
        if (own.has(p.client_msg_id)) continue;
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
      const sig = JSON.stringify([status, name, handle, showName, first, last, expanded]);
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
    const body = e.m ? e.m.body : /** @type {Pending} */ (e.p).body;
    const long = body.length > LONG_BODY;
    const bodyEl = h('div', { class: 'body', dir: 'auto' });
    bodyEl.textContent = long && !o.expanded ? cut(body, CUT_AT) : body;
    const statusIcon = { sending: 'clock', failed: 'alert', sent: 'check', delivered: 'checks', read: 'checks' };
    const li = h(
      'li',
      { class: `msg ${o.mine ? 'mine' : 'theirs'}${o.first ? ' first' : ''}${o.last ? ' last' : ''}` },
      h(
        'div',
        { class: 'bubble' },
        o.showName
          ? h('p', { class: 'sender', dataset: { tone: String(toneOf(e.sender)) } }, o.name, o.handle && h('span', { class: 'handle' }, ` ${o.handle}`))
          : srOnly(`${o.mine ? 'You' : o.name}: `),
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
    );
    return li;
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

    if (atBottom) this.scrollToBottom(false);
    else if (anchor) scroller.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
    // A short history may not fill the view: keep loading until it scrolls or ends.
    if (hist.loaded && hist.hasOlder && !hist.loading && scroller.scrollTop < LOAD_OLDER_PX) {
      queueMicrotask(() => this.id && this.sync.loadOlder(this.id));
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
    const refused = this.sync.send(this.id, text.value);
    if (refused) {
      /** @type {HTMLElement} */ (this.refusal).textContent = text.value.trim() === '' ? '' : refused;
      return;
    }
    text.value = '';
    if (!GROWS_BY_ITSELF) text.style.height = '';
    this.drafts.delete(this.id);
    this.updateCount();
    this.scrollToBottom(false);
    text.focus();
  }
}
