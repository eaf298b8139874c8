// Text for people: times, days, counts, system notices, avatars' initials and colours.
// Pure functions, no DOM.

/**
 * Unicode code points (scalar values for well-formed text): what the server's 99,999-character
 * limit counts. A loop rather than [...text].length so a 100,000-character draft costs no
 * array on every keystroke.
 * @param {string} text
 */
export function codePoints(text) {
  let n = text.length;
  for (let i = 0; i < text.length - 1; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const weekdayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long' });
const shortDateFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const longDateFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'long',
  day: 'numeric',
  month: 'long',
  year: 'numeric',
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });

/** Local calendar day, for grouping. @param {Date} d */
export function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** Whole local days from `d` to today (0 = today). @param {Date} d */
function daysAgo(d) {
  const start = (/** @type {Date} */ x) => new Date(x.getFullYear(), x.getMonth(), x.getDate());
  return Math.round((start(new Date()).getTime() - start(d).getTime()) / 86_400_000);
}

/** "Today", "Yesterday", "Monday", or a full date. @param {Date} d */
export function dayLabel(d) {
  const ago = daysAgo(d);
  if (ago === 0) return 'Today';
  if (ago === 1) return 'Yesterday';
  if (ago > 1 && ago < 7) return weekdayFormat.format(d);
  return longDateFormat.format(d);
}

/** @param {Date} d */
export function timeLabel(d) {
  return timeFormat.format(d);
}

/** @param {Date} d */
export function fullLabel(d) {
  return fullFormat.format(d);
}

/** Time for the conversation list: a time today, else a day. @param {Date} d */
export function listTime(d) {
  const ago = daysAgo(d);
  if (ago === 0) return timeFormat.format(d);
  if (ago === 1) return 'Yesterday';
  if (ago > 1 && ago < 7) return weekdayFormat.format(d).slice(0, 3);
  return shortDateFormat.format(d);
}

/** "last seen 5 minutes ago". @param {string | null} iso */
export function lastSeen(iso) {
  if (!iso) return 'offline';
  const d = new Date(iso);
  const minutes = Math.floor((Date.now() - d.getTime()) / 60_000);
  if (minutes < 1) return 'last seen just now';
  if (minutes < 60) return `last seen ${minutes} min ago`;
  const ago = daysAgo(d);
  if (ago === 0) return `last seen today at ${timeFormat.format(d)}`;
  if (ago === 1) return `last seen yesterday at ${timeFormat.format(d)}`;
  return `last seen ${shortDateFormat.format(d)}`;
}

/**
 * The sentence for a system message ({"event": "member_added", "user_id": "5"}).
 * @param {string} body @param {string} actor who caused it @param {(id: string) => string} nameOf
 * @param {string} me
 */
export function systemText(body, actor, nameOf, me) {
  /** @type {any} */
  let e = {};
  try {
    e = JSON.parse(body);
  } catch {
    return 'The conversation changed.';
  }
  const who = actor === me ? 'You' : nameOf(actor);
  const whom = e.user_id === me ? 'you' : nameOf(e.user_id);
  switch (e.event) {
    case 'group_created':
      return `${who} created the group “${e.title}”`;
    case 'title_changed':
      return `${who} renamed the group to “${e.title}”`;
    case 'member_added':
      return `${who} added ${whom}`;
    case 'member_removed':
      return `${who} removed ${whom}`;
    case 'member_left':
      return `${e.user_id === me ? 'You' : nameOf(e.user_id)} left`;
    default:
      return 'The conversation changed.';
  }
}

/** Up to two letters for an avatar: "Ada Lovelace" -> "AL", "bob" -> "B". @param {string} name */
export function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return '?';
  const first = [...words[0]][0] ?? '';
  const last = words.length > 1 ? ([...words[words.length - 1]][0] ?? '') : '';
  return (first + last).toUpperCase();
}

/** One of eight avatar colours, stable for an id. @param {string} id */
export function toneOf(id) {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) % 9973;
  return h % 8;
}
