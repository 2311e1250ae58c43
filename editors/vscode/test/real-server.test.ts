/**
 * Against a REAL Helios server process (HELIOS_BIN serve --port <free port>): the client,
 * and the extension activated on the stand-in `vscode` module. Nothing here mocks HTTP; a
 * FetchSpy only records what went over the wire. A missing server binary fails every test
 * here with the reason; nothing is skipped.
 */
import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import { CLIENT_HEADER, HeliosClient, HeliosError } from '../src/client';
import { buildCompletionRequest, CompletionRequest } from '../src/request';
import { activate, deactivate, Editor, eventually, pythonDocument, stub } from './helpers/extension';
import { FetchSpy } from './helpers/fetch-spy';
import { freePort, heliosBin, isAlive, RealServer, requireHeliosBin, startRealServer } from './helpers/real-server';
import { CancellationTokenSource, createTextDocument, InlineCompletionTriggerKind, moveCursor, Position, Uri } from './stub/vscode';

const FIB = 'def fibonacci(n):\n    if n <= 1:\n        return n\n    ';
const FIB_DOC = `${FIB}\n\nprint(fibonacci(10))\n`;
const FIB_CURSOR = new Position(3, 4);

let server: RealServer;
const spy = new FetchSpy();
let clientCount = 0;

// Generous: on a busy 2-core machine a cold prompt of a few hundred tokens can take many seconds.
function newClient(id = `test-${process.pid}-${++clientCount}`): HeliosClient {
  return new HeliosClient({ baseUrl: server.url, clientId: id, completionTimeoutMs: 60_000 });
}

function fibRequest(overrides: Partial<CompletionRequest> = {}): CompletionRequest {
  const doc = createTextDocument(FIB_DOC, 'python', Uri.file('/work/project/fib.py'));
  return { ...buildCompletionRequest(doc, FIB_CURSOR, { maxTokens: 32, temperature: 0 })!, ...overrides };
}

/**
 * Records each status kind the extension goes through, until stopped. Read from the
 * extension's own "status: a -> b" log lines, which it writes on every transition, so a
 * state that lasts less than a timer tick is not missed.
 */
function recordStates(api: { status: { kind: string } }): { seen: string[]; stop(): string[] } {
  const before = stub.log();
  const from = before === '' ? 0 : before.split('\n').length;
  const seen = [api.status.kind];
  return {
    seen,
    stop() {
      const lines = stub.log().split('\n').slice(from);
      for (const line of lines) {
        const m = / status: (\w+) -> (\w+)/.exec(line);
        if (m && m[2] !== seen[seen.length - 1]) seen.push(m[2]);
      }
      return seen;
    },
  };
}

/** A prompt long enough that evaluating it takes the model a noticeable time. */
function longPython(lines: number): string {
  return Array.from({ length: lines }, (_, i) => `def helper_${i}(value_${i}):\n    return value_${i} * ${i} + ${i * 7}\n`).join('') + 'def main():\n    ';
}

// Started once, on first use. When it cannot start, every test here fails with the reason
// (a failing `before` would only mark them cancelled).
let starting: Promise<RealServer> | undefined;
beforeEach(async () => {
  starting ??= startRealServer();
  server = await starting;
});

after(async () => {
  spy.uninstall();
  await deactivate();
  await starting?.then((s) => s.stop()).catch(() => undefined);
});

afterEach(async () => {
  spy.uninstall();
  spy.clear();
  await deactivate();
});

