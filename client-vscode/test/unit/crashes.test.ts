import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { CrashWindow } from '../../src/logic/crashes';

describe('CrashWindow', () => {
  test('restarts four times, gives up at the fifth crash in three minutes', () => {
    const crashes = new CrashWindow();
    const results = [0, 1000, 2000, 3000, 4000].map((t) => crashes.record(t));
    assert.deepEqual(results, ['restart', 'restart', 'restart', 'restart', 'give-up']);
  });
  test('crashes older than the window are forgotten', () => {
    const crashes = new CrashWindow(3, 1000);
    assert.equal(crashes.record(0), 'restart');
    assert.equal(crashes.record(10), 'restart');
    assert.equal(crashes.record(5000), 'restart');
    assert.equal(crashes.recent, 1);
  });
  test('a restart by the user starts afresh', () => {
    const crashes = new CrashWindow(2, 60_000);
    crashes.record(0);
    crashes.reset();
    assert.equal(crashes.record(1), 'restart');
  });
});
