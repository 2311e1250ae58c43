/**
 * The `context` of POST /complete and /prefetch: other files the user has open or edited
 * lately, so the server can put the parts that matter before the file in the prompt.
 *
 * Plain TypeScript (no `vscode`): which documents qualify, in what order, within which
 * bounds, and which of them a server already has (so a keystroke does not re-send them).
 */

/** One file of the `context` field, as the server takes it. */
export interface ContextFile {
  filename: string;
  text: string;
}

// The server's bounds (http_api/schemas.py MAX_CONTEXT_*): beyond them it answers 400.
export const MAX_CONTEXT_FILES = 16;
export const MAX_CONTEXT_FILE_CHARS = 256 * 1024;
export const MAX_CONTEXT_CHARS = 512 * 1024;
/** Recently edited documents remembered (besides the visible ones). */
export const RECENT_EDITS = 8;
/** The server's default request body limit (GET /status `limits.max_body_bytes`). */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
// Room left in the body for what the request's other fields may grow by.
const BODY_MARGIN_BYTES = 4096;

// Base names never sent, matched case-insensitively: keys, credentials, environment files.
const SECRET_NAMES = [
  /^\.env$/,
  /^\.env\..*/,
  /\.env$/,
  /\.pem$/,
  /\.key$/,
  /^id_/, // ssh keys: id_rsa, id_ed25519.pub
  /\.p12$/,
  /\.pfx$/,
  /\.jks$/,
  /\.keystore$/,
  /^\.npmrc$/,
  /^[._]netrc$/,
  /^\.pypirc$/,
  /^\.pgpass$/,
  /^\.htpasswd$/,
  /^credentials(\.json)?$/,
  /^secrets\.(json|ya?ml)$/,
];

/** Whether a file of this name (a path or a bare name) looks like it holds secrets. */
export function isSecretFilename(name: string): boolean {
  const base = (name.split(/[\\/]/).pop() ?? '').toLowerCase();
  return base !== '' && SECRET_NAMES.some((pattern) => pattern.test(base));
}

/** A document that may go in the context, as the extension sees it. */
export interface ContextDocument {
  /** Identifies the document (its URI). */
  readonly key: string;
  /** Its path relative to the workspace folder; undefined when it is in none. */
  readonly filename: string | undefined;
  readonly languageId: string;
  readonly version: number;
  getText(): string;
}

/** A document chosen for the context, with the text it is sent with. */
export interface ContextEntry {
  readonly key: string;
  readonly filename: string;
  readonly version: number;
  readonly text: string;
}

/** The most recently edited documents, most recent first, at most `capacity`. */
export class RecentDocuments<T extends { readonly key: string }> {
  private readonly items: T[] = [];

  constructor(readonly capacity = RECENT_EDITS) {}

  touch(item: T): void {
    this.forget(item.key);
    this.items.unshift(item);
    this.items.length = Math.min(this.items.length, this.capacity);
  }

  forget(key: string): void {
    const i = this.items.findIndex((item) => item.key === key);
    if (i !== -1) this.items.splice(i, 1);
  }

  list(): readonly T[] {
    return this.items;
  }
}

export interface ContextBounds {
  maxFiles: number;
  maxFileChars: number;
  maxChars: number;
  /** The most the context may add to the request body, as UTF-8 JSON. */
  maxBytes: number;
}

export const SERVER_BOUNDS: ContextBounds = {
  maxFiles: MAX_CONTEXT_FILES,
  maxFileChars: MAX_CONTEXT_FILE_CHARS,
  maxChars: MAX_CONTEXT_CHARS,
  maxBytes: Number.POSITIVE_INFINITY,
};

/** How many bytes of a request body the context may take, given the rest of the body. */
export function contextByteBudget(maxBodyBytes: number, request: unknown): number {
  const rest = Buffer.byteLength(JSON.stringify(request), 'utf8');
  return Math.max(0, maxBodyBytes - rest - BODY_MARGIN_BYTES);
}

/** A document's text as sent: "\n" line breaks; undefined when it cannot be sent. */
interface Prepared {
  version: number;
  text: string | undefined;
  /** Its size in the JSON body: the escaped string, in UTF-8, with a comma. */
  bytes: number;
}

/**
 * Chooses the context for a request and remembers what each server was sent.
 *
 * Each document's text is read once per version (a keystroke elsewhere reads nothing).
 */
