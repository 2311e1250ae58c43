import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { abortSignalFrom } from '../src/cancellation';
import { Debouncer, delay } from '../src/debounce';
import { CancellationTokenSource } from './stub/vscode';

describe('delay', () => {
  test('resolves true after the wait', async () => {
    const started = performance.now();
    assert.equal(await delay(40), true);
    assert.ok(performance.now() - started >= 35);
  });

  test('resolves false as soon as the token is cancelled', async () => {
    const source = new CancellationTokenSource();
    const started = performance.now();
    const waiting = delay(5000, source.token);
    setTimeout(() => source.cancel(), 20);
    assert.equal(await waiting, false);
    assert.ok(performance.now() - started < 1000);
  });

  test('an already cancelled token never waits', async () => {
    const source = new CancellationTokenSource();
    source.cancel();
    assert.equal(await delay(5000, source.token), false);
  });
});

describe('Debouncer', () => {
  test('of a burst of keystrokes only the last one goes on', async () => {
    const debouncer = new Debouncer();
    const results: Promise<boolean>[] = [];
    for (let i = 0; i < 5; i++) {
      results.push(debouncer.wait(30));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.deepEqual(await Promise.all(results), [false, false, false, false, true]);
  });

  test('a zero wait still gives way to a newer call in the same tick', async () => {
    const debouncer = new Debouncer();
    const first = debouncer.wait(0);
    const second = debouncer.wait(0);
    assert.deepEqual(await Promise.all([first, second]), [false, true]);
  });

  test('cancellation by VS Code ends the wait', async () => {
    const debouncer = new Debouncer();
    const source = new CancellationTokenSource();
    const waiting = debouncer.wait(5000, source.token);
    source.cancel();
    assert.equal(await waiting, false);
    // and a later wait is not affected
    assert.equal(await debouncer.wait(1), true);
  });

  test('dispose ends a pending wait', async () => {
    const debouncer = new Debouncer();
    const waiting = debouncer.wait(5000);
    debouncer.dispose();
    assert.equal(await waiting, false);
  });
});

describe('abortSignalFrom', () => {
  test('follows the token and lets go of it', () => {
    const source = new CancellationTokenSource();
    const { signal, dispose } = abortSignalFrom(source.token);
    assert.equal(signal.aborted, false);
    source.cancel();
    assert.equal(signal.aborted, true);
    dispose();
  });

  test('after dispose a cancel no longer reaches the signal', () => {
    const source = new CancellationTokenSource();
    const { signal, dispose } = abortSignalFrom(source.token);
    dispose();
    source.cancel();
    assert.equal(signal.aborted, false);
  });

  test('an already cancelled token gives an aborted signal', () => {
    const source = new CancellationTokenSource();
    source.cancel();
    assert.equal(abortSignalFrom(source.token).signal.aborted, true);
  });
});
