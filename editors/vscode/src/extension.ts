/**
 * The VS Code side: wires the plain modules (client, request, debounce, status, server)
 * to an inline completion provider, a status bar item, commands and settings.
 */
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import { abortSignalFrom } from './cancellation';
import { HeliosClient, HeliosError } from './client';
import { HeliosConfig, readConfig } from './config';
import {
  ContextDocument,
  ContextEntry,
  contextByteBudget,
  contextFiles,
  ContextTracker,
  DEFAULT_MAX_BODY_BYTES,
  RecentDocuments,
  SERVER_BOUNDS,
} from './context';
import { Debouncer } from './debounce';
import { serverLanguage } from './languages';
import { buildCompletionRequest, CompletionRequest } from './request';
import { describeExit, launchFor, ServerProcess, waitUntilReady } from './server';
import { INITIAL_STATUS, pollDelayMs, reduceStatus, StatusEvent, StatusState, viewStatus } from './status';

export const COMMANDS = {
  restartServer: 'helios.restartServer',
  showStatus: 'helios.showStatus',
  toggleCompletions: 'helios.toggleCompletions',
  startServer: 'helios.startServer',
  showLog: 'helios.showLog',
  setApiKey: 'helios.setApiKey',
} as const;

/** The SecretStorage key of the API key sent as `Authorization: Bearer`. */
export const API_KEY_SECRET = 'helios.apiKey';

const CLIENT_ID_KEY = 'helios.clientId';
const NOT_RUNNING = 'Helios server not running';
const START_ACTION = 'Start Server';
const LOG_ACTION = 'Show Log';
const SETTINGS_ACTION = 'Settings';
const SET_KEY_ACTION = 'Set API Key';
type Action = typeof START_ACTION | typeof LOG_ACTION | typeof SETTINGS_ACTION | typeof SET_KEY_ACTION;
/** How long a started server may take to load its model before we give up waiting. */
const START_TIMEOUT_MS = 120_000;
// A pause after the cursor lands before the cache is warmed there: passing moves (arrow
// keys held down, scrolling with the cursor) cost nothing.
const PREFETCH_PAUSE_MS = 300;
// A server whose start (now - its /health uptime) moved by more than this was restarted.
const RESTART_SLACK_MS = 2000;

/** What `activate` returns: for other extensions and for tests. */
export interface HeliosApi {
  readonly status: StatusState;
  readonly clientId: string;
  /** The server process this extension started, if any. */
  readonly serverPid: number | undefined;
  /** Ask /health (and /status) now and update the status bar. */
  refresh(): Promise<StatusState>;
  /** Resolves when a server start begun by this extension has finished (ready or not). */
  whenStarted(): Promise<void>;
}

let instance: Helios | undefined;

export function activate(context: vscode.ExtensionContext): HeliosApi {
  instance = new Helios(context);
  context.subscriptions.push(instance);
  instance.start();
  return instance.api;
}

export async function deactivate(): Promise<void> {
  const helios = instance;
  instance = undefined;
  await helios?.shutdown();
}

