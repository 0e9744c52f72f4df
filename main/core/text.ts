// Text from outside (webhook and API bodies, manifests, folder listings, Drive) may hold lone
// UTF-16 surrogates: JSON's "\ud800" escape makes one, and so does a Windows file name.
// SQLite stores them as bytes that are not UTF-8, which every later reader chokes on, so every
// entry point replaces them with U+FFFD before anything is stored.

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** `s` with each lone surrogate replaced by U+FFFD (String.prototype.toWellFormed). */
export function wellFormed(s: string): string {
  return s.replace(LONE_SURROGATE, '\uFFFD');
}

/** A JSON.parse reviver that makes every string (keys included) well formed. */
export function wellFormedReviver(this: unknown, _key: string, value: unknown): unknown {
  if (typeof value === 'string') return wellFormed(value);
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    // Keys are not passed through the reviver's value: rebuild the object when one needs it.
    let bad = false;
    for (const k of Object.keys(value)) if (wellFormed(k) !== k) bad = true;
    if (bad) return Object.fromEntries(Object.entries(value).map(([k, v]) => [wellFormed(k), v]));
  }
  return value;
}

/** A JSON escape that makes a surrogate (`\ud800`-`\udfff`), paired or not. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/** JSON.parse whose strings are all well formed. */
export function parseJsonWellFormed(text: string): unknown {
  // Without a surrogate in the text or among its escapes no string can hold a lone one: the plain
  // parse (several times faster than one with a reviver on a manifest of thousands of entries).
  if (!SURROGATE_ESCAPE.test(text) && (text as string & { isWellFormed(): boolean }).isWellFormed()) return JSON.parse(text);
  return JSON.parse(text, wellFormedReviver);
}
