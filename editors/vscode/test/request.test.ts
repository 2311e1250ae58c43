import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { serverLanguage } from '../src/languages';
import {
  buildCompletionRequest,
  clampMaxTokens,
  clampTemperature,
  keepHead,
  keepTail,
  keepTailFromStableLine,
  PREFIX_LINE_STEP,
} from '../src/request';
import { createTextDocument, Position, Uri } from './stub/vscode';

const options = { maxTokens: 64, temperature: 0.2 };

describe('buildCompletionRequest', () => {
  test('splits the document at the cursor into code and suffix', () => {
    const text = 'def fibonacci(n):\n    if n <= 1:\n        return n\n    \n\nprint(fibonacci(5))\n';
    const doc = createTextDocument(text, 'python', Uri.file('/work/project/src/fib.py'));
    const request = buildCompletionRequest(doc, new Position(3, 4), { ...options, relativePath: 'src/fib.py' });
    assert.deepEqual(request, {
      code: 'def fibonacci(n):\n    if n <= 1:\n        return n\n    ',
      suffix: '\n\nprint(fibonacci(5))\n',
      language: 'python',
      position: { line: 3, character: 4 },
      filename: 'src/fib.py',
      max_tokens: 64,
      temperature: 0.2,
    });
  });

  test('mid-line cursor: the rest of the line is the start of the suffix', () => {
    const doc = createTextDocument('const total = sum(a, b);\n', 'javascript', Uri.file('/work/project/a.js'));
    const request = buildCompletionRequest(doc, new Position(0, 18), options)!;
    assert.equal(request.code, 'const total = sum(');
    assert.equal(request.suffix, 'a, b);\n');
    assert.equal(request.filename, 'a.js');
  });

  test('CRLF documents are sent with LF, position unchanged', () => {
    const doc = createTextDocument('int main() {\r\n  return 0;\r\n}\r\n', 'c', Uri.file('/p/main.c'));
    const request = buildCompletionRequest(doc, new Position(1, 2), options)!;
    assert.equal(request.code, 'int main() {\n  ');
    assert.equal(request.suffix, 'return 0;\n}\n');
    assert.deepEqual(request.position, { line: 1, character: 2 });
  });

  test('a cursor at the very start and at the very end', () => {
    const doc = createTextDocument('fn main() {}', 'rust', Uri.file('/p/main.rs'));
    assert.equal(buildCompletionRequest(doc, new Position(0, 0), options)!.code, '');
    const end = buildCompletionRequest(doc, new Position(0, 12), options)!;
    assert.equal(end.code, 'fn main() {}');
    assert.equal(end.suffix, '');
  });

  test('languages: the documented ones, dialects mapped, others refused', () => {
    for (const id of ['python', 'javascript', 'typescript', 'java', 'cpp', 'c', 'go', 'rust', 'html', 'css', 'json']) {
      assert.equal(serverLanguage(id), id);
    }
    assert.equal(serverLanguage('typescriptreact'), 'typescript');
    assert.equal(serverLanguage('javascriptreact'), 'javascript');
    assert.equal(serverLanguage('jsonc'), 'json');
    const markdown = createTextDocument('# title', 'markdown', Uri.file('/p/README.md'));
    assert.equal(buildCompletionRequest(markdown, new Position(0, 1), options), undefined);
  });

  test('filenames: relative path, never an absolute one; untitled gets an extension', () => {
    const doc = createTextDocument('x = 1', 'python', Uri.file('/home/me/secret/project/x.py'));
    assert.equal(buildCompletionRequest(doc, new Position(0, 0), { ...options, relativePath: '/home/me/secret/project/x.py' })!.filename, 'x.py');
    assert.equal(buildCompletionRequest(doc, new Position(0, 0), { ...options, relativePath: 'C:\\Users\\me\\x.py' })!.filename, 'x.py');
    assert.equal(buildCompletionRequest(doc, new Position(0, 0), { ...options, relativePath: 'pkg\\x.py' })!.filename, 'pkg/x.py');
    const untitled = createTextDocument('x = 1', 'python', Uri.from({ scheme: 'untitled', path: 'Untitled-1' }));
    assert.equal(buildCompletionRequest(untitled, new Position(0, 0), options)!.filename, 'Untitled-1.py');
    const go = createTextDocument('package main', 'go', Uri.from({ scheme: 'untitled', path: 'Untitled-2' }));
    assert.equal(buildCompletionRequest(go, new Position(0, 0), options)!.filename, 'Untitled-2.go');
  });

  test('max_tokens and temperature are kept inside the bounds the server accepts', () => {
    assert.equal(clampMaxTokens(0), 1);
    assert.equal(clampMaxTokens(5000), 1024);
    assert.equal(clampMaxTokens(12.6), 13);
    assert.equal(clampMaxTokens(Number.NaN), 100);
    assert.equal(clampMaxTokens('50'), 100);
    assert.equal(clampTemperature(-1), 0);
    assert.equal(clampTemperature(7), 1);
    assert.equal(clampTemperature(Number.POSITIVE_INFINITY), 0.1);
    const doc = createTextDocument('x', 'python', Uri.file('/p/x.py'));
    const request = buildCompletionRequest(doc, new Position(0, 1), { maxTokens: 99999, temperature: 99 })!;
    assert.equal(request.max_tokens, 1024);
    assert.equal(request.temperature, 1);
  });
});

