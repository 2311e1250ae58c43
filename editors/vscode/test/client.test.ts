import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeliosClient, HeliosError, parseRetryAfter } from '../src/client';
import { freePort } from './helpers/real-server';

const request = {
  code: 'x = ',
  suffix: '',
  language: 'python',
  position: { line: 0, character: 4 },
  filename: 'x.py',
  max_tokens: 8,
  temperature: 0,
};

describe('Retry-After', () => {
  test('delta-seconds', () => {
    assert.equal(parseRetryAfter('1'), 1000);
    assert.equal(parseRetryAfter(' 3 '), 3000);
    assert.equal(parseRetryAfter('0'), 0);
  });
  test('an HTTP date', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', now), 5000);
  });
  test('absent, malformed or absurd', () => {
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter('-1'), undefined);
    assert.equal(parseRetryAfter('99999999'), 3600 * 1000);
  });
});

describe('HeliosClient without a server', () => {
  test('a refused connection is "unreachable" (a real closed port)', async () => {
    const port = await freePort();
    const client = new HeliosClient({ baseUrl: `http://127.0.0.1:${port}`, clientId: 't' });
    await assert.rejects(client.health(), (err: unknown) => {
      assert.ok(err instanceof HeliosError);
      assert.equal(err.kind, 'unreachable');
      assert.match(err.message, /not reachable.*ECONNREFUSED/);
      return true;
    });
    await assert.rejects(client.complete(request), (err: HeliosError) => err.kind === 'unreachable');
  });

  test('an already cancelled request is not sent', async () => {
    const client = new HeliosClient({ baseUrl: 'http://127.0.0.1:9', clientId: 't' });
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(client.complete(request, controller.signal), (err: HeliosError) => err.kind === 'aborted');
  });

  test('a trailing slash in the URL is harmless', () => {
    assert.equal(new HeliosClient({ baseUrl: 'http://127.0.0.1:8000/', clientId: 't' }).baseUrl, 'http://127.0.0.1:8000');
  });
});