export class ContextTracker {
  private readonly prepared = new Map<string, Prepared>();
  // What the server has: filename -> "<key>#<version>" of the text it was last sent.
  private readonly sent = new Map<string, string>();
  private generationCount = 0;

  /**
   * The documents to send, most relevant first: `candidates` in their order (the caller
   * puts visible editors first, then recent edits, most recent first), without the
   * current document, secrets, documents outside the workspace, languages not in
   * `languages`, duplicates of a name, and texts the server would refuse; cut by whole
   * files at `bounds`.
   */
  select(
    candidates: readonly ContextDocument[],
    current: { key: string; filename: string },
    languages: readonly string[],
    bounds: ContextBounds = SERVER_BOUNDS,
  ): ContextEntry[] {
    const chosen: ContextEntry[] = [];
    const names = new Set<string>([current.filename]);
    const keys = new Set<string>([current.key]);
    let chars = 0;
    let bytes = 2 + '"context":'.length;
    for (const doc of candidates) {
      if (chosen.length >= bounds.maxFiles) break;
      const filename = doc.filename;
      if (filename === undefined || keys.has(doc.key) || names.has(filename)) continue;
      if (!languages.includes(doc.languageId) || isSecretFilename(filename)) continue;
      const prepared = this.prepare(doc, bounds.maxFileChars);
      if (prepared.text === undefined) continue;
      const size = prepared.bytes + Buffer.byteLength(JSON.stringify(filename), 'utf8') + 24;
      // A file that does not fit is left out whole; a smaller, older one may still fit.
      if (chars + prepared.text.length > bounds.maxChars || bytes + size > bounds.maxBytes) continue;
      chars += prepared.text.length;
      bytes += size;
      keys.add(doc.key);
      names.add(filename);
      chosen.push({ key: doc.key, filename, version: prepared.version, text: prepared.text });
    }
    const live = new Set(candidates.map((doc) => doc.key));
    for (const key of this.prepared.keys()) if (!live.has(key)) this.prepared.delete(key);
    return chosen;
  }

  /** The entries this server does not have in this version. */
  unsent(entries: readonly ContextEntry[]): ContextEntry[] {
    return entries.filter((entry) => this.sent.get(entry.filename) !== tag(entry));
  }

  /** Changes whenever what was sent is forgotten: read before sending, give to markSent. */
  get generation(): number {
    return this.generationCount;
  }

  /**
   * The server answered a request that carried `entries`: it has them now, unless it was
   * forgotten meanwhile (an answer from before a restart says nothing of the new server).
   */
  markSent(entries: readonly ContextEntry[], generation: number): void {
    if (generation !== this.generationCount) return;
    for (const entry of entries) this.sent.set(entry.filename, tag(entry));
  }

  /**
   * The document was closed: reopened, it starts again at version 1, maybe with other
   * text, so what was sent of it says nothing then.
   */
  forgetDocument(key: string): void {
    this.prepared.delete(key);
    for (const [filename, sentTag] of this.sent) {
      if (sentTag.startsWith(`${key}#`)) this.sent.delete(filename);
    }
  }

  /** A new server, or one that may have lost what it was sent: send everything again. */
  forgetSent(): void {
    this.sent.clear();
    this.generationCount += 1;
  }

  private prepare(doc: ContextDocument, maxFileChars: number): Prepared {
    const known = this.prepared.get(doc.key);
    if (known?.version === doc.version) return known;
    const text = doc.getText().replace(/\r\n?/g, '\n');
    // Too long for the server, or a lone surrogate (which it refuses): never sent.
    const usable = text.length <= maxFileChars && !LONE_SURROGATE.test(text);
    const prepared: Prepared = usable
      ? { version: doc.version, text, bytes: Buffer.byteLength(JSON.stringify(text), 'utf8') }
      : { version: doc.version, text: undefined, bytes: 0 };
    this.prepared.set(doc.key, prepared);
    return prepared;
  }
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function tag(entry: ContextEntry): string {
  return `${entry.key}#${entry.version}`;
}

/** The `context` field for entries. */
export function contextFiles(entries: readonly ContextEntry[]): ContextFile[] {
  return entries.map((entry) => ({ filename: entry.filename, text: entry.text }));
}
