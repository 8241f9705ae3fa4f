/** Offering image-set names while an image-set expression is typed (`tiger - overall`). */

const BARE = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const INDEX_PREFIX = /^\d+[-_ ]/;
const NAME_CHAR = /[A-Za-z0-9_.]/;
const QUOTES = "'\"`";

export interface Token {
  /** Start and end (exclusive) of the name being typed around the cursor. */
  start: number;
  end: number;
  prefix: string;
}

/** The partial set name that ends at the cursor (empty prefix right after an operator or at the start). */
export function tokenAt(text: string, cursor: number): Token | null {
  let start = cursor, end = cursor, prefix: string;
  const open = openQuote(text.slice(0, cursor));
  if (open >= 0) {
    // Inside a quoted name: everything since the quote, up to the closing quote if there is one.
    start = open;
    const close = text.indexOf(text[open], cursor);
    end = close < 0 ? text.length : close + 1;
    prefix = text.slice(open + 1, cursor);
  } else {
    while (start > 0 && NAME_CHAR.test(text[start - 1])) start--;
    while (end < text.length && NAME_CHAR.test(text[end])) end++;
    prefix = text.slice(start, cursor);
  }
  if (/^[\d.]/.test(prefix) && !/[A-Za-z_]/.test(prefix)) return null; // a number, not a name
  const before = text.slice(0, start).trimEnd();
  if (before && !/[+\-*/(]$/.test(before)) return null; // a name only follows an operator
  return { start, end, prefix };
}

/** Index of the quote that opens an unclosed quoted name in `text`, or -1. */
function openQuote(text: string): number {
  let open = -1;
  for (let i = 0; i < text.length; i++) {
    if (open >= 0) {
      if (text[i] === text[open]) open = -1;
    } else if (QUOTES.includes(text[i])) open = i;
  }
  return open;
}

/** How a set name is written in an expression: bare when possible (index prefix dropped), else quoted. */
export function spell(name: string): string {
  const short = name.replace(INDEX_PREFIX, "");
  if (BARE.test(short)) return short;
  if (BARE.test(name)) return name;
  return `'${name.replace(/'/g, "")}'`;
}

/** Set names matching the prefix: names that start with it first, then names that contain it. */
export function suggest(names: readonly string[], prefix: string, limit = 12): string[] {
  const p = prefix.toLowerCase();
  const starts: string[] = [];
  const contains: string[] = [];
  for (const name of names) {
    const forms = [name.toLowerCase(), spell(name).toLowerCase()];
    if (forms.some((f) => f.startsWith(p))) starts.push(name);
    else if (p && forms.some((f) => f.includes(p))) contains.push(name);
  }
  return [...starts, ...contains].slice(0, limit);
}

/** The text with the token replaced by a set name, and the cursor position after it. */
export function complete(text: string, token: Token, name: string): { text: string; cursor: number } {
  const word = spell(name);
  const next = text.slice(0, token.start) + word + text.slice(token.end);
  return { text: next, cursor: token.start + word.length };
}
