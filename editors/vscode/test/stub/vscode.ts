/**
 * A stand-in for the `vscode` module: the part of the API the extension uses, with
 * behaviour close enough to VS Code's for the extension's logic, plus `stub`, which lets a
 * test set settings, answer notifications and quick picks, and read what was shown.
 *
 * It is not VS Code: no editor renders ghost text here, no real keystrokes, no real
 * extension host. See the README for what only a real VS Code shows.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */

// ---- values ---------------------------------------------------------------------------

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {
    if (line < 0 || character < 0) throw new Error('Illegal argument: negative position');
  }
  isEqual(other: Position): boolean {
    return this.line === other.line && this.character === other.character;
  }
  isBefore(other: Position): boolean {
    return this.line < other.line || (this.line === other.line && this.character < other.character);
  }
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(start: Position, end: Position);
  constructor(startLine: number, startCharacter: number, endLine: number, endCharacter: number);
  constructor(a: any, b: any, c?: any, d?: any) {
    const start = typeof a === 'number' ? new Position(a, b) : a;
    const end = typeof a === 'number' ? new Position(c, d) : b;
    [this.start, this.end] = end.isBefore(start) ? [end, start] : [start, end];
  }
  get isEmpty(): boolean {
    return this.start.isEqual(this.end);
  }
}

export class InlineCompletionItem {
  constructor(
    public insertText: string,
    public range?: Range,
    public command?: unknown,
  ) {}
}

export class InlineCompletionList {
  constructor(public items: InlineCompletionItem[]) {}
}

export enum InlineCompletionTriggerKind {
  Invoke = 0,
  Automatic = 1,
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export enum ProgressLocation {
  SourceControl = 1,
  Window = 10,
  Notification = 15,
}

export enum ConfigurationTarget {
  Global = 1,
  Workspace = 2,
  WorkspaceFolder = 3,
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class Disposable {
  constructor(private readonly onDispose: () => void) {}
  static from(...items: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => items.forEach((i) => i.dispose()));
  }
  dispose(): void {
    this.onDispose();
  }
}

export class EventEmitter<T> {
  private listeners: Array<(e: T) => unknown> = [];
  readonly event = (listener: (e: T) => unknown): Disposable => {
    this.listeners.push(listener);
    return new Disposable(() => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    });
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) l(e);
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class CancellationTokenSource {
  private readonly emitter = new EventEmitter<void>();
  private cancelled = false;
  readonly token: { readonly isCancellationRequested: boolean; onCancellationRequested(l: () => unknown): Disposable };
  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const source = this;
    this.token = {
      get isCancellationRequested() {
        return source.cancelled;
      },
      onCancellationRequested: (listener: () => unknown) => source.emitter.event(listener),
    };
  }
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emitter.fire();
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly path: string,
  ) {}
  static file(path: string): Uri {
    return new Uri('file', path);
  }
  static from(parts: { scheme: string; path: string }): Uri {
    return new Uri(parts.scheme, parts.path);
  }
  get fsPath(): string {
    return this.path;
  }
  toString(): string {
    return `${this.scheme}:${this.path}`;
  }
}

// ---- documents ------------------------------------------------------------------------

/**
 * A TextDocument over a text (LF or CRLF), with VS Code's offset arithmetic. `editDocument`
 * replaces its text as typing would: a new version and onDidChangeTextDocument.
 */
