// Quitting while files are moving asks first. Nothing is lost if the owner says yes (transfers
// resume from their checkpoints), but a half-sent course is a surprise they should choose.
import { texts } from './i18n';
import type { Lang } from './types';

/** `user`: the tray's Quit, Cmd+Q, closing the window without close-to-tray. `system`: OS shutdown or log-off, an installer. */
export type QuitReason = 'user' | 'system';

export function shouldConfirmQuit(i: { activeTransfers: number; reason: QuitReason }): boolean {
  // The OS does not wait for a dialog while shutting down; asking would only lose the clean stop.
  return i.reason === 'user' && i.activeTransfers > 0;
}

export interface QuitDialog {
  type: 'question';
  message: string;
  detail: string;
  buttons: string[];
  defaultId: number;
  cancelId: number;
}

/** Button 0 keeps running, so Enter and Escape are both the safe answer. */
export function quitDialog(lang: Lang, activeTransfers: number): QuitDialog {
  const t = texts(lang).quit;
  return { type: 'question', message: t.message(activeTransfers), detail: t.detail, buttons: [t.keepRunning, t.quitAnyway], defaultId: 0, cancelId: 0 };
}

export function quitConfirmed(response: number): boolean {
  return response === 1;
}

export type QuitStep =
  /** Let this quit proceed: the core has stopped. */
  | 'exit'
  /** Hold it and show the dialog. */
  | 'ask'
  /** Hold it and stop the core, then quit again. */
  | 'shutdown'
  /** Hold it: a dialog is open or the core is already stopping. */
  | 'wait';

/**
 * The quit sequence as a small state machine. Electron's `before-quit` asks `request()` every time
 * (it fires again for the final `app.quit()` after the core has stopped).
 */
export class QuitGate {
  private phase: 'running' | 'asking' | 'stopping' | 'stopped' = 'running';

  get quitting(): boolean {
    return this.phase === 'stopping' || this.phase === 'stopped';
  }

  request(reason: QuitReason, activeTransfers: number): QuitStep {
    switch (this.phase) {
      case 'stopped':
        return 'exit';
      case 'stopping':
        return 'wait';
      case 'asking':
        // The OS is going down while the dialog is open: stop cleanly instead of waiting for an answer.
        if (reason === 'system') {
          this.phase = 'stopping';
          return 'shutdown';
        }
        return 'wait';
      case 'running':
        if (shouldConfirmQuit({ activeTransfers, reason })) {
          this.phase = 'asking';
          return 'ask';
        }
        this.phase = 'stopping';
        return 'shutdown';
    }
  }

  /** The dialog's answer; returns what to do next. */
  answered(quit: boolean): 'shutdown' | 'cancelled' | 'wait' {
    if (this.phase !== 'asking') return 'wait';
    this.phase = quit ? 'stopping' : 'running';
    return quit ? 'shutdown' : 'cancelled';
  }

  stopped(): void {
    this.phase = 'stopped';
  }
}
