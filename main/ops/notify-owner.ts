// Optional owner alerts: when an alert is raised (once per alert, never once per failing
// delivery), tell the owner by email and/or a Telegram bot, so that nothing fails silently while
// nobody looks at the app. Channels are read on every alert, so Settings changes apply at once.
// A channel that fails is logged (without its token) and retried once; it never throws into the app.
import { alertText, type AlertLang } from '../core/alert-texts';
import type { Bus, BusEvents } from '../platform/bus';
import type { Logger } from '../platform/log';
import { createSmtpTransport, type SmtpConfig } from '../platform/mail';

export interface OwnerChannels {
  /** Email to this address through the shop's SMTP settings. */
  email?: { to: string } | null;
  /** A Telegram bot: the token from @BotFather and the owner's chat id. */
  telegram?: { botToken: string; chatId: string } | null;
}

export interface OwnerNotifyOptions {
  bus: Bus;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  channels: () => OwnerChannels;
  /** The shop's SMTP settings (null: email off). */
  smtp?: () => SmtpConfig | null;
  shopName?: () => string;
  /** The shop's language (Settings → language): alerts are sent in it. */
  language?: () => AlertLang;
  /** Lowest level sent (default 'warning'). */
  minLevel?: 'info' | 'warning' | 'error';
  /** The same alert code is sent at most once per this long (default 1 hour), even if raised again. */
  throttleMs?: number;
  /** Telegram's API root (tests point it at a local stand-in). */
  telegramApiBase?: string;
  fetch?: typeof fetch;
  retryDelayMs?: number;
  now?: () => number;
}

export interface OwnerNotifier {
  /** Resolves when every send started so far has finished (tests, shutdown). */
  idle(): Promise<void>;
  stop(): void;
  /** Sends a test message through every configured channel now (the Settings "Send test" button). */
  test(): Promise<{ email: 'sent' | 'off' | string; telegram: 'sent' | 'off' | string }>;
}

const RANK = { info: 0, warning: 1, error: 2 } as const;

const OWNER_WORDS: Record<AlertLang, { attention: string; warning: string; open: string }> = {
  en: { attention: 'needs attention', warning: 'warning', open: 'Open driveship to see the details.' },
  vi: { attention: 'cần bạn xử lý', warning: 'cảnh báo', open: 'Mở driveship để xem chi tiết.' },
};

export function startOwnerNotifications(opts: OwnerNotifyOptions): OwnerNotifier {
  const now = opts.now ?? Date.now;
  const throttle = opts.throttleMs ?? 60 * 60_000;
  const min = RANK[opts.minLevel ?? 'warning'];
  const lastSent = new Map<string, number>();
  const pending = new Set<Promise<unknown>>();
  const doFetch = opts.fetch ?? fetch;
  const apiBase = (opts.telegramApiBase ?? 'https://api.telegram.org').replace(/\/$/, '');
  let stopped = false;

  const shop = () => opts.shopName?.() ?? 'driveship';
  /** Error text with the bot token taken out (it is part of Telegram's URL). */
  const clean = (msg: string, secrets: (string | null | undefined)[]) => {
    let out = msg;
    for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('[redacted]');
    return out;
  };

  async function sendEmail(to: string, subject: string, text: string): Promise<void> {
    const c = opts.smtp?.();
    if (!c) throw new Error('SMTP is not configured');
    const transport = createSmtpTransport(c);
    try {
      await transport.sendMail({ from: c.from, to, subject, text });
    } finally {
      transport.close();
    }
  }

  async function sendTelegram(botToken: string, chatId: string, text: string): Promise<void> {
    const res = await doFetch(`${apiBase}/bot${botToken}/sendMessage`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ chat_id: chatId, text: text.slice(0, 4000), disable_web_page_preview: true }),
      signal: AbortSignal.timeout(15_000),
    });
    const body = await res.text();
    if (!res.ok) throw new Error(`Telegram answered ${res.status}: ${body.slice(0, 200)}`);
  }

  const withRetry = async (what: string, fn: () => Promise<void>, secrets: (string | null | undefined)[]) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await fn();
        return 'sent';
      } catch (err) {
        const msg = clean(String((err as Error)?.message ?? err), secrets);
        if (attempt >= 2 || stopped) {
          opts.log.warn({ channel: what, error: msg }, 'could not notify the owner');
          return msg;
        }
        await new Promise((r) => setTimeout(r, opts.retryDelayMs ?? 5_000).unref());
      }
    }
  };

  const track = <T>(p: Promise<T>): Promise<T> => {
    pending.add(p);
    p.finally(() => pending.delete(p)).catch(() => undefined);
    return p;
  };

  async function send(subject: string, text: string) {
    const ch = opts.channels();
    const out = { email: 'off' as string, telegram: 'off' as string };
    const jobs: Promise<void>[] = [];
    if (ch.email?.to) {
      const to = ch.email.to;
      const smtpPassword = opts.smtp?.()?.password;
      jobs.push(withRetry('email', () => sendEmail(to, subject, text), [smtpPassword]).then((r) => void (out.email = r)));
    }
    if (ch.telegram?.botToken && ch.telegram.chatId) {
      const { botToken, chatId } = ch.telegram;
      jobs.push(withRetry('telegram', () => sendTelegram(botToken, chatId, `${subject}\n\n${text}`), [botToken]).then((r) => void (out.telegram = r)));
    }
    await Promise.all(jobs);
    return out;
  }

  const onAlert = (a: BusEvents['alert']) => {
    if (stopped || !a.raised || RANK[a.level] < min) return;
    const t = now();
    const last = lastSent.get(a.code);
    if (last !== undefined && t - last < throttle) return;
    lastSent.set(a.code, t);
    const lang = opts.language?.() ?? 'en';
    const said = alertText(a.code, lang, { message: a.message });
    const words = OWNER_WORDS[lang];
    const subject = `${shop()}: ${a.level === 'error' ? words.attention : words.warning}: ${said.message}`;
    const when = new Date(t).toLocaleString(lang === 'vi' ? 'vi-VN' : 'en-GB', { timeZone: 'Asia/Ho_Chi_Minh' });
    const text = `${said.message}\n\n${said.action ? `${said.action}\n\n` : ''}${words.open}\n(${when}; ${a.code})`;
    track(send(subject, text)).catch((err) => opts.log.error({ err }, 'owner notification failed'));
  };
  const off = opts.bus.on('alert', onAlert);

  return {
    idle: async () => {
      while (pending.size) await Promise.allSettled([...pending]);
    },
    stop: () => {
      stopped = true;
      off();
    },
    test: () => track(send(`${shop()}: test notification`, 'This is a test from driveship: owner notifications work.')),
  };
}
