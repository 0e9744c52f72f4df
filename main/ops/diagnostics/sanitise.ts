// The sanitiser every text of the diagnostics bundle passes: known secret values removed (in every
// encoding they are likely to appear in), credentials whose value we do not know removed by shape,
// customers' emails and names masked, bank transfer texts and account numbers cut to what support
// needs. Pure string work: what the secrets are is collected elsewhere (secrets.ts).

const MASK = '[redacted]';

/** lan@example.com → l***@e******.com (the last label of the domain is kept). */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at <= 0) return maskWord(email);
  const local = [...email.slice(0, at)];
  const labels = email.slice(at + 1).split('.');
  const tld = labels.length > 1 ? labels.pop()! : '';
  const masked = labels.map((l) => {
    const c = [...l];
    return c.length ? c[0] + '*'.repeat(c.length - 1) : '';
  });
  return `${local[0]}***@${masked.join('.')}${tld ? '.' + tld : ''}`;
}

function maskWord(w: string): string {
  const c = [...w];
  if (c.length <= 1) return w;
  return c[0] + '*'.repeat(Math.min(3, c.length - 1));
}

/** Nguyễn Văn A → N*** V** A */
export function maskName(name: string): string {
  return name
    .split(/(\s+)/)
    .map((part) => (/^\s+$/.test(part) ? part : maskWord(part)))
    .join('');
}

const EMAIL_RE = /[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}/g;

/** Masks every email address found anywhere in a text. */
export function maskEmails(text: string): string {
  return text.replace(EMAIL_RE, (m) => maskEmail(m));
}

/**
 * Bank transfer text as the payer typed it (and the bank wrapped it): keeps tokens that carry
 * digits or start with the order-code prefix (what matching needs), masks the other words, which
 * are often the payer's name.
 */
export function maskTransferText(text: string, codePrefix: string): string {
  const prefix = codePrefix.toLowerCase();
  return maskEmails(text)
    .split(/(\s+)/)
    .map((tok) => {
      if (/^\s*$/.test(tok) || /\d/.test(tok) || tok.includes('*')) return tok;
      if (prefix && tok.toLowerCase().startsWith(prefix)) return tok;
      return tok.replace(/[\p{L}\p{M}]+/gu, (w) => maskWord(w));
    })
    .join('');
}

const fold = (s: string) =>
  s
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .replace(/[đĐ]/g, 'd')
    .toLowerCase();

/** Finds known customer names in any text (any case, with or without Vietnamese diacritics). */
class NameMatcher {
  private readonly byFirst = new Map<string, string[][]>();
  readonly size: number;

  constructor(names: Iterable<string>) {
    let n = 0;
    for (const raw of names) {
      const words = fold(raw).split(/[^\p{L}\p{N}]+/u).filter(Boolean);
      if (!words.length || words.join('').length < 2) continue;
      const list = this.byFirst.get(words[0]!) ?? [];
      list.push(words);
      this.byFirst.set(words[0]!, list);
      n++;
    }
    // Longest names first, so "Nguyen Van An" wins over "Nguyen".
    for (const list of this.byFirst.values()) list.sort((a, b) => b.length - a.length);
    this.size = n;
  }

  mask(text: string): string {
    if (!this.size) return text;
    const words: { start: number; end: number; folded: string }[] = [];
    for (const m of text.matchAll(/[\p{L}\p{M}\p{N}]+/gu)) words.push({ start: m.index!, end: m.index! + m[0].length, folded: fold(m[0]) });
    if (!words.length) return text;
    let out = '';
    let pos = 0;
    for (let i = 0; i < words.length; i++) {
      const cands = this.byFirst.get(words[i]!.folded);
      if (!cands) continue;
      for (const cand of cands) {
        if (i + cand.length > words.length) continue;
        let ok = true;
        for (let j = 1; j < cand.length && ok; j++) {
          const gap = text.slice(words[i + j - 1]!.end, words[i + j]!.start);
          ok = words[i + j]!.folded === cand[j] && /^[\s._-]{1,3}$/.test(gap);
        }
        if (!ok) continue;
        const start = words[i]!.start;
        const end = words[i + cand.length - 1]!.end;
        out += text.slice(pos, start) + maskName(text.slice(start, end));
        pos = end;
        i += cand.length - 1;
        break;
      }
    }
    return out + text.slice(pos);
  }
}