describe('bounds on code and suffix', () => {
  test('a long prefix is cut to whole lines at its start', () => {
    const lines = Array.from({ length: 2000 }, (_, i) => `line ${i}`);
    const text = `${lines.join('\n')}\n`;
    const doc = createTextDocument(text + 'tail', 'python', Uri.file('/p/big.py'));
    const request = buildCompletionRequest(doc, new Position(2000, 4), { ...options, maxPrefixChars: 1000, maxSuffixChars: 10 })!;
    assert.ok(request.code.length <= 1000, `code has ${request.code.length} chars`);
    assert.match(request.code, /^line \d+\n/);
    assert.ok(request.code.endsWith('line 1999\ntail'));
  });

  test('a long suffix is cut to whole lines at its end', () => {
    const text = `x = ${'\n'.padEnd(1, '')}${Array.from({ length: 500 }, (_, i) => `y${i} = ${i}`).join('\n')}`;
    const doc = createTextDocument(text, 'python', Uri.file('/p/big.py'));
    const request = buildCompletionRequest(doc, new Position(0, 4), { ...options, maxSuffixChars: 200 })!;
    assert.ok(request.suffix.length <= 200);
    assert.ok(request.suffix.endsWith('\n'));
    assert.ok(text.slice(4).startsWith(request.suffix));
  });

  test('one huge line is cut without splitting a surrogate pair', () => {
    const emoji = '😀'; // two UTF-16 code units
    const line = emoji.repeat(100);
    const tail = keepTail(line, 51);
    assert.ok(tail.length <= 51);
    assert.equal(tail, emoji.repeat(25));
    const head = keepHead(line, 51);
    assert.equal(head, emoji.repeat(25));
    for (const s of [tail, head]) assert.doesNotThrow(() => encodeURIComponent(s));
  });

  test('typing on a line never moves the start of what is sent', () => {
    // A file far longer than the limit, the cursor on a new line at line 1500.
    const lines = Array.from({ length: 1500 }, (_, i) => `value_${i} = compute(${i})  # step ${i}`);
    const above = `${lines.join('\n')}\n`;
    const starts = new Set<string>();
    for (let k = 0; k <= 200; k++) {
      const sent = keepTailFromStableLine(above + 'x'.repeat(k), 1500, 24_000);
      assert.ok(sent.length <= 24_000);
      const firstLine = sent.slice(0, sent.indexOf('\n'));
      starts.add(firstLine);
      assert.equal(Number(firstLine.split('_')[1].split(' ')[0]) % PREFIX_LINE_STEP, 0);
    }
    assert.equal(starts.size, 1, `the cut moved: ${[...starts].join(', ')}`);
    // The old cut (the last N characters) moved with every keystroke.
    const old = new Set(Array.from({ length: 20 }, (_, k) => keepTail(above + 'x'.repeat(k), 24_000).slice(0, 20)));
    assert.ok(old.size > 1);
  });

  test('short texts pass through unchanged', () => {
    assert.equal(keepTail('abc\ndef', 100), 'abc\ndef');
    assert.equal(keepHead('abc\ndef', 100), 'abc\ndef');
  });
});
