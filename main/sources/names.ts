// File names customers see: one rule for every source (manifest paths, local folder listings,
// Drive folder listings). A name reaches a customer's Drive and their mail, so it must say what
// it is: no control characters (a newline forges a line in a listing), no bidirectional
// overrides, embeddings or isolates (U+202E turns "cod.exe" into "exe.doc" on screen), and no
// path tricks once normalised.
import { wellFormed } from '../core/text';

// C0, DEL, C1; line and paragraph separators; Arabic letter mark, LRM/RLM, embeddings and
// overrides (U+202A-U+202E), isolates (U+2066-U+2069).
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
// eslint-disable-next-line no-control-regex
const FORBIDDEN_ALL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** A name for messages: invisible and direction-changing characters shown as \uXXXX. */
export function showName(s: string): string {
  return JSON.stringify(wellFormed(s).replace(FORBIDDEN_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** Why a relative product path is unsafe, or null. `path` should already be normalised. */
export function unsafePathReason(path: string): string | null {
  if (path.length === 0) return 'empty';
  if (path !== wellFormed(path)) return 'broken UTF-16 (a lone surrogate)';
  const bad = FORBIDDEN.exec(path);
  if (bad) {
    const cp = bad[0].charCodeAt(0);
    const what = cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ? 'control character' : cp === 0x2028 || cp === 0x2029 ? 'line separator' : 'bidirectional control character';
    return `${what} U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  if (path.startsWith('/')) return 'absolute';
  if (/^[A-Za-z]:/.test(path)) return 'drive letter';
  if (path.includes('\\')) return 'backslash';
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return `"${segment}" segment`;
  }
  return null;
}

/**
 * The form of a product path that is stored and shown: lone surrogates become U+FFFD and the
 * text is NFC (so "é" typed on macOS and on Windows is one name). Checks come after normalising:
 * what is checked is what is stored.
 */
export function normalisePath(path: string): string {
  return wellFormed(path).normalize('NFC');
}