export function createTextDocument(text: string, languageId: string, uri: Uri = Uri.file('/work/project/file')) {
  let lineStarts = [0];
  const index = () => {
    lineStarts = [0];
    for (let i = 0; i < text.length; i++) {
      if (text[i] === '\n') lineStarts.push(i + 1);
    }
  };
  index();
  const lineEnd = (line: number) => {
    const next = line + 1 < lineStarts.length ? lineStarts[line + 1] - 1 : text.length;
    return next > lineStarts[line] && text[next - 1] === '\r' ? next - 1 : next;
  };
  const offsetAt = (p: Position) => {
    const line = Math.min(Math.max(0, p.line), lineStarts.length - 1);
    return Math.min(lineStarts[line] + p.character, lineEnd(line));
  };
  return {
    uri,
    fileName: uri.fsPath,
    languageId,
    version: 1,
    isUntitled: uri.scheme === 'untitled',
    get lineCount() {
      return lineStarts.length;
    },
    get eol() {
      return text.includes('\r\n') ? 2 : 1;
    },
    /** Reads of the whole text, to check that one is not read on every keystroke. */
    reads: 0,
    setText(next: string): void {
      text = next;
      index();
      this.version += 1;
    },
    getText(range?: Range): string {
      if (!range) this.reads += 1;
      return range ? text.slice(offsetAt(range.start), offsetAt(range.end)) : text;
    },
    offsetAt,
    positionAt(offset: number): Position {
      const o = Math.min(Math.max(0, offset), text.length);
      let line = 0;
      while (line + 1 < lineStarts.length && lineStarts[line + 1] <= o) line++;
      return new Position(line, Math.min(o, lineEnd(line)) - lineStarts[line]);
    },
    lineAt(line: number) {
      return { lineNumber: line, text: text.slice(lineStarts[line], lineEnd(line)) };
    },
  };
}

// ---- what the extension calls, recorded for tests -------------------------------------

type Level = 'information' | 'warning' | 'error';

export interface ShownMessage {
  level: Level;
  message: string;
  items: string[];
  modal: boolean;
}

export interface ProgressRecord {
  options: { location: ProgressLocation; title?: string; cancellable?: boolean };
  reports: Array<{ message?: string; increment?: number }>;
  done: boolean;
}

export class StatusBarItem {
  text = '';
  tooltip: string | undefined;
  command: string | undefined;
  name: string | undefined;
  backgroundColor: ThemeColor | undefined;
  visible = false;
  disposed = false;
  constructor(
    readonly alignment: StatusBarAlignment,
    readonly priority?: number,
  ) {}
  show(): void {
    this.visible = true;
  }
  hide(): void {
    this.visible = false;
  }
  dispose(): void {
    this.disposed = true;
    this.visible = false;
  }
}

class OutputChannel {
  readonly lines: string[] = [];
  shown = false;
  constructor(readonly name: string) {}
  appendLine(line: string): void {
    this.lines.push(line);
  }
  append(text: string): void {
    this.lines.push(text);
  }
  show(): void {
    this.shown = true;
  }
  hide(): void {}
  clear(): void {
    this.lines.length = 0;
  }
  dispose(): void {}
}

const configChanged = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();
/** One SecretStorage for all windows, as one VS Code profile has. */
const secretChanged = new EventEmitter<{ key: string }>();