describe('the REST contract, as the extension reads it', () => {
  test('GET /health: 200 with status, model_loaded, server_version, uptime', async () => {
    const health = await newClient().health();
    assert.equal(health.ok, true);
    assert.equal(health.httpStatus, 200);
    assert.equal(typeof health.body.status, 'string');
    assert.equal(health.body.model_loaded, true);
    assert.equal(typeof health.body.server_version, 'string');
    assert.equal(typeof health.body.uptime, 'number');
  });

  test('GET /status: model_name and config', async () => {
    const status = await newClient().status();
    assert.equal(status.model_loaded, true);
    assert.equal(typeof status.model_name, 'string');
    assert.ok(status.model_name!.length > 0);
    assert.equal(typeof status.server_status, 'string');
    assert.equal(typeof status.uptime, 'number');
    assert.equal(typeof status.config, 'object');
  });

  test('POST /complete with suffix: JSON body, client header, documented response', async () => {
    spy.install();
    const client = newClient('contract-client');
    const request = fibRequest();
    const response = await client.complete(request);
    const [exchange] = spy.to('/complete');
    assert.equal(exchange.method, 'POST');
    assert.equal(exchange.headers['content-type'], 'application/json');
    assert.equal(exchange.headers[CLIENT_HEADER.toLowerCase()], 'contract-client');
    assert.deepEqual(exchange.body, request);
    assert.equal(exchange.status, 200);
    assert.equal(typeof response.suggestion, 'string');
    assert.equal(typeof response.confidence, 'number');
    assert.ok(response.confidence >= 0 && response.confidence <= 1, `confidence ${response.confidence}`);
    assert.equal(typeof response.processing_time, 'number');
  });

  test('a request the server refuses: 400 INVALID_REQUEST in the documented error format', async () => {
    spy.install();
    const client = newClient();
    await assert.rejects(client.complete(fibRequest({ temperature: 5 })), (err: unknown) => {
      assert.ok(err instanceof HeliosError, String(err));
      assert.equal(err.kind, 'invalid_request');
      assert.equal(err.details.status, 400);
      assert.equal(err.details.errorCode, 'INVALID_REQUEST');
      assert.ok(err.message.length > 0);
      return true;
    });
    // a bad request does not start a back-off
    assert.equal(client.backoffRemainingMs(), 0);
    const body = spy.to('/complete')[0].response as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['detail', 'error_code', 'timestamp']);
    assert.ok(!Number.isNaN(Date.parse(body.timestamp as string)), `timestamp ${body.timestamp}`);
  });

  test('a newer request from the same client for the same file supersedes the older one', async () => {
    const client = newClient();
    const code = longPython(6);
    const lines = code.split('\n');
    const position = { line: lines.length - 1, character: lines[lines.length - 1].length };
    const base = { code, suffix: '', language: 'python', position, filename: 'supersede.py', max_tokens: 48, temperature: 0 };
    const older = client.complete(base);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const newer = client.complete({ ...base, code: `${code}x = ` });
    const [olderResult, newerResult] = await Promise.all([older, newer]);
    assert.equal(olderResult.suggestion, '', 'the superseded request answers 200 with an empty suggestion');
    assert.equal(typeof newerResult.suggestion, 'string');
  });
});

