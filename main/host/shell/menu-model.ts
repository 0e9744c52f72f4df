// The tray menu as data: which items, their labels in the owner's language, and which are enabled.
// electron.ts maps it onto Menu.buildFromTemplate and binds each id to an action.
import { texts } from './i18n';
import type { Lang } from './types';

export type MenuItemId = 'status' | 'open' | 'pauseAll' | 'resumeAll' | 'openAtLogin' | 'quit';

export type MenuEntry =
  | { kind: 'item'; id: MenuItemId; label: string; enabled: boolean }
  | { kind: 'checkbox'; id: MenuItemId; label: string; enabled: boolean; checked: boolean }
  | { kind: 'separator' };

export interface MenuInputs {
  lang: Lang;
  /** False until an engine is wired in: pause and resume are then shown but disabled. */
  hasEngine: boolean;
  paused: boolean;
  activeTransfers: number;
  attention: number;
  openAtLogin: boolean;
  /** False where the OS offers no way to start at login (the item is then left out). */
  openAtLoginSupported: boolean;
}

export function statusLine(i: Pick<MenuInputs, 'lang' | 'paused' | 'activeTransfers' | 'attention'>): string {
  const t = texts(i.lang).menu;
  if (i.attention > 0) return t.statusAttention(i.attention);
  if (i.paused) return t.statusPaused;
  if (i.activeTransfers > 0) return t.statusWorking(i.activeTransfers);
  return t.statusIdle;
}

export function trayMenu(i: MenuInputs): MenuEntry[] {
  const t = texts(i.lang).menu;
  const entries: MenuEntry[] = [
    { kind: 'item', id: 'status', label: statusLine(i), enabled: false },
    { kind: 'separator' },
    { kind: 'item', id: 'open', label: t.open, enabled: true },
    { kind: 'separator' },
    { kind: 'item', id: 'pauseAll', label: t.pauseAll, enabled: i.hasEngine && !i.paused },
    { kind: 'item', id: 'resumeAll', label: t.resumeAll, enabled: i.hasEngine && i.paused },
    { kind: 'separator' },
  ];
  if (i.openAtLoginSupported) {
    entries.push({ kind: 'checkbox', id: 'openAtLogin', label: t.openAtLogin, enabled: true, checked: i.openAtLogin }, { kind: 'separator' });
  }
  entries.push({ kind: 'item', id: 'quit', label: t.quit, enabled: true });
  return entries;
}
