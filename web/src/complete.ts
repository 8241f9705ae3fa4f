/** Offering image-set names while an image-set expression is typed (`tiger - overall`). */

const BARE = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const INDEX_PREFIX = /^\d+[-_ ]/;
const NAME_CHAR = /[A-Za-z0-9_.\-']/;

export interface Token {
  /** Start and end (exclusive) of the name being typed around the cursor. */
  start: number;
  end: number;
  prefix: string;
}

/** The partial set name that ends at the cursor (empty prefix right after an operator or at the start). */
export function tokenAt(text: string, cursor: number): Token | null {
  let start = cursor;
  while (start > 0 && NAME_CHAR.test(text[start - 1])) start--;
  let end = cursor;
  while (end < text.length && NAME_CHAR.test(text[end])) end++;
  const prefix = text.slice(start, cursor).replace(/^'/, "");
  if (/^[\d.]/.test(prefix) && !/[A-Za-z_]/.test(prefix)) return null; // a number, not a name
  const before = text.slice(0, start).trimEnd();
  if (before && !/[+\-*/(]$/.test(before)) return null; // a name only follows an operator
  return { start, end, prefix };
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
