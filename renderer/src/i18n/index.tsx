// The UI speaks Vietnamese and English. `en` defines the keys; `vi` must have exactly the same
// ones (the compiler checks). The choice comes from the system locale, can be switched, and is
// remembered on this machine.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { makeFormatters, type Formatters, type Lang } from '../format';
import { en, type MessageKey } from './en';
import { vi } from './vi';

export type { MessageKey };
export type { Lang };

const LANG_KEY = 'driveship.lang';
const dicts: Record<Lang, Record<MessageKey, string>> = { en, vi };

export function detectLang(): Lang {
  try {
    const saved = localStorage.getItem(LANG_KEY);
    if (saved === 'vi' || saved === 'en') return saved;
  } catch {
    /* storage unavailable */
  }
  const langs = navigator.languages?.length ? navigator.languages : [navigator.language];
  return langs.some((l) => l?.toLowerCase().startsWith('vi')) ? 'vi' : 'en';
}

export type Vars = Record<string, string | number>;

function interpolate(s: string, vars?: Vars): string {
  if (!vars) return s;
  return s.replace(/\{(\w+)\}/g, (m, k: string) => (k in vars ? String(vars[k]) : m));
}

export interface I18n {
  lang: Lang;
  setLang: (l: Lang) => void;
  t: (key: MessageKey, vars?: Vars) => string;
  /** A count: uses `<key>.one` for exactly one when the language has it; `{n}` is the count. */
  tn: (key: MessageKey, n: number, vars?: Vars) => string;
  /** For keys built at run time (a status, an error code): falls back when the key is unknown. */
  tx: (key: string, fallback: string, vars?: Vars) => string;
  has: (key: string) => key is MessageKey;
  fmt: Formatters;
}

const Ctx = createContext<I18n | null>(null);

export function I18nProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Lang>(detectLang);
  const setLang = useCallback((l: Lang) => {
    setLangState(l);
    try {
      localStorage.setItem(LANG_KEY, l);
    } catch {
      /* storage unavailable: the choice lasts this session */
    }
  }, []);
  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);
  const value = useMemo<I18n>(() => {
    const d = dicts[lang];
    const has = (key: string): key is MessageKey => Object.prototype.hasOwnProperty.call(d, key);
    const t = (key: MessageKey, vars?: Vars) => interpolate(d[key], vars);
    return {
      lang,
      setLang,
      t,
      tn: (key, n, vars) => {
        const one = `${key}.one`;
        return t(n === 1 && has(one) ? one : key, { n: n.toLocaleString(lang === 'vi' ? 'vi-VN' : 'en-GB'), ...vars });
      },
      has,
      tx: (key, fallback, vars) => (has(key) ? t(key, vars) : interpolate(fallback, vars)),
      fmt: makeFormatters(lang, { hours: d['unit.hours'], minutes: d['unit.minutes'], seconds: d['unit.seconds'] }),
    };
  }, [lang, setLang]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useI18n(): I18n {
  const v = useContext(Ctx);
  if (!v) throw new Error('useI18n outside I18nProvider');
  return v;
}
