// The conversation list: pinned first, then most recent first, each with an avatar (a
// presence dot for direct chats), the title, the time and a preview of the last message, an
// unread badge, and marks for muted and pinned. Archived conversations are listed apart,
// behind a button under the list. Entries are links to #/c/<id>; rows are updated in place
// so focus survives updates.

import { h, icon, replace } from '../dom.js';
import { initials, listTime, systemText, toneOf } from '../format.js';

/** @typedef {import('../store.js').Store} Store */
/** @typedef {import('../api.js').Conversation} Conversation */

/**
 * An avatar: initials on a colour, with an optional presence dot.
 * @param {string} id colour seed @param {string} name @param {boolean} [group]
 */
export function avatar(id, name, group = false) {
  return h(
    'span',
    { class: `avatar${group ? ' group' : ''}`, dataset: { tone: String(toneOf(id)) }, 'aria-hidden': 'true' },
    initials(name),
  );
}

export class ConversationList {
  /**
   * @param {HTMLUListElement} ul
   * @param {HTMLElement} empty shown when there are no conversations
   * @param {Store} store
   */
  constructor(ul, empty, store) {
    this.ul = ul;
    this.empty = empty;
    this.store = store;
    /** Whether the archived conversations are shown (instead of the others). */
    this.showArchived = false;
    this.archivedBtn = h('button', {
      type: 'button',
      class: 'btn subtle small archived-toggle',
      onclick: () => {
        this.showArchived = !this.showArchived;
        this.render();
      },
    });
    /** @type {Map<string, {li: HTMLLIElement, sig: string}>} */
    this.rows = new Map();
    /** A backlog of many messages redraws once per frame, not once per message. */
    this.frame = 0;
    const redraw = () => {
      if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
    };
    for (const type of ['conversations', 'users', 'presence', 'typing', 'outbox']) {
      store.addEventListener(type, redraw);
    }
  }

  render() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    const store = this.store;
    const all = store.sortedConversations();
    const archived = all.filter((c) => c.settings?.archived).length;
    if (archived === 0) this.showArchived = false;
    const list = all.filter((c) => !!c.settings?.archived === this.showArchived);
    this.ul.setAttribute('aria-label', this.showArchived ? 'Archived conversations' : 'Conversations');
    this.archivedBtn.hidden = archived === 0;
    this.archivedBtn.textContent = this.showArchived ? 'Back to all chats' : `Archived (${archived})`;
    this.empty.hidden = all.length > 0 || !store.listLoaded;
    /** @type {Map<string, {li: HTMLLIElement, sig: string}>} */
    const next = new Map();
    let cursor = this.ul.firstElementChild;
    for (const c of list) {
      const view = this.describe(c);
      let row = this.rows.get(c.id);
      if (!row) {
        row = { li: h('li'), sig: '' };
      }
      if (row.sig !== view.sig) {
        this.fill(row.li, c, view);
        row.sig = view.sig;
      }
      next.set(c.id, row);
      if (row.li === cursor) cursor = cursor.nextElementSibling;
      else this.ul.insertBefore(row.li, cursor);
    }
    for (const [id, row] of this.rows) if (!next.has(id)) row.li.remove();
    this.rows = next;
  }

  /** What a row shows, and a signature to skip unchanged rows. @param {Conversation} c */
  describe(c) {
    const store = this.store;
    const title = store.titleOf(c);
    const peer = c.kind === 'direct' ? store.peerOf(c) : null;
    const online = peer !== null && store.presence.get(peer)?.status === 'online';
    const typers = store.typers(c.id);
    const pending = store.pendingIn(c.id);
    const last = c.last_message;
    let preview = 'No messages yet';
    let when = last?.created_at ?? null;
    if (typers.length) {
      preview = c.kind === 'group' ? `${store.nameOf(typers[0])} is typing…` : 'typing…';
    } else if (pending.length) {
      const p = pending[pending.length - 1];
      preview = `${p.failed ? 'Not sent' : 'You'}: ${p.body.slice(0, 140)}`;
      when = p.created_at;
    } else if (last) {
      const body =
        last.kind === 'system'
          ? systemText(last.body, last.sender_id, (id) => store.nameOf(id), store.me)
          : last.body.slice(0, 140);
      const from =
        last.kind === 'system'
          ? ''
          : last.sender_id === store.me
            ? 'You: '
            : c.kind === 'group'
              ? `${store.nameOf(last.sender_id)}: `
              : '';
      preview = from + body;
    }
    const current = store.openId === c.id;
    const muted = store.levelOf(c) !== 'all';
    const pinned = !!c.settings?.pinned;
    const sig = JSON.stringify([title, online, peer, preview, when && listTime(new Date(when)), c.unread, current, typers.length > 0, c.active, muted, pinned]);
    return { title, online, peer, preview, when, current, typing: typers.length > 0, muted, pinned, sig };
  }

  /**
   * @param {HTMLLIElement} li @param {Conversation} c
   * @param {ReturnType<ConversationList['describe']>} v
   */
  fill(li, c, v) {
    const unread = c.unread > 0 && !v.current;
    const label = [
      v.title,
      c.kind === 'group' ? 'group' : v.online ? 'online' : null,
      unread ? `${c.unread} unread` : null,
      v.muted ? 'muted' : null,
      v.pinned ? 'pinned' : null,
    ]
      .filter(Boolean)
      .join(', ');
    const previewId = `preview-${c.id}`;
    replace(
      li,
      h(
        'a',
        {
          href: `#/c/${c.id}`,
          class: `conv${unread ? ' unread' : ''}${c.active === false ? ' inactive' : ''}`,
          'aria-label': label,
          'aria-describedby': previewId,
          'aria-current': v.current ? 'page' : false,
        },
        h(
          'span',
          { class: 'avatar-wrap' },
          avatar(c.kind === 'group' ? `g${c.id}` : v.peer ?? c.id, v.title, c.kind === 'group'),
          c.kind === 'direct' && h('span', { class: `dot${v.online ? ' online' : ''}` }),
        ),
        h(
          'span',
          { class: 'conv-main' },
          h(
            'span',
            { class: 'conv-top' },
            h('span', { class: 'conv-title' }, v.title),
            v.muted && h('span', { class: 'conv-mark', title: 'Muted' }, icon('bellOff')),
            v.pinned && h('span', { class: 'conv-mark', title: 'Pinned' }, icon('pin')),
            v.when && h('time', { class: 'conv-time', datetime: v.when }, listTime(new Date(v.when))),
          ),
          h(
            'span',
            { class: 'conv-bottom' },
            h('span', { class: `conv-preview${v.typing ? ' typing' : ''}`, id: previewId }, v.preview),
            unread && h('span', { class: 'badge' }, c.unread > 999 ? '999+' : String(c.unread)),
          ),
        ),
      ),
    );
  }
}
