// The shell's own settings file (`<userData>/shell.json`). Whatever the renderer sends over IPC is
// parsed here before it touches anything: unknown keys and wrong types are refused.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { ShellPreferences, ShellPreferencesPatch } from './types';

export const DEFAULT_PREFERENCES: ShellPreferences = {
  openAtLogin: false,
  closeToTray: true,
  notify: { payments: true, deliveries: true, failures: true, alerts: true },
};

const notifySchema = z.strictObject({
  payments: z.boolean(),
  deliveries: z.boolean(),
  failures: z.boolean(),
  alerts: z.boolean(),
});

const prefsSchema = z.strictObject({
  openAtLogin: z.boolean(),
  closeToTray: z.boolean(),
  notify: notifySchema,
});

const patchSchema = z.strictObject({
  openAtLogin: z.boolean().optional(),
  closeToTray: z.boolean().optional(),
  notify: notifySchema.partial().optional(),
});

export class PreferencesError extends Error {
  readonly code = 'SHELL_PREFERENCES_INVALID';
}

export function parsePatch(input: unknown): ShellPreferencesPatch {
  const r = patchSchema.safeParse(input);
  if (!r.success) throw new PreferencesError(`Invalid preferences: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ')}`);
  return r.data;
}

export function applyPatch(current: ShellPreferences, patch: ShellPreferencesPatch): ShellPreferences {
  return {
    openAtLogin: patch.openAtLogin ?? current.openAtLogin,
    closeToTray: patch.closeToTray ?? current.closeToTray,
    notify: { ...current.notify, ...stripUndefined(patch.notify ?? {}) },
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A missing or damaged file gives the defaults (the file only holds conveniences, never data). */
export function loadPreferences(file: string): ShellPreferences {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return structuredClone(DEFAULT_PREFERENCES);
  }
  const whole = prefsSchema.safeParse(raw);
  if (whole.success) return whole.data;
  // Keep what is still valid from an older or hand-edited file.
  const partial = patchSchema.safeParse(raw);
  return partial.success ? applyPatch(DEFAULT_PREFERENCES, partial.data) : structuredClone(DEFAULT_PREFERENCES);
}

export function savePreferences(file: string, prefs: ShellPreferences): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(prefs, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}
