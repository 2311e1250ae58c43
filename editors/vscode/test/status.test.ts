import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { INITIAL_STATUS, pollDelayMs, reduceStatus, StatusEvent, StatusState, viewStatus } from '../src/status';

function run(events: StatusEvent[], from: StatusState = INITIAL_STATUS): StatusState {
  return events.reduce(reduceStatus, from);
}

const URL = 'http://127.0.0.1:8000';

describe('status state machine', () => {
  test('health 503 "loading" then 200 with a model name: loading, then ready (model)', () => {
    const loading = run([{ type: 'health', ok: false, status: 'loading' }]);
    assert.equal(loading.kind, 'loading');
    assert.match(viewStatus(loading, true, URL, 0).text, /Helios: loading/);
    const ready = run([{ type: 'health', ok: true, status: 'healthy', version: '0.1.0' }, { type: 'model', name: 'codellama:7b-code' }], loading);
    assert.equal(ready.kind, 'ready');
    const view = viewStatus(ready, true, URL, 0);
    assert.equal(view.text, '$(check) Helios: codellama:7b-code');
    assert.match(view.tooltip, /version 0\.1\.0/);
    assert.equal(view.warning, false);
  });

  test('503 with another status is an error, not loading', () => {
    const state = run([{ type: 'health', ok: false, status: 'failed' }]);
    assert.equal(state.kind, 'error');
    assert.equal(viewStatus(state, true, URL, 0).warning, true);
  });

  test('a refused connection: "not running", with a warning background', () => {
    const state = run([{ type: 'failed', kind: 'unreachable', message: 'ECONNREFUSED', now: 0 }]);
    assert.equal(state.kind, 'unreachable');
    const view = viewStatus(state, true, URL, 0);
    assert.equal(view.text, '$(debug-disconnect) Helios: not running');
    assert.match(view.tooltip, /Helios server not running/);
    assert.equal(view.warning, true);
  });

  test('while our own server starts, refused connections keep "starting"', () => {
    const state = run([{ type: 'starting' }, { type: 'failed', kind: 'unreachable', message: 'x', now: 0 }]);
    assert.equal(state.kind, 'starting');
    assert.equal(run([{ type: 'health', ok: false, status: 'loading' }], state).kind, 'loading');
    assert.equal(run([{ type: 'process_exited', message: 'exited with code 1' }], state).kind, 'unreachable');
  });

  test('429: rate-limited until Retry-After has passed, counting down', () => {
    const ready = run([{ type: 'health', ok: true, status: 'healthy' }]);
    const limited = run([{ type: 'failed', kind: 'rate_limited', message: 'busy', now: 1000, retryAfterMs: 2000 }], ready);
    assert.equal(limited.kind, 'rate_limited');
    assert.equal(limited.retryUntil, 3000);
    assert.equal(viewStatus(limited, true, URL, 1000).text, '$(watch) Helios: rate-limited (2s)');
    // a healthy /health does not end the back-off early
    assert.equal(run([{ type: 'health', ok: true, status: 'healthy' }], limited).kind, 'rate_limited');
    assert.equal(run([{ type: 'tick', now: 2999 }], limited).kind, 'rate_limited');
    // nor does the answer to a request that was already in flight
    assert.equal(run([{ type: 'completed', now: 1500 }], limited).kind, 'rate_limited');
    assert.equal(run([{ type: 'tick', now: 3000 }], limited).kind, 'ready');
  });

  test('completion 503 means loading; a later success means ready', () => {
    const state = run([
      { type: 'health', ok: true, status: 'healthy' },
      { type: 'failed', kind: 'loading', message: 'Model is not loaded', now: 0 },
    ]);
    assert.equal(state.kind, 'loading');
    assert.equal(run([{ type: 'completed', now: 0 }], state).kind, 'ready');
  });

  test('cancellations, timeouts, bad requests and one failed generation leave the state alone', () => {
    const ready = run([{ type: 'health', ok: true, status: 'healthy' }, { type: 'model', name: 'm' }]);
    for (const kind of ['aborted', 'timeout', 'invalid_request', 'server_error'] as const) {
      assert.equal(run([{ type: 'failed', kind, message: '', now: 0 }], ready), ready);
    }
  });

  test('a server that accepts connections but never answers is an error, once nothing else is known', () => {
    assert.equal(run([{ type: 'failed', kind: 'timeout', message: '', now: 0 }]).kind, 'error');
  });

  test('the model name survives loading and reconnects', () => {
    const state = run([
      { type: 'health', ok: true, status: 'healthy' },
      { type: 'model', name: 'smollm2' },
      { type: 'health', ok: false, status: 'loading' },
      { type: 'health', ok: true, status: 'healthy' },
    ]);
    assert.equal(state.kind, 'ready');
    assert.equal(state.model, 'smollm2');
  });

  test('completions off: the status bar says so whatever the server state', () => {
    const ready = run([{ type: 'health', ok: true, status: 'healthy' }]);
    assert.equal(viewStatus(ready, false, URL, 0).text, '$(circle-slash) Helios: off');
    assert.match(viewStatus(ready, false, URL, 0).tooltip, /turned off/);
  });

  test('polling is fast while starting or loading, slow when ready', () => {
    assert.equal(pollDelayMs({ kind: 'loading' }), 1000);
    assert.equal(pollDelayMs({ kind: 'starting' }), 1000);
    assert.equal(pollDelayMs({ kind: 'unreachable' }), 5000);
    assert.equal(pollDelayMs({ kind: 'ready' }), 15000);
  });
});