export const stub = {
  /** Settings by full key, e.g. 'helios.serverUrl'. Unset keys read as the package.json default. */
  settings: new Map<string, unknown>(),
  defaults: new Map<string, unknown>(),
  statusBarItems: [] as StatusBarItem[],
  outputChannels: [] as OutputChannel[],
  messages: [] as ShownMessage[],
  progress: [] as ProgressRecord[],
  commands: new Map<string, (...args: any[]) => any>(),
  executed: [] as Array<{ command: string; args: unknown[] }>,
  providers: [] as Array<{ selector: unknown; provider: any }>,
  quickPicks: [] as Array<{ items: any[]; options: any }>,
  inputBoxes: [] as any[],
  /** The extension's SecretStorage, shared by every context made here (as one VS Code profile's is). */
  secrets: new Map<string, string>(),
  workspaceFolder: '/work/project',
  /** The documents shown in editors (window.visibleTextEditors). */
  visibleEditors: [] as StubDocument[],
  /** Picks the answer to a notification; default: dismissed. */
  answerMessage: (_m: ShownMessage): string | undefined => undefined,
  /** Picks the answer to a quick pick; default: dismissed. */
  answerQuickPick: (_items: any[]): any => undefined,
  /** Picks the answer to an input box; default: dismissed (Escape). */
  answerInputBox: (_options: any): string | undefined => undefined,

  /** Reads contributes.configuration defaults from the extension's package.json. */
  loadDefaults(packageJson: any): void {
    const props = packageJson.contributes?.configuration?.properties ?? {};
    for (const [key, value] of Object.entries<any>(props)) this.defaults.set(key, value.default);
  },
  /** Changes a setting and fires onDidChangeConfiguration, as the Settings editor would. */
  set(key: string, value: unknown): void {
    this.settings.set(key, value);
    configChanged.fire({ affectsConfiguration: (s: string) => key === s || key.startsWith(`${s}.`) });
  },
  statusItem(): StatusBarItem {
    const item = this.statusBarItems.find((i) => !i.disposed);
    if (!item) throw new Error('no status bar item');
    return item;
  },
  log(): string {
    return this.outputChannels.map((c) => c.lines.join('\n')).join('\n');
  },
  inlineProvider(): any {
    const entry = this.providers[this.providers.length - 1];
    if (!entry) throw new Error('no inline completion provider registered');
    return entry.provider;
  },
  extensionContext() {
    const store = new Map<string, unknown>();
    const memento = {
      get: <T>(key: string, fallback?: T) => (store.has(key) ? (store.get(key) as T) : fallback),
      update: async (key: string, value: unknown) => {
        store.set(key, value);
      },
      keys: () => [...store.keys()],
    };
    const secrets = {
      get: async (key: string) => stub.secrets.get(key),
      store: async (key: string, value: string) => {
        stub.secrets.set(key, value);
        secretChanged.fire({ key });
      },
      delete: async (key: string) => {
        stub.secrets.delete(key);
        secretChanged.fire({ key });
      },
      onDidChange: secretChanged.event,
    };
    return {
      subscriptions: [] as { dispose(): unknown }[],
      secrets,
      globalState: memento,
      workspaceState: memento,
      extensionPath: '',
      extensionMode: 3,
    };
  },
  reset(): void {
    this.settings.clear();
    this.statusBarItems.length = 0;
    this.outputChannels.length = 0;
    this.messages.length = 0;
    this.progress.length = 0;
    this.commands.clear();
    this.executed.length = 0;
    this.providers.length = 0;
    this.quickPicks.length = 0;
    this.inputBoxes.length = 0;
    this.visibleEditors = [];
    this.secrets.clear();
    this.answerMessage = () => undefined;
    this.answerQuickPick = () => undefined;
    this.answerInputBox = () => undefined;
  },
};

function show(level: Level, message: string, rest: unknown[]): Promise<string | undefined> {
  let modal = false;
  if (rest.length > 0 && typeof rest[0] === 'object' && rest[0] !== null) {
    modal = Boolean((rest[0] as { modal?: boolean }).modal);
    rest = rest.slice(1);
  }
  const shown: ShownMessage = { level, message, items: rest.map(String), modal };
  stub.messages.push(shown);
  return Promise.resolve(stub.answerMessage(shown));
}

const selectionChanged = new EventEmitter<{ textEditor: unknown }>();
const activeEditorChanged = new EventEmitter<unknown>();
const documentChanged = new EventEmitter<{ document: unknown; contentChanges: unknown[] }>();
const documentClosed = new EventEmitter<unknown>();

type StubDocument = ReturnType<typeof createTextDocument>;

/** Replaces a document's text as an edit would: a new version, onDidChangeTextDocument. */
export function editDocument(document: StubDocument, text: string): void {
  document.setText(text);
  documentChanged.fire({ document, contentChanges: [{ text }] });
}

/** Closes a document: onDidCloseTextDocument. */
export function closeDocument(document: StubDocument): void {
  stub.visibleEditors = stub.visibleEditors.filter((d) => d !== document);
  documentClosed.fire(document);
}

/** Moves the cursor as a click or a jump would: fires onDidChangeTextEditorSelection. */
export function moveCursor(document: unknown, position: Position): void {
  selectionChanged.fire({ textEditor: { document, selection: { active: position } } });
}