describe('the extension against the real server', () => {
  async function activateReady(settings: Record<string, unknown> = {}) {
    // timeoutMs: this machine may be shared; a cold prompt can take long on 2 busy cores
    const api = activate({ serverUrl: server.url, autoStart: false, timeoutMs: 60_000, ...settings });
    await eventually(() => api.status.kind === 'ready' && !!api.status.model, 'status ready with a model name');
    return api;
  }

  test('status bar: ready with the model name from /status', async () => {
    const api = await activateReady();
    const status = await newClient().status();
    assert.equal(api.status.model, status.model_name);
    assert.match(stub.statusItem().text, /^\$\(check\) Helios: /);
    assert.ok(stub.statusItem().text.includes(status.model_name!.slice(0, 20)));
    assert.equal(stub.messages.length, 0);
  });

  test('the provider sends the document at the cursor and shows the suggestion as ghost text', async () => {
    const api = await activateReady({ maxTokens: 24, temperature: 0, debounceMs: 10 });
    spy.install();
    const editor = new Editor();
    const items = await editor.ask(pythonDocument(FIB_DOC, 'src/fib.py'), FIB_CURSOR).result;
    const [exchange] = spy.to('/complete');
    assert.ok(exchange, 'a POST /complete reached the server');
    assert.deepEqual(exchange.body, {
      code: FIB,
      suffix: '\n\nprint(fibonacci(10))\n',
      language: 'python',
      position: { line: 3, character: 4 },
      filename: 'src/fib.py',
      max_tokens: 24,
      temperature: 0,
    });
    assert.equal(exchange.headers['content-type'], 'application/json');
    assert.equal(exchange.headers['x-helios-client'], api.clientId);
    assert.match(api.clientId, /^vscode-[0-9a-f-]{36}$/);
    assert.equal(exchange.status, 200);
    const suggestion = (exchange.response as { suggestion: string }).suggestion;
    if (suggestion === '') {
      assert.equal(items, undefined);
    } else {
      assert.equal(items?.length, 1);
      assert.equal(items![0].insertText, suggestion);
      assert.deepEqual(items![0].range!.start, FIB_CURSOR);
      assert.deepEqual(items![0].range!.end, FIB_CURSOR);
    }
    assert.equal(api.status.kind, 'ready');
  });

  test('some prompt gives a non-empty suggestion that the provider returns as ghost text', async () => {
    await activateReady({ maxTokens: 24, temperature: 0, debounceMs: 0 });
    spy.install();
    const editor = new Editor();
    const prompts: Array<[string, string, Position]> = [
      ['python', FIB_DOC, FIB_CURSOR],
      ['python', 'import os\n\ndef list_files(path):\n    return ', new Position(3, 11)],
      ['javascript', 'function add(a, b) {\n  return ', new Position(1, 9)],
      ['python', 'for i in range(10):\n    print(', new Position(1, 10)],
    ];
    const shown: string[] = [];
    for (const [language, text, position] of prompts) {
      const doc = createTextDocument(text, language, Uri.file(`/work/project/p${shown.length}.${language === 'python' ? 'py' : 'js'}`));
      const items = await editor.ask(doc, position, InlineCompletionTriggerKind.Invoke).result;
      if (items?.length) {
        shown.push(items[0].insertText);
        break;
      }
    }
    assert.ok(shown.length > 0, `every prompt gave an empty suggestion: ${JSON.stringify(spy.to('/complete').map((e) => e.response))}`);
    const answered = spy.to('/complete').map((e) => (e.response as { suggestion: string }).suggestion).filter(Boolean);
    assert.deepEqual(shown, answered);
  });

  test('debounce: a burst of keystrokes sends one request, for the last one', async () => {
    // a debounce far above the 20 ms between keystrokes, so a busy machine's late timers still fall inside it
    await activateReady({ maxTokens: 8, temperature: 0, debounceMs: 500 });
    spy.install();
    const editor = new Editor();
    const texts = ['x = fib', 'x = fibo', 'x = fibon', 'x = fibona'];
    const asks = [];
    for (const text of texts) {
      asks.push(editor.ask(pythonDocument(`${FIB_DOC}${text}`), new Position(6, text.length)));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const results = await Promise.all(asks.map((a) => a.result));
    assert.deepEqual(results.slice(0, 3), [undefined, undefined, undefined]);
    const sent = spy.to('/complete');
    assert.equal(sent.length, 1, 'one request for the whole burst');
    assert.ok((sent[0].body as CompletionRequest).code.endsWith('x = fibona'));
  });

  test('cancellation: a newer keystroke aborts the request in flight', async () => {
    const api = await activateReady({ maxTokens: 64, temperature: 0, debounceMs: 0 });
    spy.install();
    const editor = new Editor();
    const code = longPython(8);
    const lines = code.split('\n');
    const doc = pythonDocument(code, 'src/long.py');
    const cancelledJobs = async () =>
      ((await newClient().status()) as { engine?: { stats?: { cancelled?: number } } }).engine?.stats?.cancelled;
    const cancelledBefore = await cancelledJobs();
    const ask = editor.ask(doc, new Position(lines.length - 1, 4));
    await eventually(() => spy.to('/complete').length === 1, 'the request went out');
    const cancelledAt = performance.now();
    ask.cancel();
    assert.equal(await ask.result, undefined);
    const tookMs = performance.now() - cancelledAt;
    assert.ok(tookMs < 1000, `the provider took ${tookMs} ms to give up after the cancel`);
    const [exchange] = spy.to('/complete');
    await exchange.done;
    assert.equal(exchange.error, 'AbortError', 'the HTTP request itself was aborted');
    // The server drops the job too. (Its /status counts cancelled jobs under engine.stats:
    // more than the documented contract, but the only outside view of it.)
    assert.equal(typeof cancelledBefore, 'number', 'GET /status has engine.stats.cancelled');
    await eventually(async () => ((await cancelledJobs()) ?? 0) > cancelledBefore!, 'the server cancelled the job', 60_000);
    // nothing was reported as an error, and the server still answers
    assert.equal(api.status.kind, 'ready');
    assert.equal(stub.messages.length, 0);
    const items = await editor.ask(pythonDocument(FIB_DOC), FIB_CURSOR, InlineCompletionTriggerKind.Invoke).result;
    assert.equal(spy.to('/complete')[1].status, 200);
    assert.ok(items === undefined || items.length === 1);
  });

  test('429: the extension backs off for Retry-After, says rate-limited, then resumes', async () => {
    const api = await activateReady({ maxTokens: 16, temperature: 0, debounceMs: 0 });
    spy.install();
    // Keystrokes in 30 files, each in its own tick: more at once than the server admits.
    const burst = Array.from({ length: 30 }, () => new CancellationTokenSource());
    const asks: Promise<unknown>[] = [];
    for (const [i, source] of burst.entries()) {
      const doc = createTextDocument(`x${i} = `, 'python', Uri.file(`/work/project/burst_${i}.py`));
      asks.push(
        stub.inlineProvider().provideInlineCompletionItems(doc, new Position(0, 5), { triggerKind: InlineCompletionTriggerKind.Invoke }, source.token),
      );
      await new Promise((resolve) => setImmediate(resolve));
    }
    await eventually(() => api.status.kind === 'rate_limited', 'rate-limited after a 429', 30_000);
    assert.match(stub.statusItem().text, /^\$\(watch\) Helios: rate-limited \(\ds\)$/);
    // inside the Retry-After window a keystroke sends nothing
    const sentBefore = spy.to('/complete').length;
    const doc = pythonDocument(FIB_DOC, 'src/after.py');
    assert.equal(await new Editor().ask(doc, FIB_CURSOR, InlineCompletionTriggerKind.Invoke).result, undefined);
    assert.equal(spy.to('/complete').length, sentBefore);

    // the user moves on: VS Code cancels what is still in flight
    for (const source of burst) source.cancel();
    await Promise.all(asks);
    const limited = spy.to('/complete').filter((e) => e.status === 429);
    const first = limited[0];
    assert.equal((first.response as { error_code: string }).error_code, 'SERVER_OVERLOADED');
    assert.equal(typeof (first.response as { detail: string }).detail, 'string');
    const retryAfter = Number(first.responseHeaders!['retry-after']);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After: ${first.responseHeaders!['retry-after']}`);
    assert.equal(stub.messages.length, 0, 'no notification for a 429');

    // after Retry-After the status returns to ready and requests go out again
    await eventually(() => api.status.kind === 'ready', 'ready after Retry-After', retryAfter * 1000 + 3000);
    const sentAfter = spy.to('/complete').length;
    await new Editor().ask(doc, FIB_CURSOR, InlineCompletionTriggerKind.Invoke).result;
    assert.equal(spy.to('/complete').length, sentAfter + 1);
    assert.equal(spy.to('/complete').at(-1)!.status, 200);
  });

  test('the cursor landing somewhere new warms the server there (POST /prefetch), typing does not', async () => {
    await activateReady({ debounceMs: 10 });
    const before = (await newClient().status()) as any;
    spy.install();
    const doc = pythonDocument(FIB_DOC);
    moveCursor(doc, FIB_CURSOR);
    await eventually(() => spy.to('/prefetch').length === 1, 'one POST /prefetch');
    const [exchange] = spy.to('/prefetch');
    assert.equal((exchange.body as { code: string }).code, FIB);
    await eventually(async () => ((await newClient().status()) as any).engine.stats.prefetches > before.engine.stats.prefetches,
      'the server counted it');
    moveCursor(doc, new Position(3, 5)); // the same line: the user is typing
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(spy.to('/prefetch').length, 1);
  });

  test('context: the server takes the other files sent with /complete and puts them in the prompt (GET /status)', async () => {
    await activateReady({ maxTokens: 8, temperature: 0, debounceMs: 0 });
    const UTIL = 'def helper_for_ctx(value):\n    return value * 42\n';
    // main.py imports util and calls it near the cursor (an HTTP client's files have no path
    // on the server, so it matches them by what they share with the lines at the cursor).
    const MAIN = 'import util\n\n\ndef main():\n    first = util.helper_for_ctx(1)\n    return first + util.';
    const main = pythonDocument(`${MAIN}h`, 'main.py');
    const util = pythonDocument(UTIL, 'util.py');
    stub.visibleEditors = [main, util];
    type Engine = { busy: boolean; stats: { context_blocks: number }; context: { enabled: boolean; last_prompt?: { files: string[]; tokens: number } } };
    const engine = async () => ((await newClient().status()) as unknown as { engine: Engine }).engine;
    const before = await engine();
    assert.equal(before.context.enabled, true, 'GET /status engine.context.enabled');
    spy.install();
    const editor = new Editor();
    await editor.ask(main, new Position(5, 25), InlineCompletionTriggerKind.Invoke).result;
    const [first] = spy.to('/complete');
    assert.deepEqual((first.body as CompletionRequest).context, [{ filename: 'util.py', text: UTIL }]);
    assert.equal(first.status, 200, JSON.stringify(first.response));
    // The server chooses the other files' block in the background, warms it while idle and
    // uses it from then on: wait until it is idle with a block put in use.
    let seen: Engine = before;
    await eventually(async () => {
      seen = await engine();
      return !seen.busy && seen.stats.context_blocks > before.stats.context_blocks;
    }, 'the server idle, with a context block in use', 60_000).catch((err) => {
      throw new Error(`${err.message}: engine.context ${JSON.stringify(seen.context)}, context_blocks ${seen.stats.context_blocks}`);
    });
    // A backspace (a repeat of the same text could be answered by type-ahead, without a prompt).
    await editor.ask(pythonDocument(MAIN, 'main.py'), new Position(5, 24), InlineCompletionTriggerKind.Invoke).result;
    const second = spy.to('/complete')[1];
    assert.equal(second.status, 200);
    assert.equal((second.body as CompletionRequest).context, undefined, 'the server has util.py already');
    const { context } = await engine();
    assert.ok(context.last_prompt?.files.includes('util.py'), `engine.context: ${JSON.stringify(context)}`);
    assert.ok(context.last_prompt!.tokens > 0, `engine.context: ${JSON.stringify(context)}`);
  });

    test('Show Status lists the model and the actions', async () => {
    await activateReady();
    let offered: string[] = [];
    stub.answerQuickPick = (items) => {
      offered = items.map((i: { label: string }) => i.label);
      return undefined;
    };
    await stub.commands.get('helios.showStatus')!();
    const pick = stub.quickPicks[0];
    assert.match(pick.items[0].label, /^\$\(check\) Helios: /);
    assert.match(pick.items[0].detail, /model .+ · version .+ · up /);
    assert.ok(offered.includes('$(debug-restart) Restart Server'));
    assert.ok(offered.includes('$(circle-slash) Turn Completions Off'));
    assert.ok(!offered.includes('$(play) Start Server'));
  });

  test('Restart Server: POST /restart, loading in the status bar, then ready again', async () => {
    const api = await activateReady();
    spy.install();
    const states = recordStates(api);
    try {
      await stub.commands.get('helios.restartServer')!();
      const [exchange] = spy.to('/restart');
      assert.equal(exchange.method, 'POST');
      assert.equal(exchange.headers['content-type'], 'application/json');
      assert.equal(exchange.status, 200);
      assert.equal(typeof (exchange.response as { message: string }).message, 'string');
      assert.equal(stub.messages[0]?.level, 'information');
      await eventually(() => api.status.kind === 'ready', 'ready after the restart', 60_000);
    } finally {
      states.stop();
    }
    const seen = states.seen;
    assert.ok(seen.includes('loading'), `states seen: ${seen.join(' -> ')}`);
    assert.deepEqual(seen.slice(-1), ['ready']);
    // and completions work again
    const items = await new Editor().ask(pythonDocument(FIB_DOC), FIB_CURSOR, InlineCompletionTriggerKind.Invoke).result;
    assert.ok(items === undefined || items.length === 1);
    assert.equal(spy.to('/complete').at(-1)?.status, 200);
  });
});

describe('the extension starts and stops the server itself', () => {
  test('"not running" notice, its Start Server action: progress while loading, ready, completions, stopped on deactivate', async () => {
    requireHeliosBin();
    const port = await freePort();
    const api = activate({ serverUrl: `http://127.0.0.1:${port}`, autoStart: false, serverCommand: heliosBin(), debounceMs: 0, maxTokens: 16, timeoutMs: 60_000 });
    const states = recordStates(api);
    // the user clicks "Start Server" on the notice
    stub.answerMessage = (m) => (m.message.startsWith('Helios server not running') ? 'Start Server' : undefined);
    try {
      await eventually(() => stub.progress.length > 0, 'the server starting');
      await api.whenStarted();
    } finally {
      states.stop();
    }
    const notice = stub.messages[0];
    assert.match(notice.message, /^Helios server not running at http:\/\/127\.0\.0\.1:\d+\.$/);
    assert.deepEqual(notice.items, ['Start Server', 'Settings']);
    assert.equal(notice.modal, false);
    assert.equal(stub.messages.length, 1, JSON.stringify(stub.messages));

    const seen = states.seen;
    assert.equal(api.status.kind, 'ready', `states: ${seen.join(' -> ')}\n${stub.log()}`);
    assert.deepEqual(seen, ['unknown', 'unreachable', 'starting', 'loading', 'ready']);
    const progress = stub.progress[0];
    assert.equal(progress.options.location, 15 /* Notification */);
    assert.equal(progress.done, true);
    const reports = progress.reports.map((r) => r.message);
    assert.equal(reports[0], 'starting the server…');
    assert.ok(reports.includes('loading the model…'), reports.join(', '));
    assert.equal(reports.at(-1), 'ready');
    const pid = api.serverPid;
    assert.ok(pid !== undefined && isAlive(pid));
    assert.match(stub.log(), /\$ .*helios serve --host 127\.0\.0\.1 --port \d+/);
    assert.match(stub.log(), /\[server\]/);

    const items = await new Editor().ask(pythonDocument(FIB_DOC), FIB_CURSOR, InlineCompletionTriggerKind.Invoke).result;
    assert.ok(items === undefined || items.length === 1);

    await deactivate();
    assert.equal(isAlive(pid), false, 'the server process is gone');
    await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
  });

  test('auto-start: /health does not answer, so the extension starts the server with progress', async () => {
    const port = await freePort();
    const api = activate({ serverUrl: `http://127.0.0.1:${port}`, autoStart: true, serverCommand: heliosBin() });
    await eventually(() => stub.progress.length > 0, 'a progress notification');
    await api.whenStarted();
    assert.equal(api.status.kind, 'ready', stub.log());
    assert.equal(stub.messages.length, 0, JSON.stringify(stub.messages));
    const reports = stub.progress[0].reports.map((r) => r.message);
    assert.equal(reports[0], 'starting the server…');
    assert.equal(reports.at(-1), 'ready');
    const pid = api.serverPid!;
    assert.ok(isAlive(pid));
    await deactivate();
    assert.equal(isAlive(pid), false);
  });
});