class Helios implements vscode.Disposable, vscode.InlineCompletionItemProvider {
  private config: HeliosConfig;
  private client: HeliosClient;
  private state: StatusState = INITIAL_STATUS;
  private readonly clientId: string;
  private readonly statusItem: vscode.StatusBarItem;
  private readonly log: vscode.OutputChannel;
  private readonly debouncer = new Debouncer();
  // Where the cursor last asked (or was warmed): a move elsewhere warms the server's cache.
  private lastPlace = '';
  private prefetchTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  // Other files sent as `context`: recent edits, and what the server already has.
  private readonly recentEdits = new RecentDocuments<{ key: string; document: vscode.TextDocument }>();
  private readonly contextTracker = new ContextTracker();
  /** The server refused a request with `context` and took it without: none is sent. */
  private contextRefused = false;
  private maxBodyBytes = DEFAULT_MAX_BODY_BYTES;
  /** When the server started, by its /health uptime: a later start is a restart. */
  private serverStartedAt: number | undefined;
  private server: ServerProcess | undefined;
  private starting: Promise<void> | undefined;
  private modelFetch: Promise<void> | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private notifiedNotRunning = false;
  private autoStartTried = false;
  private notifiedUnauthorized = false;
  private apiKey: string | undefined;
  private disposed = false;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.config = readConfig(vscode.workspace.getConfiguration('helios'));
    this.clientId = this.loadClientId();
    this.client = this.makeClient();
    this.log = vscode.window.createOutputChannel('Helios');
    this.statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
    this.statusItem.name = 'Helios';
    this.statusItem.command = COMMANDS.showStatus;
    this.disposables.push(this.log, this.statusItem);
  }

  readonly api: HeliosApi = this.makeApi();

  private makeApi(): HeliosApi {
    const helios = this;
    return {
      get status() {
        return helios.state;
      },
      get clientId() {
        return helios.clientId;
      },
      get serverPid() {
        return helios.server?.running ? helios.server.pid : undefined;
      },
      refresh: () => helios.refresh(),
      whenStarted: async () => {
        await helios.starting;
      },
    };
  }

  start(): void {
    this.render();
    this.statusItem.show();
    const selector: vscode.DocumentSelector = [
      { scheme: 'file' },
      { scheme: 'untitled' },
      { scheme: 'vscode-notebook-cell' },
    ];
    this.disposables.push(
      vscode.languages.registerInlineCompletionItemProvider(selector, this),
      vscode.commands.registerCommand(COMMANDS.restartServer, () => this.restartServer()),
      vscode.commands.registerCommand(COMMANDS.showStatus, () => this.showStatus()),
      vscode.commands.registerCommand(COMMANDS.toggleCompletions, () => this.toggleCompletions()),
      vscode.commands.registerCommand(COMMANDS.startServer, () => this.startServer(true)),
      vscode.commands.registerCommand(COMMANDS.showLog, () => this.log.show(true)),
      vscode.commands.registerCommand(COMMANDS.setApiKey, () => this.setApiKey()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('helios')) this.onConfigChanged();
      }),
      // The cursor lands somewhere new (a click, a jump, another file): warm the server's
      // cache there while the user reads, before the first keystroke.
      vscode.window.onDidChangeTextEditorSelection((e) => this.cursorMoved(e.textEditor)),
      vscode.window.onDidChangeActiveTextEditor((editor) => editor && this.cursorMoved(editor)),
      // Recently edited files go to the server as context (see contextFor).
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length > 0 && e.document.uri.scheme === 'file') {
          this.recentEdits.touch({ key: e.document.uri.toString(), document: e.document });
        }
      }),
      vscode.workspace.onDidCloseTextDocument((document) => {
        const key = document.uri.toString();
        this.recentEdits.forget(key);
        this.contextTracker.forgetDocument(key);
      }),
      // Another window of this VS Code may set or remove the key.
      this.context.secrets.onDidChange((e) => {
        if (e.key === API_KEY_SECRET) void this.loadApiKey();
      }),
    );
    // The key first, so that the first request already carries it.
    void this.loadApiKey().then(() => this.refresh()); // unreachable -> auto-start (see dispatch)
  }

  // ---- completions -------------------------------------------------------------------

  private cursorMoved(editor: vscode.TextEditor): void {
    clearTimeout(this.prefetchTimer);
    const document = editor.document;
    const position = editor.selection.active;
    const place = `${document.uri.toString()}#${position.line}`;
    if (place === this.lastPlace) return; // typing on the line: the requests keep it warm
    this.prefetchTimer = setTimeout(() => {
      const config = this.config;
      if (!config.enable || !config.enabledLanguages.includes(document.languageId)) return;
      if (this.state.kind !== 'ready') return;
      const request = this.requestAt(document, position);
      if (!request) return;
      this.lastPlace = place;
      // A pause at a new place: the whole context, so that a server that lost some of it
      // (it keeps a bounded number of files from all its clients) has it again.
      const entries = this.contextFor(document, request, 'all');
      const generation = this.contextTracker.generation;
      void this.client.prefetch(withContext(request, entries)).then((taken) => {
        if (taken && entries.length > 0) this.contextTracker.markSent(entries, generation);
      });
    }, PREFETCH_PAUSE_MS);
  }

  /**
   * The other files to send with a request in `document`: the visible editors' documents,
   * then the recently edited ones (most recent first), within the server's bounds. `all`
   * of them, or only those the server does not have in their current version (`unsent`:
   * a keystroke then sends nothing more, or the few files that changed).
   */
  private contextFor(document: vscode.TextDocument, request: CompletionRequest, which: 'all' | 'unsent'): ContextEntry[] {
    const config = this.config;
    if (!config.contextEnabled || this.contextRefused) return [];
    const candidates: ContextDocument[] = [];
    for (const editor of vscode.window.visibleTextEditors) candidates.push(contextDocument(editor.document));
    for (const recent of this.recentEdits.list()) candidates.push(contextDocument(recent.document));
    const languages = config.enabledLanguages.filter((id) => serverLanguage(id) !== undefined);
    const bounds = { ...SERVER_BOUNDS, maxBytes: contextByteBudget(this.maxBodyBytes, request) };
    const entries = this.contextTracker.select(
      candidates,
      { key: document.uri.toString(), filename: request.filename },
      languages,
      bounds,
    );
    return which === 'all' ? entries : this.contextTracker.unsent(entries);
  }

  /**
   * POST /complete with the context files the server lacks. Should the server refuse a
   * request with them (an older server that does not know the field, or one that fails
   * on it), the request is sent again without, and no context goes to that server until
   * it restarts: completions never depend on it.
   */
  private async completeWithContext(
    client: HeliosClient,
    document: vscode.TextDocument,
    request: CompletionRequest,
    signal: AbortSignal,
  ) {
    const entries = this.contextFor(document, request, 'unsent');
    if (entries.length === 0) return client.complete(request, signal);
    const generation = this.contextTracker.generation;
    try {
      const response = await client.complete(withContext(request, entries), signal);
      this.contextTracker.markSent(entries, generation);
      return response;
    } catch (err) {
      if (!(err instanceof HeliosError) || (err.kind !== 'invalid_request' && err.kind !== 'server_error')) throw err;
      const response = await client.complete(request, signal); // its failure is the one to report
      if (client === this.client && !this.contextRefused) {
        this.contextRefused = true;
        this.logLine(
          `the server refused a request with context files (${err.details.status ?? err.kind}: ${err.message}) ` +
            'and took it without: no context is sent until it restarts',
        );
      }
      return response;
    }
  }

  private requestAt(document: vscode.TextDocument, position: vscode.Position) {
    const config = this.config;
    return buildCompletionRequest(document, position, {
      maxTokens: config.maxTokens,
      temperature: config.temperature,
      relativePath: document.uri.scheme === 'file' ? vscode.workspace.asRelativePath(document.uri, false) : undefined,
    });
  }

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    const config = this.config;
    if (!config.enable || !config.enabledLanguages.includes(document.languageId)) {
      return undefined;
    }
    if (this.client.backoffRemainingMs() > 0) {
      return undefined; // the status bar already says rate-limited
    }
    // An explicit trigger (Alt+\) asks at once; typing waits for a pause.
    const debounceMs = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? 0 : config.debounceMs;
    if (!(await this.debouncer.wait(debounceMs, token))) {
      return undefined;
    }
    const request = this.requestAt(document, position);
    if (!request) {
      return undefined;
    }
    this.lastPlace = `${document.uri.toString()}#${position.line}`;
    const abort = abortSignalFrom(token);
    const client = this.client;
    try {
      const response = await this.completeWithContext(client, document, request, abort.signal);
      if (client === this.client) this.dispatch({ type: 'completed', now: Date.now() });
      if (token.isCancellationRequested || response.suggestion.length === 0) {
        return undefined; // superseded on the server, or by a newer keystroke here
      }
      const item = new vscode.InlineCompletionItem(response.suggestion, new vscode.Range(position, position));
      return [item];
    } catch (err) {
      if (client === this.client) this.onRequestError(err);
      return undefined;
    } finally {
      abort.dispose();
    }
  }

  /** Errors while typing go to the status bar and the log, never to a modal. */
  private onRequestError(err: unknown): void {
    if (!(err instanceof HeliosError)) {
      this.logLine(`completion failed: ${String(err)}`);
      return;
    }
    if (err.kind === 'unauthorized' && !this.notifiedUnauthorized) {
      this.notifiedUnauthorized = true;
      const message = this.apiKey
        ? 'Helios: the server refused the API key.'
        : 'Helios: the server wants an API key.';
      this.warn(message, SET_KEY_ACTION);
    }
    if (err.kind !== 'aborted' && err.kind !== 'backoff') {
      this.logLine(`completion: ${err.kind}${err.details.errorCode ? ` ${err.details.errorCode}` : ''}: ${err.message}`);
    }
    this.dispatch({
      type: 'failed',
      kind: err.kind,
      message: err.message,
      now: Date.now(),
      retryAfterMs: err.details.retryAfterMs,
    });
  }

  // ---- status ------------------------------------------------------------------------

  private dispatch(event: StatusEvent): void {
    if (this.disposed) return;
    const before = this.state;
    this.state = reduceStatus(before, event);
    this.render();
    if (this.state.kind !== before.kind) {
      // Lost, loading, starting: whatever answers next may not have the context files it was
      // sent. (Forgotten on the way down, so that the request that finds it back sends them.)
      if (!serving(this.state.kind)) this.serverChanged();
      this.logLine(`status: ${before.kind} -> ${this.state.kind}${this.state.message ? ` (${this.state.message})` : ''}`);
      this.schedulePoll();
      if (this.state.kind === 'unreachable') {
        if (this.config.autoStart && !this.autoStartTried) void this.maybeAutoStart();
        else this.notifyNotRunning();
      }
      if (this.state.kind === 'ready' && !this.state.model) void this.fetchModelName();
    }
  }

  private render(): void {
    const view = viewStatus(this.state, this.config.enable, this.config.serverUrl, Date.now());
    this.statusItem.text = view.text;
    this.statusItem.tooltip = view.tooltip;
    this.statusItem.backgroundColor = view.warning ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    clearTimeout(this.tickTimer);
    if (this.state.kind === 'rate_limited') {
      // Count down, and go back to ready when the Retry-After window closes.
      this.tickTimer = setTimeout(() => this.dispatch({ type: 'tick', now: Date.now() }), 1000);
    }
  }

  private schedulePoll(delayMs = pollDelayMs(this.state)): void {
    clearTimeout(this.pollTimer);
    if (this.disposed) return;
    this.pollTimer = setTimeout(() => void this.refresh(), delayMs);
  }

  /** GET /health, and /status when the model name is not known yet. */
  async refresh(): Promise<StatusState> {
    const client = this.client;
    try {
      const health = await client.health();
      if (client !== this.client) return this.state;
      this.dispatch({ type: 'health', ok: health.ok, status: health.body.status, version: health.body.server_version });
      this.noteUptime(health.body.uptime);
      if (health.ok && !this.state.model) await this.fetchModelName();
    } catch (err) {
      if (client !== this.client) return this.state;
      if (err instanceof HeliosError) {
        this.dispatch({ type: 'failed', kind: err.kind, message: err.message, now: Date.now() });
      } else {
        this.logLine(`health check failed: ${String(err)}`);
      }
    }
    this.schedulePoll();
    return this.state;
  }

  /** GET /status for the model name; one request at a time. */
  private fetchModelName(): Promise<void> {
    this.modelFetch ??= this.client
      .status()
      .then(
        (status) => {
          const limit = status.limits?.max_body_bytes;
          this.maxBodyBytes = typeof limit === 'number' && limit > 0 ? limit : DEFAULT_MAX_BODY_BYTES;
          this.dispatch({ type: 'model', name: status.model_name });
        },
        () => undefined, // the next poll tries again; /health alone still says ready
      )
      .finally(() => (this.modelFetch = undefined));
    return this.modelFetch;
  }

  /** The server may be another process now, or may have lost what it was sent. */
  private serverChanged(): void {
    this.contextTracker.forgetSent();
    this.contextRefused = false;
  }

  /** A restart between two polls leaves the status ready: the uptime tells. */
  private noteUptime(uptime: number | undefined): void {
    if (typeof uptime !== 'number' || !Number.isFinite(uptime)) return;
    const startedAt = Date.now() - uptime * 1000;
    if (this.serverStartedAt !== undefined && startedAt - this.serverStartedAt > RESTART_SLACK_MS) {
      this.logLine('the server restarted');
      this.serverChanged();
    }
    this.serverStartedAt = startedAt;
  }

  /** Once per session (and per server URL): a non-modal notice with what can be done. */
  private notifyNotRunning(): void {
    if (this.notifiedNotRunning || this.starting) return;
    this.notifiedNotRunning = true;
    const actions: Action[] = this.canLaunch() ? [START_ACTION, SETTINGS_ACTION] : [SETTINGS_ACTION];
    this.warn(`${NOT_RUNNING} at ${this.config.serverUrl}.`, ...actions);
  }

  /** A non-modal warning; its buttons start the server, show the log or open settings. */
  private warn(message: string, ...actions: Action[]): void {
    void vscode.window.showWarningMessage(message, ...actions).then((choice) => {
      if (choice === START_ACTION) void this.startServer(true);
      else if (choice === LOG_ACTION) this.log.show(true);
      else if (choice === SETTINGS_ACTION) void vscode.commands.executeCommand('workbench.action.openSettings', 'helios');
      else if (choice === SET_KEY_ACTION) void this.setApiKey();
    });
  }

  private canLaunch(): boolean {
    return typeof launchFor(this.config.serverCommand, this.config.serverUrl) !== 'string';
  }

  // ---- the server process ------------------------------------------------------------

  private async maybeAutoStart(): Promise<void> {
    if (this.disposed || !this.config.autoStart || this.autoStartTried) return;
    if (this.state.kind !== 'unreachable') return;
    this.autoStartTried = true;
    await this.startServer(false);
  }

  /**
   * Starts `helios serve` for the configured URL and shows progress until /health is 200.
   * `userAsked` decides whether problems are told in a notification.
   */
  startServer(userAsked: boolean): Promise<void> {
    if (this.starting) return this.starting;
    this.starting = this.runServer(userAsked).finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async runServer(userAsked: boolean): Promise<void> {
    const launch = launchFor(this.config.serverCommand, this.config.serverUrl);
    if (typeof launch === 'string') {
      this.logLine(`cannot start the server: ${launch}`);
      this.dispatch({ type: 'start_failed', message: launch });
      if (userAsked) {
        this.warn(`Helios: cannot start the server: ${launch}`, SETTINGS_ACTION);
      } else if (!this.notifiedNotRunning) {
        this.notifiedNotRunning = true;
        this.warn(`${NOT_RUNNING} at ${this.config.serverUrl} (${launch}).`, SETTINGS_ACTION);
      }
      return;
    }
    // Something may already answer (another window started it, or it was just slow).
    await this.refresh();
    if (this.state.kind === 'ready' || this.state.kind === 'loading') {
      if (userAsked) void vscode.window.showInformationMessage(`Helios server is already running at ${this.config.serverUrl}.`);
      return;
    }
    if (this.server?.running) {
      await this.server.stop();
    }
    const server = new ServerProcess(launch, (line) => this.logLine(`[server] ${line}`));
    this.server = server;
    this.dispatch({ type: 'starting' });
    server.start();
    void server.exited.then((exit) => {
      if (this.server === server && !this.disposed) {
        this.server = undefined;
        this.dispatch({ type: 'process_exited', message: describeExit(exit) });
      }
    });
    const client = this.client;
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Helios' },
      (progress) => {
        progress.report({ message: 'starting the server…' });
        return waitUntilReady(client, {
          timeoutMs: START_TIMEOUT_MS,
          intervalMs: 300,
          exited: server.exited,
          onProgress: (answer) => {
            if (answer instanceof HeliosError) return; // not listening yet
            this.dispatch({ type: 'health', ok: answer.ok, status: answer.body.status, version: answer.body.server_version });
            progress.report({ message: answer.ok ? 'ready' : 'loading the model…' });
          },
        });
      },
    );
    switch (result.outcome) {
      case 'ready':
        this.logLine(`server ready at ${server.announcedUrl ?? this.config.serverUrl}`);
        await this.refresh();
        return;
      case 'exited': {
        const message = describeExit(result.exit);
        this.dispatch({ type: 'process_exited', message });
        this.notifiedNotRunning = true; // this message says it, with the reason
        this.warn(`${NOT_RUNNING}: ${message}.`, LOG_ACTION, SETTINGS_ACTION);
        return;
      }
      case 'timeout':
      case 'cancelled':
        this.logLine('the server did not become ready in time');
        this.warn('Helios: the server did not become ready in time.', LOG_ACTION);
        await this.refresh();
        return;
    }
  }

  // ---- commands ----------------------------------------------------------------------

  private async restartServer(): Promise<void> {
    try {
      const answer = await this.client.restart();
      this.logLine(`restart: ${answer.message ?? 'initiated'}`);
      void vscode.window.showInformationMessage(`Helios: ${answer.message ?? 'server restart initiated'}.`);
      this.dispatch({ type: 'health', ok: false, status: 'loading' });
      this.schedulePoll(300);
    } catch (err) {
      if (err instanceof HeliosError && err.kind === 'unreachable' && this.canLaunch()) {
        await this.startServer(true);
        return;
      }
      const message = err instanceof Error ? err.message : String(err);
      this.logLine(`restart failed: ${message}`);
      void vscode.window.showWarningMessage(`Helios: restart failed: ${message}`);
    }
  }

  private async showStatus(): Promise<void> {
    await this.refresh();
    let detail = '';
    try {
      const status = await this.client.status();
      const parts = [
        status.model_name && `model ${status.model_name}`,
        this.state.version && `version ${this.state.version}`,
        typeof status.uptime === 'number' && `up ${formatDuration(status.uptime)}`,
      ].filter(Boolean);
      detail = parts.join(' · ');
    } catch {
      // unreachable or loading: the state line says so
    }
    const view = viewStatus(this.state, this.config.enable, this.config.serverUrl, Date.now());
    type Item = vscode.QuickPickItem & { run?: () => unknown };
    const items: Item[] = [
      { label: view.text, description: this.config.serverUrl, detail: detail || view.tooltip.split('\n')[0] },
    ];
    if ((this.state.kind === 'unreachable' || this.state.kind === 'error') && this.canLaunch()) {
      items.push({ label: '$(play) Start Server', run: () => this.startServer(true) });
    }
    if (this.state.kind !== 'unreachable') {
      items.push({ label: '$(debug-restart) Restart Server', run: () => this.restartServer() });
    }
    items.push(
      {
        label: this.config.enable ? '$(circle-slash) Turn Completions Off' : '$(check) Turn Completions On',
        run: () => this.toggleCompletions(),
      },
      { label: '$(output) Show Log', run: () => this.log.show(true) },
      { label: '$(key) Set API Key', description: this.apiKey ? 'a key is set' : 'none set', run: () => this.setApiKey() },
      { label: '$(gear) Settings', run: () => vscode.commands.executeCommand('workbench.action.openSettings', 'helios') },
    );
    const choice = await vscode.window.showQuickPick(items, { title: 'Helios', placeHolder: view.tooltip.split('\n')[0] });
    await choice?.run?.();
  }

  private async toggleCompletions(): Promise<void> {
    const enable = !this.config.enable;
    await vscode.workspace.getConfiguration('helios').update('enable', enable, vscode.ConfigurationTarget.Global);
    this.onConfigChanged();
  }

  /**
   * Asks for the key (password input) and keeps it in SecretStorage; an empty answer
   * removes it, Escape changes nothing. The key is never logged.
   */
  private async setApiKey(): Promise<void> {
    const key = await vscode.window.showInputBox({
      title: 'Helios: API Key',
      prompt: 'The key the Helios server expects (HELIOS_API_KEY). Leave empty to remove the stored key.',
      placeHolder: this.apiKey ? 'a key is stored; type a new one, or leave empty to remove it' : 'no key stored',
      password: true,
      ignoreFocusOut: true,
      validateInput: validateApiKey,
    });
    if (key === undefined) return; // cancelled
    const trimmed = key.trim();
    if (validateApiKey(trimmed)) return; // the box already said why (a stand-in may not)
    if (trimmed === '') {
      await this.context.secrets.delete(API_KEY_SECRET);
    } else {
      await this.context.secrets.store(API_KEY_SECRET, trimmed);
    }
    await this.loadApiKey();
    void vscode.window.showInformationMessage(trimmed === '' ? 'Helios: API key removed.' : 'Helios: API key saved.');
    void this.refresh();
  }

  /** Reads the key from SecretStorage and makes a client that sends it. */
  private async loadApiKey(): Promise<void> {
    let key: string | undefined;
    try {
      key = (await this.context.secrets.get(API_KEY_SECRET))?.trim() || undefined;
    } catch (err) {
      // No keyring (e.g. some Linux sessions): go on without a key, and say why.
      this.logLine(`cannot read the API key from the secret storage: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (this.disposed || key === this.apiKey) return;
    this.apiKey = key;
    this.notifiedUnauthorized = false;
    this.client = this.makeClient();
    this.logLine(key ? 'an API key is set: requests carry Authorization: Bearer' : 'no API key set');
  }

  // ---- plumbing ----------------------------------------------------------------------

  private onConfigChanged(): void {
    const before = this.config;
    this.config = readConfig(vscode.workspace.getConfiguration('helios'));
    const changed = (Object.keys(before) as Array<keyof HeliosConfig>).filter(
      (key) => JSON.stringify(before[key]) !== JSON.stringify(this.config[key]),
    );
    if (changed.length > 0) this.logLine(`settings changed: ${changed.join(', ')}`);
    if (before.timeoutMs !== this.config.timeoutMs) {
      this.client = this.makeClient();
    }
    if (before.serverUrl !== this.config.serverUrl) {
      // A server this extension started for the old URL is not the one wanted now.
      if (this.server?.running) void this.server.stop();
      this.server = undefined;
      this.client = this.makeClient();
      this.state = INITIAL_STATUS;
      this.serverStartedAt = undefined;
      this.maxBodyBytes = DEFAULT_MAX_BODY_BYTES;
      this.serverChanged();
      this.notifiedNotRunning = false;
      this.autoStartTried = false;
    }
    if (before.autoStart !== this.config.autoStart) this.autoStartTried = false;
    // Turned back on: the server may have dropped what it was sent meanwhile.
    if (this.config.contextEnabled && !before.contextEnabled) this.contextTracker.forgetSent();
    this.render();
    if (before.serverUrl !== this.config.serverUrl) {
      void this.refresh();
    } else if (this.config.autoStart && !before.autoStart) {
      void this.maybeAutoStart();
    }
  }

  private makeClient(): HeliosClient {
    return new HeliosClient({
      baseUrl: this.config.serverUrl,
      clientId: this.clientId,
      completionTimeoutMs: this.config.timeoutMs,
      apiKey: this.apiKey,
    });
  }

  private loadClientId(): string {
    const stored = this.context.globalState.get<string>(CLIENT_ID_KEY);
    if (stored) return stored;
    const id = `vscode-${randomUUID()}`;
    void this.context.globalState.update(CLIENT_ID_KEY, id);
    return id;
  }

  private logLine(line: string): void {
    if (!this.disposed) this.log.appendLine(`${new Date().toISOString()} ${line}`);
  }

  async shutdown(): Promise<void> {
    const server = this.server;
    this.dispose();
    if (server?.running) await server.stop();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.pollTimer);
    clearTimeout(this.tickTimer);
    clearTimeout(this.prefetchTimer);
    this.debouncer.dispose();
    // A server we started dies with us even if deactivate is not awaited.
    if (this.server?.running) void this.server.stop();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

/** A document as a candidate for the context: only files in a workspace folder have a name. */
function contextDocument(document: vscode.TextDocument): ContextDocument {
  const inWorkspace = document.uri.scheme === 'file' && vscode.workspace.getWorkspaceFolder(document.uri) !== undefined;
  return {
    key: document.uri.toString(),
    filename: inWorkspace ? vscode.workspace.asRelativePath(document.uri, false).replace(/\\/g, '/') : undefined,
    languageId: document.languageId,
    version: document.version,
    getText: () => document.getText(),
  };
}

function serving(kind: StatusState['kind']): boolean {
  return kind === 'ready' || kind === 'rate_limited';
}

function withContext(request: CompletionRequest, entries: readonly ContextEntry[]): CompletionRequest {
  return entries.length === 0 ? request : { ...request, context: contextFiles(entries) };
}

/** An HTTP header value can carry only visible ASCII; say so before the key is stored. */
export function validateApiKey(value: string): string | undefined {
  const key = value.trim();
  if (key !== '' && !/^[\x21-\x7e]+$/.test(key)) {
    return 'An API key is visible ASCII characters without spaces.';
  }
  return undefined;
}

function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
