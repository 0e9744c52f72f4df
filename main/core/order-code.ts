// Order codes are what a customer types into a bank transfer, so they avoid characters that
// look alike on a phone screen (0/O, 1/I/L) and survive banks that upper-case, split or
// punctuate the text.
import { randomInt } from 'node:crypto';
import { DEFAULT_CODE_PREFIX } from './settings';

export const CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
export const CODE_SUFFIX_LENGTH = 8;

export { DEFAULT_CODE_PREFIX };

export function isValidPrefix(prefix: string): boolean {
  return /^[A-Z]{2,10}$/.test(prefix);
}

export function newOrderCode(prefix = DEFAULT_CODE_PREFIX, rand: (max: number) => number = randomInt): string {
  if (!isValidPrefix(prefix)) throw new RangeError(`order code prefix must be 2-10 letters A-Z, got ${prefix}`);
  let suffix = '';
  for (let i = 0; i < CODE_SUFFIX_LENGTH; i++) suffix += CODE_ALPHABET[rand(CODE_ALPHABET.length)];
  return prefix + suffix;
}

/** Upper-case and drop everything but letters and digits: what banks insert is spaces, dots, dashes. */
export function normaliseTransferText(text: string): string {
  return text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/đ/gi, 'D')
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, '');
}

const suffixChar = new RegExp(`^[${CODE_ALPHABET}]{${CODE_SUFFIX_LENGTH}}`);

/**
 * Every string in `text` that is shaped like an order code with this prefix, in order of appearance.
 * Separators are removed first, so neighbouring words may run into a candidate: callers confirm
 * each candidate against the orders that exist.
 */
export function findCodeCandidates(text: string, prefix = DEFAULT_CODE_PREFIX): string[] {
  const flat = normaliseTransferText(text);
  const out: string[] = [];
  let at = flat.indexOf(prefix);
  while (at !== -1) {
    const m = suffixChar.exec(flat.slice(at + prefix.length, at + prefix.length + CODE_SUFFIX_LENGTH));
    if (m) {
      const code = prefix + m[0];
      if (!out.includes(code)) out.push(code);
    }
    at = flat.indexOf(prefix, at + 1);
  }
  return out;
}
