/**
 * Choosing the `context` files (src/context.ts): which documents, in what order, within
 * which bounds, and which of them a server already has.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  contextByteBudget,
  ContextDocument,
  contextFiles,
  ContextTracker,
  isSecretFilename,
  MAX_CONTEXT_CHARS,
  MAX_CONTEXT_FILE_CHARS,
  MAX_CONTEXT_FILES,
  RecentDocuments,
  SERVER_BOUNDS,
} from '../src/context';

const LANGUAGES = ['python', 'javascript', 'typescript', 'json'];
const CURRENT = { key: 'file:/work/project/main.py', filename: 'main.py' };

/** A document whose text reads are counted. */
function doc(filename: string | undefined, text: string, options: Partial<{ key: string; languageId: string; version: number }> = {}) {
  const d = {
    key: options.key ?? `file:/work/project/${filename}`,
    filename,
    languageId: options.languageId ?? 'python',
    version: options.version ?? 1,
    text,
    reads: 0,
    getText() {
      d.reads += 1;
      return d.text;
    },
  };
  return d satisfies ContextDocument;
}

function names(entries: Array<{ filename: string }>): string[] {
  return entries.map((e) => e.filename);
}

describe('files named like secrets', () => {
  test('keys, credentials and environment files are secrets, by base name, in any case', () => {
    for (const name of [
      '.env', '.env.local', 'config/.env.production', 'prod.env', 'server.pem', 'tls.KEY', 'id_rsa',
      '.ssh/id_ed25519.pub', 'cert.p12', 'cert.pfx', 'store.jks', '.npmrc', '.netrc', '_netrc',
      '.pypirc', '.pgpass', 'credentials', 'deploy/credentials.json', 'SECRETS.YAML', 'secrets.json',
      'C:\\Users\\me\\.env',
    ]) {
      assert.equal(isSecretFilename(name), true, name);
    }
  });

  test('source files that merely mention them are not', () => {
    for (const name of ['env.py', 'environment.ts', 'keys.py', 'monkey.js', 'pem.go', 'src/secrets.py', 'keyboard.json', 'my.env.d/x.py']) {
      assert.equal(isSecretFilename(name), false, name);
    }
  });
});

describe('RecentDocuments', () => {
  test('most recent first, each once, at most `capacity`; forget removes', () => {
    const recent = new RecentDocuments<{ key: string }>(3);
    for (const key of ['a', 'b', 'c', 'a', 'd']) recent.touch({ key });
    assert.deepEqual(recent.list().map((d) => d.key), ['d', 'a', 'c']);
    recent.forget('a');
    assert.deepEqual(recent.list().map((d) => d.key), ['d', 'c']);
  });
});

