/**
 * Building the body of `POST /complete` from a document and a cursor position.
 *
 * Plain TypeScript: the document is anything with VS Code's TextDocument shape, so the
 * same code runs in the extension and in tests.
 */
import type { ContextFile } from './context';
import { extensionFor, ServerLanguage, serverLanguage } from './languages';

export interface PositionLike {
  readonly line: number;
  readonly character: number;
}

export interface DocumentLike {
  readonly languageId: string;
  readonly uri: { readonly scheme: string; readonly path: string };
  getText(): string;
  offsetAt(position: PositionLike): number;
}

/** The JSON body of POST /complete. */
export interface CompletionRequest {
  code: string;
  suffix: string;
  language: string;
  position: { line: number; character: number };
  filename: string;
  max_tokens: number;
  temperature: number;
  /** Other files the user has open or edited lately (see context.ts); only when some are sent. */
  context?: ContextFile[];
}

export interface RequestOptions {
  maxTokens: number;
  temperature: number;
  /** Path of the document relative to its workspace folder, if it has one. */
  relativePath?: string;
  maxPrefixChars?: number;
  maxSuffixChars?: number;
}

// The server keeps the last few hundred lines before the cursor and a few dozen after
// it; these bounds only keep a huge file from making every keystroke a megabyte POST.
export const DEFAULT_MAX_PREFIX_CHARS = 24_000;
export const DEFAULT_MAX_SUFFIX_CHARS = 6_000;
// The text before the cursor starts on a line whose number is a multiple of this, at least
// PREFIX_LINES above the cursor (the server uses the last 256): it depends on the cursor's
// line only, so while the user types on a line the start stays put, and so does the
// server's prompt (its KV cache). The character bound applies only to very long lines.
export const PREFIX_LINE_STEP = 64;
export const PREFIX_LINES = 320;
// Bounds the server accepts (its `max_tokens_limit` default and temperature range).
export const MAX_TOKENS_LIMIT = 1024;
export const DEFAULT_MAX_TOKENS = 100;
export const DEFAULT_TEMPERATURE = 0.1;

/**
 * The request for a completion at `position`, or undefined when the document's language
 * is not one the server completes.
 */
export function buildCompletionRequest(
  document: DocumentLike,
  position: PositionLike,
  options: RequestOptions,
): CompletionRequest | undefined {
  const language = serverLanguage(document.languageId);
  if (language === undefined) {
    return undefined;
  }
  const text = document.getText();
  const offset = document.offsetAt(position);
  const prefix = keepTailFromStableLine(
    text.slice(0, offset), position.line, options.maxPrefixChars ?? DEFAULT_MAX_PREFIX_CHARS);
  const suffix = keepHead(text.slice(offset), options.maxSuffixChars ?? DEFAULT_MAX_SUFFIX_CHARS);
  return {
    code: normalizeEol(prefix),
    suffix: normalizeEol(suffix),
    language,
    position: { line: position.line, character: position.character },
    filename: requestFilename(document, language, options.relativePath),
    max_tokens: clampMaxTokens(options.maxTokens),
    temperature: clampTemperature(options.temperature),
  };
}

/**
 * The name the server is told: the workspace-relative path when there is one, else the
 * base name; an untitled document gets its language's extension so it still says what
 * it is. Never an absolute path.
 */
export function requestFilename(
  document: DocumentLike,
  language: ServerLanguage,
  relativePath?: string,
): string {
  const fromPath = (relativePath ?? '').replace(/\\/g, '/');
  let name = fromPath && !fromPath.startsWith('/') && !/^[a-zA-Z]:/.test(fromPath)
    ? fromPath
    : baseName(document.uri.path);
  if (document.uri.scheme === 'untitled' && !name.includes('.')) {
    name += extensionFor(language);
  }
  return name || `untitled${extensionFor(language)}`;
}

export function clampMaxTokens(value: unknown): number {
  const n = typeof value === 'number' && Number.isFinite(value) ? Math.round(value) : DEFAULT_MAX_TOKENS;
  return Math.min(MAX_TOKENS_LIMIT, Math.max(1, n));
}

export function clampTemperature(value: unknown): number {
  const t = typeof value === 'number' && Number.isFinite(value) ? value : DEFAULT_TEMPERATURE;
  return Math.min(1, Math.max(0, t));
}

function baseName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] ?? '';
}

function normalizeEol(text: string): string {
  return text.replace(/\r\n?/g, '\n');
}

/**
 * The end of `before` (the text up to the cursor, which is on line `cursorLine`): from the
 * line PREFIX_LINES above the cursor rounded down to a multiple of PREFIX_LINE_STEP, or a
 * later such line when that is over `max` characters. A cut after the last `max`
 * characters moved with every keystroke and changed the whole prompt; this one depends on
 * the cursor's line.
 */
export function keepTailFromStableLine(before: string, cursorLine: number, max: number): string {
  const wanted = Math.max(0, cursorLine - PREFIX_LINES);
  let line = wanted - (wanted % PREFIX_LINE_STEP);
  // Where line `line` starts: walk back from the cursor's line.
  const starts = new Map<number, number>();
  let end = before.length;
  for (let l = cursorLine; l >= line; l -= 1) {
    const newline = before.lastIndexOf('\n', end - 1);
    starts.set(l, newline + 1);
    if (newline < 0) {
      line = Math.max(line, l); // fewer lines than the cursor's number says: start here
      break;
    }
    end = newline;
  }
  while (line < cursorLine && before.length - (starts.get(line) ?? 0) > max) {
    line += PREFIX_LINE_STEP; // very long lines: a later start, still on the grid
  }
  const start = starts.get(line) ?? 0;
  return before.length - start <= max ? before.slice(start) : keepTail(before, max);
}

/** The last `max` characters of `text`, starting at a line start when one is in reach. */
export function keepTail(text: string, max: number): string {
  if (text.length <= max) {
    return text;
  }
  let start = text.length - Math.max(0, max);
  const newline = text.indexOf('\n', start);
  if (newline !== -1 && newline + 1 < text.length) {
    start = newline + 1;
  } else if (isLowSurrogate(text.charCodeAt(start))) {
    start += 1; // never begin with half a surrogate pair
  }
  return text.slice(start);
}

/** The first `max` characters of `text`, ending at a line end when one is in reach. */
export function keepHead(text: string, max: number): string {
  if (text.length <= max) {
    return text;
  }
  let end = Math.max(0, max);
  const newline = text.lastIndexOf('\n', end - 1);
  if (newline > 0) {
    end = newline + 1;
  } else if (end > 0 && isHighSurrogate(text.charCodeAt(end - 1))) {
    end -= 1; // never end with half a surrogate pair
  }
  return text.slice(0, end);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