const SECRET_ENV_NAME = /KEY|SECRET|TOKEN|PASSWORD|PASSWD|PASS$|PWD|CREDENTIAL|AUTH|PRIVATE|COOKIE|SESSION/i;
// Named like secrets, but are not (and would blank out ordinary paths if treated as one).
const NOT_SECRET_NAMES = new Set(['PWD', 'OLDPWD', 'SSH_AUTH_SOCK', 'XAUTHORITY', 'GPG_AGENT_INFO', 'DBUS_SESSION_BUS_ADDRESS', 'SESSION_MANAGER', 'DESKTOP_SESSION', 'XDG_SESSION_ID', 'XDG_SESSION_TYPE', 'XDG_SESSION_CLASS', 'XDG_SESSION_DESKTOP', 'DRIVESHIP_ALLOW_UNAUTHENTICATED_WEBHOOK']);
const NOT_SECRET_VALUE = new Set(['true', 'false', 'null', 'undefined', 'none', 'yes', 'no', 'on', 'off']);

/** A variable or setting named like a credential (KEY, SECRET, TOKEN, PASSWORD, ...). */
export function looksLikeSecretName(name: string): boolean {
  return SECRET_ENV_NAME.test(name);
}

/** Secret values from an environment: variables named like secrets, and passwords inside URLs. */
export function secretsFromEnv(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!value) continue;
    if (looksLikeSecretName(name) && !NOT_SECRET_NAMES.has(name) && value.length >= 4 && !NOT_SECRET_VALUE.has(value.toLowerCase())) out.push(value);
    for (const m of value.matchAll(/\/\/[^/:@\s]+:([^@\s/]{4,})@/g)) out.push(m[1]!);
  }
  return out;
}

export interface Sanitizer {
  /**
   * Every secret value removed, credentials in URLs and headers removed, emails masked, and
   * (unless names is false: JSON text, whose keys must survive) known customer names masked.
   */
  text(s: string, opts?: { names?: boolean }): string;
  /** The same over every string of a JSON value (keys kept). */
  value<T>(v: T): T;
  /** True when a text still holds a known secret (the last check before anything is written). */
  leaks(s: string): boolean;
  readonly secretCount: number;
}

export function createSanitizer(opts: { secrets: Iterable<string | null | undefined>; names?: Iterable<string> }): Sanitizer {
  const variants = new Set<string>();
  for (const s of opts.secrets) {
    if (typeof s !== 'string') continue;
    const v = s.trim();
    if (v.length < 4) continue;
    variants.add(v);
    variants.add(JSON.stringify(v).slice(1, -1));
    variants.add(JSON.stringify(JSON.stringify(v)).slice(3, -3));
    try {
      variants.add(encodeURIComponent(v));
    } catch {
      /* lone surrogate */
    }
    variants.add(Buffer.from(v).toString('base64').replace(/=+$/, ''));
  }
  const list = [...variants].filter((v) => v.length >= 4).sort((a, b) => b.length - a.length);
  const names = new NameMatcher(opts.names ?? []);

  const removeSecrets = (s: string): string => {
    let out = s;
    for (const v of list) if (out.includes(v)) out = out.split(v).join(MASK);
    return out;
  };
  const text = (s: string, o: { names?: boolean } = {}): string => {
    let out = removeSecrets(s);
    // Credentials whose value we do not know: auth headers, URL user:password, signed-URL parameters.
    out = out.replace(/\b(Bearer|Apikey|Basic|Token)(\s+)[A-Za-z0-9._~+\/=\-]{8,}/gi, `$1$2${MASK}`);
    out = out.replace(/(\/\/[^/:@\s"']+:)[^@\s/"']+@/g, `$1${MASK}@`);
    out = out.replace(/([?&;](?:[^=&\s"'#]*(?:sig|token|key|secret|auth|cred|pass|code)[^=&\s"'#]*)=)[^&\s"'#]+/gi, `$1${MASK}`);
    out = maskEmails(out);
    if (o.names !== false) out = names.mask(out);
    return out;
  };
  const value = <T>(v: T): T => walk(v, 0) as T;
  function walk(v: unknown, depth: number): unknown {
    if (typeof v === 'string') return text(v);
    if (v === null || typeof v !== 'object' || depth > 20) return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[removeSecrets(k)] = walk(x, depth + 1);
    return out;
  }
  return { text, value, leaks: (s) => list.some((v) => s.includes(v)), secretCount: list.length };
}

export function maskEmailOrNull(v: unknown): string | null {
  return typeof v === 'string' ? maskEmail(v) : null;
}

/** A bank account number: the last 4 digits are enough to tell accounts apart. */
export function maskAccount(a: string): string {
  return a.length > 4 ? '*'.repeat(Math.min(6, a.length - 4)) + a.slice(-4) : a;
}