describe('ContextTracker.select', () => {
  test('keeps the given order; leaves out the current document, secrets, other languages, files outside the workspace and repeats', () => {
    const tracker = new ContextTracker();
    const candidates = [
      doc('util.py', 'def helper():\n    pass\n'),
      doc('main.py', 'import util\n'), // the current document
      doc('copy/main.py', 'x = 1\n', { key: CURRENT.key }), // the current document under another name
      doc('.env', 'TOKEN=1\n'),
      doc('keys/server.pem', '-----BEGIN-----\n'),
      doc('README.md', '# hi\n', { languageId: 'markdown' }),
      doc(undefined, 'outside = 1\n', { key: 'file:/elsewhere/outside.py' }),
      doc('web/app.ts', 'export const a = 1;\n', { languageId: 'typescript' }),
      doc('util.py', 'def helper():\n    pass\n'), // the same document again (visible and edited)
      doc('util.py', 'other = 1\n', { key: 'file:/work/other-root/util.py' }), // the same name
      doc('data.json', '{}\n', { languageId: 'json' }),
    ];
    const entries = tracker.select(candidates, CURRENT, LANGUAGES);
    assert.deepEqual(names(entries), ['util.py', 'web/app.ts', 'data.json']);
    assert.deepEqual(contextFiles(entries)[0], { filename: 'util.py', text: 'def helper():\n    pass\n' });
  });

  test(`at most ${MAX_CONTEXT_FILES} files, the first ones`, () => {
    const candidates = Array.from({ length: 20 }, (_, i) => doc(`m${i}.py`, `x${i} = ${i}\n`));
    const entries = new ContextTracker().select(candidates, CURRENT, LANGUAGES);
    assert.equal(entries.length, MAX_CONTEXT_FILES);
    assert.deepEqual(names(entries), candidates.slice(0, MAX_CONTEXT_FILES).map((c) => c.filename));
  });

  test('cut by whole files: one over 256 Ki characters is left out, and so is one that would pass 512 Ki together', () => {
    const line = 'value = compute(value)  # padding\n';
    const sized = (chars: number) => line.repeat(Math.ceil(chars / line.length)).slice(0, chars);
    const candidates = [
      doc('huge.py', sized(MAX_CONTEXT_FILE_CHARS + 1)),
      doc('a.py', sized(200 * 1024)),
      doc('b.py', sized(200 * 1024)),
      doc('c.py', sized(200 * 1024)), // would make 600 Ki
      doc('d.py', sized(100 * 1024)), // still fits: 500 Ki
      doc('e.py', sized(MAX_CONTEXT_CHARS)), // never together with the others
    ];
    const entries = new ContextTracker().select(candidates, CURRENT, LANGUAGES);
    assert.deepEqual(names(entries), ['a.py', 'b.py', 'd.py']);
    const total = entries.reduce((sum, e) => sum + e.text.length, 0);
    assert.ok(total <= MAX_CONTEXT_CHARS, `${total} characters`);
    for (const e of entries) assert.ok(e.text.length <= MAX_CONTEXT_FILE_CHARS);
    // a file of exactly the bounds is taken
    assert.deepEqual(names(new ContextTracker().select([doc('edge.py', sized(MAX_CONTEXT_FILE_CHARS))], CURRENT, LANGUAGES)), ['edge.py']);
  });

  test('the body budget counts UTF-8 bytes of the JSON, so non-ASCII text fits it too', () => {
    const request = { code: 'x = 1\n', suffix: '', language: 'python', position: { line: 1, character: 0 }, filename: 'main.py', max_tokens: 8, temperature: 0 };
    const budget = contextByteBudget(64 * 1024, request);
    assert.ok(budget > 50_000 && budget < 64 * 1024, `budget ${budget}`);
    // 12,000 characters of three UTF-8 bytes each: about 36 KB apiece, 24 Ki characters together
    const wide = (name: string) => doc(name, `s = "${'漢'.repeat(12_000)}"\n`);
    const entries = new ContextTracker().select([wide('a.py'), wide('b.py'), doc('c.py', 'ok = 1\n')], CURRENT, LANGUAGES, {
      ...SERVER_BOUNDS,
      maxBytes: budget,
    });
    assert.deepEqual(names(entries), ['a.py', 'c.py']);
    const body = JSON.stringify({ ...request, context: contextFiles(entries) });
    assert.ok(Buffer.byteLength(body) <= 64 * 1024, `${Buffer.byteLength(body)} bytes`);
    assert.equal(contextByteBudget(1000, request), 0);
  });

  test('line breaks are sent as \\n; a text with a lone surrogate (which the server refuses) is left out', () => {
    const entries = new ContextTracker().select(
      [doc('crlf.py', 'a = 1\r\nb = 2\r\n'), doc('bad.py', 'x = "\ud800"\n'), doc('emoji.py', 'x = "😀"\n')],
      CURRENT,
      LANGUAGES,
    );
    assert.deepEqual(contextFiles(entries), [
      { filename: 'crlf.py', text: 'a = 1\nb = 2\n' },
      { filename: 'emoji.py', text: 'x = "😀"\n' },
    ]);
  });

  test("a document's text is read once per version", () => {
    const tracker = new ContextTracker();
    const util = doc('util.py', 'a = 1\n');
    for (let i = 0; i < 5; i++) tracker.select([util], CURRENT, LANGUAGES);
    assert.equal(util.reads, 1);
    util.text = 'a = 2\n';
    util.version = 2;
    const [entry] = tracker.select([util], CURRENT, LANGUAGES);
    assert.equal(util.reads, 2);
    assert.equal(entry.text, 'a = 2\n');
    assert.equal(entry.version, 2);
  });
});

describe('ContextTracker: what the server has', () => {
  test('sent files are not sent again until their version or the server changes', () => {
    const tracker = new ContextTracker();
    const util = doc('util.py', 'a = 1\n');
    const lib = doc('lib.py', 'b = 1\n');
    const select = () => tracker.select([util, lib], CURRENT, LANGUAGES);
    assert.deepEqual(names(tracker.unsent(select())), ['util.py', 'lib.py']);
    tracker.markSent(select(), tracker.generation);
    assert.deepEqual(tracker.unsent(select()), []);

    util.text = 'a = 2\n';
    util.version = 2;
    assert.deepEqual(names(tracker.unsent(select())), ['util.py']);
    tracker.markSent(tracker.unsent(select()), tracker.generation);
    assert.deepEqual(tracker.unsent(select()), []);

    tracker.forgetSent(); // the server restarted
    assert.deepEqual(names(tracker.unsent(select())), ['util.py', 'lib.py']);
  });

  test('an answer from before the server changed does not count', () => {
    const tracker = new ContextTracker();
    const entries = tracker.select([doc('util.py', 'a = 1\n')], CURRENT, LANGUAGES);
    const generation = tracker.generation;
    tracker.forgetSent();
    tracker.markSent(entries, generation);
    assert.deepEqual(names(tracker.unsent(entries)), ['util.py']);
  });

  test('a closed document counts as never sent (reopened, its version starts at 1 again)', () => {
    const tracker = new ContextTracker();
    const util = doc('util.py', 'a = 1\n');
    tracker.markSent(tracker.select([util], CURRENT, LANGUAGES), tracker.generation);
    tracker.forgetDocument(util.key);
    const reopened = doc('util.py', 'changed on disk = 1\n');
    const entries = tracker.select([reopened], CURRENT, LANGUAGES);
    assert.equal(entries[0].text, 'changed on disk = 1\n');
    assert.deepEqual(names(tracker.unsent(entries)), ['util.py']);
  });
});
