// Numbers, money, sizes and times the way the owner reads them. Times are always shown in
// Asia/Ho_Chi_Minh, whatever the machine's zone is.
import { formatVnd } from '../../main/core/money';

export const SHOP_TIME_ZONE = 'Asia/Ho_Chi_Minh';
export type Lang = 'vi' | 'en';

export interface Units {
  hours: string;
  minutes: string;
  seconds: string;
}

export interface Formatters {
  vnd: (amount: number) => string;
  number: (n: number) => string;
  dateTime: (ms: number) => string;
  date: (ms: number) => string;
  time: (ms: number) => string;
  relative: (ms: number, now?: number) => string;
  bytes: (n: number) => string;
  speed: (bytesPerSec: number) => string;
  duration: (sec: number) => string;
}

const BYTE_UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

export function makeFormatters(lang: Lang, units: Units): Formatters {
  const locale = lang === 'vi' ? 'vi-VN' : 'en-GB';
  const num = new Intl.NumberFormat(locale);
  const oneDecimal = new Intl.NumberFormat(locale, { maximumFractionDigits: 1, minimumFractionDigits: 0 });
  const dateTime = new Intl.DateTimeFormat(locale, {
    timeZone: SHOP_TIME_ZONE,
    day: '2-digit',
    month: '2-digit',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  });
  const date = new Intl.DateTimeFormat(locale, { timeZone: SHOP_TIME_ZONE, day: '2-digit', month: '2-digit', year: 'numeric' });
  const time = new Intl.DateTimeFormat(locale, { timeZone: SHOP_TIME_ZONE, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const rel = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' });

  const bytes = (n: number): string => {
    if (!Number.isFinite(n) || n < 0) return '–';
    let i = 0;
    let v = n;
    while (v >= 1024 && i < BYTE_UNITS.length - 1) {
      v /= 1024;
      i++;
    }
    return `${i === 0 ? num.format(v) : oneDecimal.format(v)} ${BYTE_UNITS[i]}`;
  };

  return {
    vnd: (amount) => formatVnd(amount),
    number: (n) => num.format(n),
    dateTime: (ms) => dateTime.format(ms),
    date: (ms) => date.format(ms),
    time: (ms) => time.format(ms),
    relative: (ms, now = Date.now()) => {
      const s = Math.round((ms - now) / 1000);
      const a = Math.abs(s);
      if (a < 60) return rel.format(s, 'second');
      if (a < 3600) return rel.format(Math.round(s / 60), 'minute');
      if (a < 86400) return rel.format(Math.round(s / 3600), 'hour');
      return rel.format(Math.round(s / 86400), 'day');
    },
    bytes,
    speed: (bps) => `${bytes(bps)}/s`,
    duration: (sec) => {
      if (!Number.isFinite(sec) || sec < 0) return '–';
      const s = Math.round(sec);
      const h = Math.floor(s / 3600);
      const m = Math.floor((s % 3600) / 60);
      const r = s % 60;
      if (h > 0) return `${h} ${units.hours} ${m} ${units.minutes}`;
      if (m > 0) return `${m} ${units.minutes} ${r} ${units.seconds}`;
      return `${r} ${units.seconds}`;
    },
  };
}
