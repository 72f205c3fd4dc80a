import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { RestartQueue } from '../../src/logic/restartQueue';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('RestartQueue', () => {
  test('one request, one restart', async () => {
    let runs = 0;
    const queue = new RestartQueue(async () => {
      runs++;
    });
    await queue.request();
    assert.equal(runs, 1);
    assert.equal(queue.busy, false);
  });

  test('requests during a restart collapse into exactly one more', async () => {
    const gates = [deferred(), deferred()];
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const queue = new RestartQueue(async () => {
      const gate = gates[runs++];
      active++;
      maxActive = Math.max(maxActive, active);
      await gate.promise;
      active--;
    });
    const first = queue.request();
    const second = queue.request();
    const third = queue.request();
    const fourth = queue.request();
    assert.equal(second, third);
    assert.equal(third, fourth);
    await new Promise((r) => setImmediate(r));
    gates[0].resolve();
    await first;
    await new Promise((r) => setImmediate(r));
    gates[1].resolve();
    await Promise.all([second, third, fourth]);
    assert.equal(runs, 2);
    assert.equal(maxActive, 1, 'restarts never overlap');
    assert.equal(queue.count, 2);
  });

  test('a failed restart does not block the next one and reaches its caller', async () => {
    let runs = 0;
    const queue = new RestartQueue(async () => {
      runs++;
      if (runs === 1) {
        throw new Error('boom');
      }
    });
    const first = queue.request();
    const second = queue.request();
    await assert.rejects(first, /boom/);
    await second;
    assert.equal(runs, 2);
    await queue.request();
    assert.equal(runs, 3);
  });

  test('a request after the queued one has started waits for a new run', async () => {
    const gates = [deferred(), deferred(), deferred()];
    let runs = 0;
    const queue = new RestartQueue(async () => {
      await gates[runs++].promise;
    });
    void queue.request();
    const queued = queue.request();
    gates[0].resolve();
    await new Promise((r) => setTimeout(r, 5));
    // The queued run is now running; a new request must get a run of its own.
    const later = queue.request();
    assert.notEqual(later, queued);
    gates[1].resolve();
    await queued;
    gates[2].resolve();
    await later;
    assert.equal(runs, 3);
  });
});
