import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { QuitGate, quitConfirmed, quitDialog, shouldConfirmQuit } from '../../../main/host/shell/quit-guard';

describe('shouldConfirmQuit', () => {
  test('asks only when the owner quits while transfers run', () => {
    assert.equal(shouldConfirmQuit({ activeTransfers: 0, reason: 'user' }), false);
    assert.equal(shouldConfirmQuit({ activeTransfers: 2, reason: 'user' }), true);
  });
  test('never blocks an OS shutdown', () => {
    assert.equal(shouldConfirmQuit({ activeTransfers: 5, reason: 'system' }), false);
  });
});

describe('quitDialog', () => {
  test('the safe answer (keep running) is the default and the cancel', () => {
    const d = quitDialog('en', 3);
    assert.equal(d.message, '3 transfers are running. Quit anyway?');
    assert.deepEqual(d.buttons, ['Keep running', 'Quit anyway']);
    assert.equal(d.defaultId, 0);
    assert.equal(d.cancelId, 0);
    assert.equal(quitConfirmed(0), false);
    assert.equal(quitConfirmed(1), true);
  });
  test('Vietnamese', () => {
    const d = quitDialog('vi', 1);
    assert.equal(d.message, 'Đang chuyển 1 tệp. Vẫn thoát?');
    assert.deepEqual(d.buttons, ['Tiếp tục chạy', 'Vẫn thoát']);
  });
});

describe('QuitGate', () => {
  test('idle: stop the core, then let the final quit through', () => {
    const g = new QuitGate();
    assert.equal(g.quitting, false);
    assert.equal(g.request('user', 0), 'shutdown');
    assert.equal(g.quitting, true);
    assert.equal(g.request('user', 0), 'wait');
    g.stopped();
    assert.equal(g.request('user', 0), 'exit');
  });

  test('busy: ask; "keep running" returns to normal, and the next quit asks again', () => {
    const g = new QuitGate();
    assert.equal(g.request('user', 2), 'ask');
    assert.equal(g.request('user', 2), 'wait'); // a second Cmd+Q while the dialog is open
    assert.equal(g.answered(false), 'cancelled');
    assert.equal(g.quitting, false);
    assert.equal(g.request('user', 2), 'ask');
    assert.equal(g.answered(true), 'shutdown');
    assert.equal(g.quitting, true);
    g.stopped();
    assert.equal(g.request('user', 2), 'exit');
  });

  test('an OS shutdown while the dialog is open stops at once', () => {
    const g = new QuitGate();
    assert.equal(g.request('user', 1), 'ask');
    assert.equal(g.request('system', 1), 'shutdown');
    assert.equal(g.answered(false), 'wait'); // the late answer changes nothing
    assert.equal(g.quitting, true);
  });

  test('an OS shutdown while busy does not ask', () => {
    assert.equal(new QuitGate().request('system', 9), 'shutdown');
  });
});
