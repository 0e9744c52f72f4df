// The sender check every IPC message passes before its handler runs (electron.ts calls it from
// its one registration wrapper). A message is trusted only from the main frame of a page on the
// admin origin: not from an iframe, not after a navigation elsewhere, not from a frame that is gone.
import { CHANNEL_PREFIX } from './types';
import { originOf } from './window-options';

export interface IpcSender {
  /** `event.senderFrame?.url`; null when the frame navigated away or was destroyed. */
  senderFrameUrl: string | null;
  isMainFrame: boolean;
  adminOrigin: string;
}

export type IpcVerdict = { ok: true } | { ok: false; reason: 'no-frame' | 'sub-frame' | 'foreign-origin' | 'bad-admin-origin' };

export function checkSender(s: IpcSender): IpcVerdict {
  const admin = originOf(s.adminOrigin);
  if (!admin) return { ok: false, reason: 'bad-admin-origin' };
  if (s.senderFrameUrl === null || s.senderFrameUrl === '') return { ok: false, reason: 'no-frame' };
  if (!s.isMainFrame) return { ok: false, reason: 'sub-frame' };
  let u: URL;
  try {
    u = new URL(s.senderFrameUrl);
  } catch {
    return { ok: false, reason: 'foreign-origin' };
  }
  if (u.username !== '' || u.password !== '' || originOf(s.senderFrameUrl) !== admin) {
    return { ok: false, reason: 'foreign-origin' };
  }
  return { ok: true };
}

export function isDriveshipChannel(channel: string): boolean {
  return channel.startsWith(CHANNEL_PREFIX) && channel.length > CHANNEL_PREFIX.length;
}
