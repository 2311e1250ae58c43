/**
 * Starting and stopping a local `helios serve` process, and waiting for it to be ready.
 * No VS Code here: the extension and the tests drive the same code.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { HeliosClient, HeliosError, HealthResponse } from './client';

export interface ServerLaunch {
  command: string;
  args: string[];
  host: string;
  port: number;
}

/**
 * How to start a server for `serverUrl` with `command`, or a reason why this URL cannot
 * be served by a local process (only plain http on a loopback address can).
 */
export function launchFor(command: string, serverUrl: string): ServerLaunch | string {
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch {
    return `"${serverUrl}" is not a URL`;
  }
  if (url.protocol !== 'http:') {
    return `only http:// server URLs can be started locally, not ${url.protocol}//`;
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!isLoopback(host)) {
    return `${host} is not this machine; start the server there`;
  }
  if (url.pathname !== '/' && url.pathname !== '') {
    return 'a server URL with a path cannot be started locally';
  }
  const port = url.port === '' ? 80 : Number(url.port);
  const trimmed = command.trim();
  if (trimmed === '') {
    return 'helios.serverCommand is empty';
  }
  // --parent-pid: the server stops itself if this extension host dies without stopping it.
  const args = ['serve', '--host', host, '--port', String(port), '--parent-pid', String(process.pid)];
  return { command: trimmed, args, host, port };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. ENOENT). */
  error?: Error;
}

/** One `helios serve` child process. */
export class ServerProcess {
  private child: ChildProcess | undefined;
  private exitInfo: ExitInfo | undefined;
  /** Resolves when the process has exited (or failed to start). */
  readonly exited: Promise<ExitInfo>;
  private resolveExited!: (info: ExitInfo) => void;
  /** The URL the server printed when it became ready, if it printed one. */
  announcedUrl: string | undefined;

  constructor(
    readonly launch: ServerLaunch,
    private readonly log: (line: string) => void = () => {},
  ) {
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.exitInfo === undefined;
  }

  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  start(): void {
    if (this.child) throw new Error('already started');
    this.log(`$ ${[this.launch.command, ...this.launch.args].join(' ')}`);
    const child = spawn(this.launch.command, this.launch.args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
      env: serverEnv(process.env),
    });
    this.child = child;
    const onLine = (line: string) => {
      this.log(line);
      const url = /https?:\/\/[^\s"']+/.exec(line);
      if (url && this.announcedUrl === undefined) this.announcedUrl = url[0];
    };
    forEachLine(child.stdout!, onLine);
    forEachLine(child.stderr!, onLine);
    child.once('error', (error) => this.finish({ code: null, signal: null, error }));
    child.once('exit', (code, signal) => this.finish({ code, signal }));
  }

  private finish(info: ExitInfo): void {
    if (this.exitInfo) return;
    this.exitInfo = info;
    this.log(describeExit(info));
    this.resolveExited(info);
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. Safe to call twice. */
  stop(graceMs = 3000): Promise<ExitInfo | undefined> {
    this.stopping ??= this.terminate(graceMs);
    return this.stopping;
  }

  private stopping: Promise<ExitInfo | undefined> | undefined;

  private async terminate(graceMs: number): Promise<ExitInfo | undefined> {
    const child = this.child;
    if (!child || this.exitInfo) return this.exitInfo;
    child.kill('SIGTERM');
    const timer = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), graceMs).unref());
    if ((await Promise.race([this.exited, timer])) === 'late') {
      child.kill('SIGKILL');
      await Promise.race([this.exited, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    }
    return this.exitInfo;
  }
}

/**
 * The started server's environment: this one without HELIOS_API_KEY* (a key set for some
 * other server must not make this loopback one demand a key the extension may not have).
 */
export function serverEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PYTHONUNBUFFERED: '1' };
  for (const [key, value] of Object.entries(env)) {
    if (!/^HELIOS_API_KEY/i.test(key)) out[key] = value;
  }
  out.PYTHONUNBUFFERED = '1';
  return out;
}

export function describeExit(info: ExitInfo): string {
  if (info.error) {
    const code = (info.error as NodeJS.ErrnoException).code;
    return code === 'ENOENT'
      ? 'Helios server command not found (set helios.serverCommand)'
      : `Helios server could not start: ${info.error.message}`;
  }
  return info.signal ? `Helios server stopped by ${info.signal}` : `Helios server exited with code ${info.code}`;
}

function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      onLine(buffered.slice(0, newline).replace(/\r$/, ''));
      buffered = buffered.slice(newline + 1);
    }
  });
  stream.on('end', () => {
    if (buffered) onLine(buffered);
  });
}

export type WaitResult =
  | { outcome: 'ready'; health: HealthResponse }
  | { outcome: 'exited'; exit: ExitInfo }
  | { outcome: 'timeout' }
  | { outcome: 'cancelled' };

/**
 * Asks /health every `intervalMs` until it is 200, the process exits, `timeoutMs` passes
 * or `signal` aborts. `onProgress` sees each answer (and each refused connection).
 */
export async function waitUntilReady(
  client: HeliosClient,
  options: {
    timeoutMs: number;
    intervalMs?: number;
    exited?: Promise<ExitInfo>;
    signal?: AbortSignal;
    onProgress?: (answer: { ok: boolean; body: HealthResponse } | HeliosError) => void;
  },
): Promise<WaitResult> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 250;
  let exit: ExitInfo | undefined;
  options.exited?.then((info) => (exit = info));
  while (true) {
    if (options.signal?.aborted) return { outcome: 'cancelled' };
    if (exit) return { outcome: 'exited', exit };
    try {
      const answer = await client.health(options.signal);
      options.onProgress?.(answer);
      if (answer.ok) return { outcome: 'ready', health: answer.body };
    } catch (err) {
      if (!(err instanceof HeliosError)) throw err;
      if (err.kind === 'aborted') return { outcome: 'cancelled' };
      options.onProgress?.(err);
    }
    if (exit) return { outcome: 'exited', exit };
    if (Date.now() >= deadline) return { outcome: 'timeout' };
    await new Promise((resolve) => setTimeout(resolve, Math.min(interval, Math.max(0, deadline - Date.now()))));
  }
}