export const window = {
  /** The editors of `stub.visibleEditors`' documents, in that order. */
  get visibleTextEditors() {
    return stub.visibleEditors.map((document) => ({ document, selection: { active: new Position(0, 0) } }));
  },
  onDidChangeTextEditorSelection: selectionChanged.event,
  onDidChangeActiveTextEditor: activeEditorChanged.event,
  createStatusBarItem(alignment: StatusBarAlignment = StatusBarAlignment.Left, priority?: number): StatusBarItem {
    const item = new StatusBarItem(alignment, priority);
    stub.statusBarItems.push(item);
    return item;
  },
  createOutputChannel(name: string): OutputChannel {
    const channel = new OutputChannel(name);
    stub.outputChannels.push(channel);
    return channel;
  },
  showInformationMessage: (message: string, ...rest: unknown[]) => show('information', message, rest),
  showWarningMessage: (message: string, ...rest: unknown[]) => show('warning', message, rest),
  showErrorMessage: (message: string, ...rest: unknown[]) => show('error', message, rest),
  async showQuickPick(items: any[] | Promise<any[]>, options?: any): Promise<any> {
    const resolved = await items;
    stub.quickPicks.push({ items: resolved, options });
    return stub.answerQuickPick(resolved);
  },
  async showInputBox(options?: any): Promise<string | undefined> {
    stub.inputBoxes.push(options ?? {});
    return stub.answerInputBox(options ?? {});
  },
  async withProgress<R>(
    options: ProgressRecord['options'],
    task: (progress: { report(value: { message?: string; increment?: number }): void }, token: any) => Promise<R>,
  ): Promise<R> {
    const record: ProgressRecord = { options, reports: [], done: false };
    stub.progress.push(record);
    const source = new CancellationTokenSource();
    try {
      return await task({ report: (value) => record.reports.push(value) }, source.token);
    } finally {
      record.done = true;
    }
  },
};

export const commands = {
  registerCommand(command: string, callback: (...args: any[]) => any): Disposable {
    if (stub.commands.has(command)) throw new Error(`command '${command}' already exists`);
    stub.commands.set(command, callback);
    return new Disposable(() => stub.commands.delete(command));
  },
  async executeCommand(command: string, ...args: unknown[]): Promise<unknown> {
    stub.executed.push({ command, args });
    const callback = stub.commands.get(command);
    return callback ? await callback(...args) : undefined;
  },
  async getCommands(): Promise<string[]> {
    return [...stub.commands.keys()];
  },
};

export const languages = {
  registerInlineCompletionItemProvider(selector: unknown, provider: any): Disposable {
    const entry = { selector, provider };
    stub.providers.push(entry);
    return new Disposable(() => {
      const i = stub.providers.indexOf(entry);
      if (i !== -1) stub.providers.splice(i, 1);
    });
  },
};

export const workspace = {
  getConfiguration(section?: string) {
    const full = (key: string) => (section ? `${section}.${key}` : key);
    return {
      get<T>(key: string, fallback?: T): T | undefined {
        const k = full(key);
        if (stub.settings.has(k)) return stub.settings.get(k) as T;
        if (stub.defaults.has(k)) return stub.defaults.get(k) as T;
        return fallback;
      },
      has(key: string): boolean {
        return stub.settings.has(full(key)) || stub.defaults.has(full(key));
      },
      async update(key: string, value: unknown, _target?: ConfigurationTarget): Promise<void> {
        stub.set(full(key), value);
      },
    };
  },
  onDidChangeConfiguration: configChanged.event,
  onDidChangeTextDocument: documentChanged.event,
  onDidCloseTextDocument: documentClosed.event,
  /** The one workspace folder, for a file: URI inside it. */
  getWorkspaceFolder(uri: Uri) {
    const root = stub.workspaceFolder;
    if (uri.scheme !== 'file' || !uri.fsPath.startsWith(`${root}/`)) return undefined;
    return { uri: Uri.file(root), name: root.split('/').pop() ?? '', index: 0 };
  },
  asRelativePath(pathOrUri: string | Uri, _includeWorkspaceFolder?: boolean): string {
    const path = typeof pathOrUri === 'string' ? pathOrUri : pathOrUri.fsPath;
    const root = `${stub.workspaceFolder}/`;
    return path.startsWith(root) ? path.slice(root.length) : path;
  },
};

export const env = {
  machineId: 'stub-machine',
};
