// Changes to messages (docs/protocol.md, "Messages that change"): an edit, a delete for
// everyone, a reaction added or taken back, applied to the message they name. Pure
// functions: the store keeps the results.

/** @typedef {import('./api.js').Message} Message */
/** @typedef {import('./api.js').Reaction} Reaction */

/** The kinds of log entries that change another message rather than being one. */
export const CHANGE_KINDS = new Set(['edit', 'delete', 'delete_for_me', 'react', 'unreact']);

/** @param {Message} m */
export function isChange(m) {
  return CHANGE_KINDS.has(m.kind);
}

/**
 * `message` with `change` applied; the same object when the change is already in it (its
 * `changed_seq` is the newest change history included) or does not apply.
 * @param {Message} message @param {Message} change @param {string} me
 * @returns {Message}
 */
export function applyChange(message, change, me) {
  if (change.seq <= (message.changed_seq ?? 0)) return message;
  /** @type {Message} */
  const next = { ...message, changed_seq: change.seq };
  switch (change.kind) {
    case 'edit':
      if (message.deleted_at) return message;
      next.body = change.body;
      next.edited_at = change.created_at;
      next.mentions = change.mentions ?? [];
      return next;
    case 'delete':
      next.body = '';
      next.deleted_at = message.deleted_at ?? change.created_at;
      delete next.edited_at;
      next.mentions = [];
      next.reactions = [];
      return next;
    case 'react':
    case 'unreact':
      next.reactions = react(message.reactions ?? [], change.body, change.sender_id, me, change.kind === 'react');
      return next;
    default:
      return message;
  }
}

/**
 * The reactions after `user` added (or took back) `emoji`, counts and `me` kept right.
 * @param {Reaction[]} reactions @param {string} emoji @param {string} user @param {string} me
 * @param {boolean} add
 * @returns {Reaction[]}
 */
function react(reactions, emoji, user, me, add) {
  const out = reactions.map((r) => ({ ...r, user_ids: [...r.user_ids] }));
  let r = out.find((x) => x.emoji === emoji);
  if (add) {
    if (!r) {
      r = { emoji, count: 0, me: false, user_ids: [] };
      out.push(r);
    }
    if (!r.user_ids.includes(user)) r.user_ids.push(user);
  } else if (r) {
    r.user_ids = r.user_ids.filter((u) => u !== user);
  }
  for (const x of out) {
    x.count = x.user_ids.length;
    x.me = x.user_ids.includes(me);
  }
  return out.filter((x) => x.count > 0);
}

/** The emoji offered first in the reaction picker. */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];
