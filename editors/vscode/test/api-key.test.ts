/**
 * The API key (issue 9 item 8): set with "Helios: Set API Key" (password input), kept in
 * VS Code's SecretStorage, sent as `Authorization: Bearer` on every request, never logged.
 * The server here is a real HTTP server on loopback that checks the key the way Helios
 * does (/health open, the rest 401 in the documented error format without the key).
 */
import './stub/install';
import assert from 'node:assert/strict';
import { createServer, IncomingMessage, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { HeliosClient, HeliosError } from '../src/client';
import { API_KEY_SECRET, validateApiKey } from '../src/extension';
import { serverEnv } from '../src/server';
import { activate, deactivate, Editor, eventually, pythonDocument, stub } from './helpers/extension';
import { freePort, isAlive, RealServer, startRealServer } from './helpers/real-server';
import { InlineCompletionTriggerKind, Position } from './stub/vscode';

const KEY = 'k3y-Only-The-Server-Knows';

/** A loopback server that wants `Bearer KEY` on everything but /health, and records what it got. */
class KeyedServer {
  readonly seen: Array<{ path: string; authorization: string | undefined }> = [];
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      this.seen.push({ path, authorization: req.headers.authorization });
      req.resume();
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (path === '/health') return send(200, { status: 'healthy', model_loaded: true, server_version: 'keyed' });
      if (req.headers.authorization !== `Bearer ${KEY}`) {
        return send(401, { detail: 'missing or wrong API key', error_code: 'UNAUTHORIZED' });
      }
      if (path === '/status') return send(200, { server_status: 'running', model_loaded: true, model_name: 'keyed-model' });
      if (path === '/complete') return send(200, { suggestion: 'fib(n - 1)', confidence: 0.9, processing_time: 1 });
      return send(404, { detail: 'not found', error_code: 'NOT_FOUND' });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  to(path: string) {
    return this.seen.filter((s) => s.path === path);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

const request = {
  code: 'def fib(n):\n    return ',
  suffix: '',
  language: 'python',
  position: { line: 1, character: 11 },
  filename: 'fib.py',
  max_tokens: 8,
  temperature: 0,
};

const server = new KeyedServer();
before(() => server.start());
after(() => server.stop());

describe('HeliosClient and the API key', () => {
  test('with a key every request carries Authorization: Bearer; without one, none does', async () => {
    server.seen.length = 0;
    const keyed = new HeliosClient({ baseUrl: server.url, clientId: 't', apiKey: KEY });
    assert.equal(keyed.hasApiKey, true);
    await keyed.health();
    assert.equal((await keyed.status()).model_name, 'keyed-model');
    assert.equal((await keyed.complete(request)).suggestion, 'fib(n - 1)');
    assert.deepEqual(
      server.seen.map((s) => s.authorization),
      [`Bearer ${KEY}`, `Bearer ${KEY}`, `Bearer ${KEY}`],
    );

    server.seen.length = 0;
    const plain = new HeliosClient({ baseUrl: server.url, clientId: 't', apiKey: '  ' });
    assert.equal(plain.hasApiKey, false);
    await plain.health();
    assert.equal(server.seen[0].authorization, undefined);
  });

  test('a 401 is "unauthorized", with the server\'s detail; the key is in no error or field', async () => {
    const wrong = new HeliosClient({ baseUrl: server.url, clientId: 't', apiKey: 'wrong-key' });
    await assert.rejects(wrong.complete(request), (err: unknown) => {
      assert.ok(err instanceof HeliosError);
      assert.equal(err.kind, 'unauthorized');
      assert.equal(err.details.status, 401);
      assert.equal(err.details.errorCode, 'UNAUTHORIZED');
      assert.doesNotMatch(`${err.message} ${JSON.stringify(err.details)}`, /wrong-key/);
      return true;
    });
    // A private field: not in JSON, not among the keys a log line could print.
    const keyed = new HeliosClient({ baseUrl: server.url, clientId: 't', apiKey: KEY });
    assert.doesNotMatch(JSON.stringify(keyed), new RegExp(KEY));
    assert.ok(!Object.values(keyed).includes(KEY));
  });
});

describe('the extension and the API key', () => {
  afterEach(async () => {
    await deactivate();
  });

  test('"Helios: Set API Key": a password input, kept in SecretStorage, sent from then on, never logged', async () => {
    server.seen.length = 0;
    const api = activate({ serverUrl: server.url, autoStart: false, debounceMs: 0 });
    await eventually(() => api.status.kind === 'ready', 'ready (/health needs no key)');
    const editor = new Editor();
    const doc = pythonDocument(request.code);
    const at = new Position(1, 11);

    // No key yet: the server says 401, the extension says so once, quietly, with the action.
    assert.equal(await editor.ask(doc, at, InlineCompletionTriggerKind.Invoke).result, undefined);
    assert.equal(server.to('/complete')[0].authorization, undefined);
    await eventually(() => stub.messages.some((m) => /wants an API key/.test(m.message)), 'the 401 notice');
    const notice = stub.messages.find((m) => /wants an API key/.test(m.message))!;
    assert.equal(notice.level, 'warning');
    assert.equal(notice.modal, false);
    assert.deepEqual(notice.items, ['Set API Key']);
    await editor.ask(doc, at, InlineCompletionTriggerKind.Invoke).result;
    assert.equal(stub.messages.filter((m) => /API key/.test(m.message)).length, 1, 'told once');

    stub.answerInputBox = () => ` ${KEY} `;
    await stub.commands.get('helios.setApiKey')!();
    assert.equal(stub.inputBoxes.length, 1);
    assert.equal(stub.inputBoxes[0].password, true, 'typed as a password');
    assert.equal(stub.inputBoxes[0].ignoreFocusOut, true);
    assert.equal(stub.secrets.get(API_KEY_SECRET), KEY, 'kept trimmed in SecretStorage');

    const items = await editor.ask(doc, at, InlineCompletionTriggerKind.Invoke).result;
    assert.equal(items?.[0].insertText, 'fib(n - 1)');
    const completes = server.to('/complete');
    assert.equal(completes[completes.length - 1].authorization, `Bearer ${KEY}`);
    await api.refresh();
    const healths = server.to('/health');
    assert.equal(healths[healths.length - 1].authorization, `Bearer ${KEY}`, 'on every request');

    const everythingShown = [stub.log(), ...stub.messages.map((m) => m.message), JSON.stringify(api.status)].join('\n');
    assert.doesNotMatch(everythingShown, new RegExp(KEY), 'the key is never logged or shown');
    assert.match(stub.log(), /an API key is set/);
  });

  test('a key already in SecretStorage is sent from the very first request', async () => {
    server.seen.length = 0;
    const api = activate({ serverUrl: server.url, autoStart: false }, { [API_KEY_SECRET]: KEY });
    await eventually(() => api.status.kind === 'ready' && api.status.model === 'keyed-model', 'ready with the model from /status');
    assert.equal(server.seen[0].path, '/health');
    assert.ok(server.seen.every((s) => s.authorization === `Bearer ${KEY}`), JSON.stringify(server.seen));
  });

  test('an empty answer removes the key; Escape changes nothing', async () => {
    activate({ serverUrl: server.url, autoStart: false, debounceMs: 0 });
    stub.answerInputBox = () => KEY;
    await stub.commands.get('helios.setApiKey')!();
    assert.equal(stub.secrets.get(API_KEY_SECRET), KEY);

    stub.answerInputBox = () => undefined; // Escape
    await stub.commands.get('helios.setApiKey')!();
    assert.equal(stub.secrets.get(API_KEY_SECRET), KEY);

    stub.answerInputBox = () => '';
    await stub.commands.get('helios.setApiKey')!();
    assert.equal(stub.secrets.has(API_KEY_SECRET), false);
    assert.ok(stub.messages.some((m) => m.message === 'Helios: API key removed.'));

    server.seen.length = 0;
    await new Editor().ask(pythonDocument(request.code), new Position(1, 11), InlineCompletionTriggerKind.Invoke).result;
    assert.equal(server.to('/complete')[0].authorization, undefined);
  });

  test('a key that cannot be an HTTP header value is refused in the input box', async () => {
    assert.equal(validateApiKey(''), undefined, 'empty: removes the key');
    assert.equal(validateApiKey(` ${KEY} `), undefined);
    assert.match(validateApiKey('two words')!, /visible ASCII/);
    assert.match(validateApiKey('kéy-with-accent')!, /visible ASCII/);
    activate({ serverUrl: server.url, autoStart: false });
    stub.answerInputBox = (options) => {
      assert.equal(typeof options.validateInput, 'function');
      return 'two words';
    };
    await stub.commands.get('helios.setApiKey')!();
    assert.equal(stub.secrets.has(API_KEY_SECRET), false);
  });

  test('a key set in another window (SecretStorage change) is picked up', async () => {
    activate({ serverUrl: server.url, autoStart: false, debounceMs: 0 });
    const context = stub.extensionContext(); // same SecretStorage, as another window's would be
    await context.secrets.store(API_KEY_SECRET, KEY);
    server.seen.length = 0;
    await eventually(async () => {
      const items = await new Editor().ask(pythonDocument(request.code), new Position(1, 11), InlineCompletionTriggerKind.Invoke).result;
      return items?.[0]?.insertText === 'fib(n - 1)';
    }, 'a completion with the new key');
    assert.equal(server.to('/complete').pop()?.authorization, `Bearer ${KEY}`);
  });
});

describe('the server the extension starts needs no key', () => {
  test('HELIOS_API_KEY* is not passed on to `helios serve`', () => {
    const env = serverEnv({ PATH: '/usr/bin', HELIOS_API_KEY: 'x', HELIOS_API_KEY_FILE: '/k', HELIOS_PORT: '1' });
    assert.equal(env.PATH, '/usr/bin');
    assert.equal(env.HELIOS_PORT, '1');
    assert.equal(env.PYTHONUNBUFFERED, '1');
    assert.equal(env.HELIOS_API_KEY, undefined);
    assert.equal(env.HELIOS_API_KEY_FILE, undefined);
  });
});

describe('a real `helios serve` with HELIOS_API_KEY', () => {
  const REAL_KEY = 'real-key-0123456789abcdef';
  let keyed: RealServer;
  before(async () => {
    keyed = await startRealServer({ HELIOS_API_KEY: REAL_KEY });
  });
  afterEach(async () => {
    await deactivate();
  });
  after(async () => {
    await keyed?.stop();
  });

  test('without the key: 401 and one notice; with it: the model name and a completion', async () => {
    const api = activate({ serverUrl: keyed.url, autoStart: false, debounceMs: 0, timeoutMs: 60_000, temperature: 0 });
    await eventually(() => api.status.kind === 'ready', '/health answers without a key');
    assert.equal(api.status.model, undefined, '/status needs the key');
    const doc = pythonDocument(request.code);
    const at = new Position(1, 11);
    assert.equal(await new Editor().ask(doc, at, InlineCompletionTriggerKind.Invoke).result, undefined);
    await eventually(() => stub.messages.some((m) => /wants an API key/.test(m.message)), 'the 401 notice');

    stub.answerInputBox = () => REAL_KEY;
    await stub.commands.get('helios.setApiKey')!();
    await eventually(() => api.status.model !== undefined, 'the model name from /status, with the key', 30_000);
    const client = new HeliosClient({ baseUrl: keyed.url, clientId: 't', apiKey: REAL_KEY, completionTimeoutMs: 60_000 });
    assert.ok((await client.complete({ ...request, max_tokens: 4 })).suggestion !== undefined);
    await new Editor().ask(doc, at, InlineCompletionTriggerKind.Invoke).result;
    assert.equal(stub.messages.filter((m) => /API key/.test(m.message) && m.level === 'warning').length, 1);
    assert.doesNotMatch(stub.log(), new RegExp(REAL_KEY));
  });

  test('a server the extension starts needs no key, even with HELIOS_API_KEY in its environment', async () => {
    const saved = process.env.HELIOS_API_KEY;
    process.env.HELIOS_API_KEY = REAL_KEY;
    try {
      const api = activate({ serverUrl: `http://127.0.0.1:${await freePort()}`, autoStart: true, serverCommand: keyed.process.spawnargs[0] });
      await eventually(() => api.serverPid !== undefined, 'the server started', 30_000);
      await api.whenStarted();
      await eventually(() => api.status.kind === 'ready' && api.status.model !== undefined, 'ready with the model, no key stored', 60_000);
      const pid = api.serverPid!;
      await deactivate();
      await eventually(() => !isAlive(pid), 'the server stopped with the extension', 15_000);
    } finally {
      if (saved === undefined) delete process.env.HELIOS_API_KEY;
      else process.env.HELIOS_API_KEY = saved;
    }
  });
});
