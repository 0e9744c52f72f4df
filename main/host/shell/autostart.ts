// Start at login. Electron's setLoginItemSettings covers macOS and Windows; on Linux the desktop
// convention is a .desktop file in ~/.config/autostart, written here.
import { join } from 'node:path';

/** Started by the OS at login: go straight to the tray without showing the window. */
export const HIDDEN_ARG = '--hidden';

export function linuxAutostartPath(env: NodeJS.ProcessEnv, home: string): string {
  return join(env.XDG_CONFIG_HOME || join(home, '.config'), 'autostart', 'driveship.desktop');
}

/** Quotes an Exec argument per the Desktop Entry spec (reserved characters escaped inside double quotes). */
export function quoteExecArg(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `"${arg.replace(/(["`$\\])/g, '\\$1')}"`;
}

/**
 * The executable to start at login: the AppImage file itself when running from one (its mount
 * point changes every run), else the installed binary.
 */
export function linuxExecutable(env: NodeJS.ProcessEnv, execPath: string): string {
  return env.APPIMAGE || execPath;
}

export function linuxAutostartEntry(executable: string): string {
  return [
    '[Desktop Entry]',
    'Type=Application',
    'Name=driveship',
    `Exec=${quoteExecArg(executable)} ${HIDDEN_ARG}`,
    'X-GNOME-Autostart-enabled=true',
    'Terminal=false',
    '',
  ].join('\n');
}
