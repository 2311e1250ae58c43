/**
 * What the extension sends as `context`, and when: the extension activated on the
 * stand-in `vscode` module, against a loopback HTTP server that answers as the Helios API
 * documents (and refuses what Helios refuses: more than its bounds, an unknown field when
 * told to act as an older server), and records every body. real-server.test.ts checks that
 * a real Helios server takes the context and uses it.
 */
import './stub/install';
import assert from 'node:assert/strict';
import { createServer, IncomingMessage, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { ContextFile, MAX_CONTEXT_CHARS, MAX_CONTEXT_FILE_CHARS, MAX_CONTEXT_FILES } from '../src/context';
import { CompletionRequest } from '../src/request';
import { activate, deactivate, Editor, eventually, pythonDocument, stub } from './helpers/extension';
import { closeDocument, createTextDocument, editDocument, InlineCompletionTriggerKind, moveCursor, Position, Uri } from './stub/vscode';

/** The Helios HTTP API on loopback, recording what it is sent. */
class ApiServer {
  readonly bodies: Array<{ path: string; body: CompletionRequest }> = [];
  /** Act as a server from before `context`: 400 for the unknown field. */
  refuseContext = false;
  maxBodyBytes = 1024 * 1024;
  private startedAt = Date.now() - 60_000;
  private server: Server | undefined;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<void> {
    this.server = createServer((req: IncomingMessage, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const send = (status: number, body: unknown) => {
          res.writeHead(status, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        const raw = Buffer.concat(chunks);
        if (path === '/health') {
          return send(200, { status: 'healthy', model_loaded: true, server_version: 'api', uptime: (Date.now() - this.startedAt) / 1000 });
        }
        if (path === '/status') {
          return send(200, { server_status: 'running', model_loaded: true, model_name: 'api-model', limits: { max_body_bytes: this.maxBodyBytes } });
        }
        if (path !== '/complete' && path !== '/prefetch') return send(404, { detail: 'not found', error_code: 'NOT_FOUND' });
        if (raw.length > this.maxBodyBytes) return send(413, { detail: 'too large', error_code: 'PAYLOAD_TOO_LARGE' });
        const body = JSON.parse(raw.toString('utf8')) as CompletionRequest;
        this.bodies.push({ path, body });
        const refusal = this.refusal(body.context);
        if (refusal) return send(400, { detail: `invalid request: ${refusal}`, error_code: 'INVALID_REQUEST' });
        if (path === '/prefetch') return send(202, { accepted: true });
        return send(200, { suggestion: 'fib(n - 1)', confidence: 0.9, processing_time: 0.01 });
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Why Helios would answer 400 to this `context` (http_api/schemas.py). */
  private refusal(context: ContextFile[] | undefined): string | undefined {
    if (context === undefined) return undefined;
    if (this.refuseContext) return 'unknown field context';
    if (context.length > MAX_CONTEXT_FILES) return 'context: too many files';
    const total = context.reduce((sum, f) => sum + [...f.text].length, 0);
    if (context.some((f) => [...f.text].length > MAX_CONTEXT_FILE_CHARS)) return 'context.text: too long';
    if (total > MAX_CONTEXT_CHARS) return 'context: too large';
    if (context.some((f) => f.filename.length === 0)) return 'context.filename: empty';
    return undefined;
  }

  /** A new process on the same port: its uptime starts again. */
  restarted(): void {
    this.startedAt = Date.now();
  }

  sent(path: '/complete' | '/prefetch'): Array<string[] | undefined> {
    return this.bodies.filter((b) => b.path === path).map((b) => b.body.context?.map((f) => f.filename));
  }

  last(path: '/complete' | '/prefetch'): CompletionRequest {
    const bodies = this.bodies.filter((b) => b.path === path);
    assert.ok(bodies.length > 0, `nothing was sent to ${path}`);
    return bodies[bodies.length - 1].body;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

let api: ApiServer;

beforeEach(async () => {
  api = new ApiServer();
  await api.start();
});

afterEach(async () => {
  await deactivate();
  await api.stop();
});

async function ready(settings: Record<string, unknown> = {}) {
  const helios = activate({ serverUrl: api.url, autoStart: false, debounceMs: 0, ...settings });
  await eventually(() => helios.status.kind === 'ready' && !!helios.status.model, 'ready');
  return helios;
}

const MAIN = 'import util\n\ndef main():\n    return util.'; // the cursor at the end: line 3
const AT_END = new Position(3, 16);

/** Asks for a completion in `document` as a keystroke would; resolves when answered. */
async function keystroke(document: ReturnType<typeof pythonDocument>, position = AT_END) {
  return new Editor().ask(document, position, InlineCompletionTriggerKind.Invoke).result;
}

describe('context: what is sent', () => {
  test('visible editors other than the current one, then recent edits, most recent first; never secrets, other schemes or files outside the workspace', async () => {
    await ready();
    const main = pythonDocument(MAIN, 'main.py');
    const util = pythonDocument('def helper_for_ctx():\n    return 1\n', 'util.py');
    const models = pythonDocument('class User:\n    pass\n', 'app/models.py');
    const env = pythonDocument('TOKEN = "x"\n', '.env'); // a secret, even as Python
    const key = createTextDocument('secret\n', 'python', Uri.file('/work/project/tls.key'));
    const notes = createTextDocument('notes = 1\n', 'plaintext', Uri.file('/work/project/notes.txt'));
    const untitled = createTextDocument('scratch = 1\n', 'python', Uri.from({ scheme: 'untitled', path: 'Untitled-1' }));
    const outside = createTextDocument('elsewhere = 1\n', 'python', Uri.file('/home/me/elsewhere.py'));
    const older = pythonDocument('OLD = 1\n', 'old.py');
    const newer = pythonDocument('NEW = 1\n', 'lib/new.py');
    stub.visibleEditors = [main, util, env, notes, untitled, outside];
    editDocument(older, 'OLD = 2\n');
    editDocument(newer, 'NEW = 2\n');
    editDocument(key, 'secret 2\n');
    editDocument(untitled, 'scratch = 2\n');
    editDocument(models, 'class User:\n    name: str\n');
    editDocument(main, MAIN); // the current document, edited last: never its own context

    assert.equal((await keystroke(main))?.[0].insertText, 'fib(n - 1)');
    const sent = api.last('/complete');
    assert.deepEqual(sent.context, [
      { filename: 'util.py', text: 'def helper_for_ctx():\n    return 1\n' },
      { filename: 'app/models.py', text: 'class User:\n    name: str\n' },
      { filename: 'lib/new.py', text: 'NEW = 2\n' },
      { filename: 'old.py', text: 'OLD = 2\n' },
    ]);
    assert.equal(sent.filename, 'main.py');
    assert.equal(sent.code, MAIN);
  });

  test('only languages in helios.enabledLanguages; recent edits remembered are the last 8', async () => {
    await ready({ enabledLanguages: ['python', 'javascriptreact'] });
    const main = pythonDocument(MAIN, 'main.py');
    const jsx = createTextDocument('export const A = 1;\n', 'javascriptreact', Uri.file('/work/project/a.jsx'));
    const ts = createTextDocument('export const B = 1;\n', 'typescript', Uri.file('/work/project/b.ts'));
    const edited = Array.from({ length: 10 }, (_, i) => pythonDocument(`x${i} = ${i}\n`, `m${i}.py`));
    stub.visibleEditors = [main, jsx, ts];
    for (const doc of edited) editDocument(doc, `x = ${doc.uri.path}\n`);
    await keystroke(main);
    assert.deepEqual(api.sent('/complete'), [['a.jsx', 'm9.py', 'm8.py', 'm7.py', 'm6.py', 'm5.py', 'm4.py', 'm3.py', 'm2.py']]);
  });

  test('within the bounds: at most 16 files; too large a file is left out whole, the rest kept in order', async () => {
    await ready();
    const main = pythonDocument(MAIN, 'main.py');
    const line = 'value = compute(value)  # padding\n';
    const sized = (chars: number) => line.repeat(Math.ceil(chars / line.length)).slice(0, chars);
    const big = Array.from({ length: 3 }, (_, i) => pythonDocument(sized(200 * 1024), `big${i}.py`));
    const huge = pythonDocument(sized(MAX_CONTEXT_FILE_CHARS + 10), 'huge.py');
    const small = Array.from({ length: 20 }, (_, i) => pythonDocument(`s${i} = ${i}\n`, `s${i}.py`));
    stub.visibleEditors = [main, huge, ...big, ...small];
    assert.ok(await keystroke(main));
    const [names] = api.sent('/complete');
    assert.deepEqual(names, ['big0.py', 'big1.py', ...small.slice(0, 14).map((d) => d.uri.path.split('/').pop())]);
    assert.equal(api.bodies.filter((b) => b.path === '/complete').length, 1, 'the server took it at once');
  });

  test("a server with a smaller body limit (its /status) gets less context, not a 413", async () => {
    api.maxBodyBytes = 64 * 1024;
    await ready();
    const main = pythonDocument(MAIN, 'main.py');
    const wide = (name: string) => pythonDocument(`s = "${'漢'.repeat(12_000)}"\n`, name);
    stub.visibleEditors = [main, wide('a.py'), wide('b.py')];
    assert.ok(await keystroke(main));
    assert.deepEqual(api.sent('/complete'), [['a.py']]);
  });

  test('helios.context.enabled false: nothing is sent, with /complete or /prefetch; on again: everything', async () => {
    await ready({ 'context.enabled': false });
    const main = pythonDocument(MAIN, 'main.py');
    stub.visibleEditors = [main, pythonDocument('def helper_for_ctx():\n    pass\n', 'util.py')];
    await keystroke(main);
    moveCursor(main, new Position(0, 0));
    await eventually(() => api.sent('/prefetch').length === 1, 'a prefetch');
    assert.deepEqual(api.sent('/complete'), [undefined]);
    assert.deepEqual(api.sent('/prefetch'), [undefined]);
    assert.equal('context' in api.last('/complete'), false);
    stub.set('helios.context.enabled', true);
    await keystroke(main);
    assert.deepEqual(api.sent('/complete').at(-1), ['util.py']);
  });
});

describe('context: when it is sent', () => {
  test('a keystroke sends only what the server does not have: nothing while only the current file changes, the one file that changed', async () => {
    await ready();
    const main = pythonDocument(MAIN, 'main.py');
    const util = pythonDocument('def helper_for_ctx():\n    return 1\n', 'util.py');
    const lib = pythonDocument('LIB = 1\n', 'lib.py');
    stub.visibleEditors = [main, util, lib];
    await keystroke(main);
    for (const typed of ['h', 'he', 'hel']) {
      editDocument(main, MAIN + typed);
      await keystroke(main, new Position(3, 16 + typed.length));
    }
    editDocument(util, 'def helper_for_ctx():\n    return 2\n');
    await keystroke(main);
    await keystroke(main);
    assert.deepEqual(api.sent('/complete'), [['util.py', 'lib.py'], undefined, undefined, undefined, ['util.py'], undefined]);
    assert.equal(api.last('/complete').context, undefined);
    assert.equal(api.bodies.filter((b) => b.path === '/complete')[4].body.context![0].text, 'def helper_for_ctx():\n    return 2\n');
    // the text of a file that did not change was read once
    assert.equal(lib.reads, 1);

    // a file that joins the set (a newly visible editor) is sent then
    const added = pythonDocument('ADDED = 1\n', 'added.py');
    stub.visibleEditors = [main, util, lib, added];
    await keystroke(main);
    assert.deepEqual(api.sent('/complete').at(-1), ['added.py']);
  });

  test('a pause at a new place (/prefetch) sends the whole set, every time', async () => {
    await ready();
    const main = pythonDocument(MAIN, 'main.py');
    stub.visibleEditors = [main, pythonDocument('def helper_for_ctx():\n    pass\n', 'util.py')];
    moveCursor(main, new Position(0, 0));
    await eventually(() => api.sent('/prefetch').length === 1, 'a prefetch');
    moveCursor(main, new Position(2, 0));
    await eventually(() => api.sent('/prefetch').length === 2, 'a second prefetch');
    assert.deepEqual(api.sent('/prefetch'), [['util.py'], ['util.py']]);
    // the server has it now: a keystroke does not send it again
    await keystroke(main);
    assert.deepEqual(api.sent('/complete'), [undefined]);
  });

  test('everything again after the server restarted (a new uptime) or came back after it was unreachable', async () => {
    const helios = await ready();
    const main = pythonDocument(MAIN, 'main.py');
    stub.visibleEditors = [main, pythonDocument('def helper_for_ctx():\n    pass\n', 'util.py')];
    await keystroke(main);
    await keystroke(main);
    assert.deepEqual(api.sent('/complete'), [['util.py'], undefined]);

    // restarted between two polls: the status never left ready, the uptime says it
    api.restarted();
    await helios.refresh();
    assert.equal(helios.status.kind, 'ready');
    await keystroke(main);
    await keystroke(main);
    assert.deepEqual(api.sent('/complete').slice(2), [['util.py'], undefined]);
    assert.match(stub.log(), /the server restarted/);

    // gone, then back on the same port
    const port = api.port;
    await api.stop();
    assert.equal(await keystroke(main), undefined);
    await eventually(() => helios.status.kind === 'unreachable', 'unreachable');
    const bodies = api.bodies;
    api = new ApiServer();
    await api.start(port);
    await keystroke(main); // the first request that reaches it carries everything
    assert.equal(helios.status.kind, 'ready');
    await keystroke(main);
    assert.deepEqual(api.sent('/complete'), [['util.py'], undefined]);
    assert.equal(bodies.length, 4);
  });

  test('a file closed and reopened is sent again', async () => {
    await ready();
    const main = pythonDocument(MAIN, 'main.py');
    const util = pythonDocument('A = 1\n', 'util.py');
    stub.visibleEditors = [main, util];
    await keystroke(main);
    closeDocument(util);
    const reopened = pythonDocument('A = 2\n', 'util.py'); // version 1 again, other text
    stub.visibleEditors = [main, reopened];
    await keystroke(main);
    assert.deepEqual(api.sent('/complete'), [['util.py'], ['util.py']]);
    assert.equal(api.last('/complete').context![0].text, 'A = 2\n');
  });

  test('a server that refuses the field (older than it): the completion is asked again without, and no context goes there until it restarts', async () => {
    api.refuseContext = true;
    const helios = await ready();
    const main = pythonDocument(MAIN, 'main.py');
    stub.visibleEditors = [main, pythonDocument('def helper_for_ctx():\n    pass\n', 'util.py')];
    assert.equal((await keystroke(main))?.[0].insertText, 'fib(n - 1)', 'the suggestion still shows');
    await keystroke(main);
    moveCursor(main, new Position(0, 0));
    await eventually(() => api.sent('/prefetch').length === 1, 'a prefetch');
    assert.deepEqual(api.sent('/complete'), [['util.py'], undefined, undefined]);
    assert.deepEqual(api.sent('/prefetch'), [undefined]);
    assert.equal(helios.status.kind, 'ready');
    assert.equal(stub.messages.length, 0);
    assert.match(stub.log(), /the server refused a request with context files \(400: invalid request: unknown field context\)/);

    // an upgraded server in its place
    api.refuseContext = false;
    api.restarted();
    await helios.refresh();
    await keystroke(main);
    assert.deepEqual(api.sent('/complete').at(-1), ['util.py']);
  });
});
