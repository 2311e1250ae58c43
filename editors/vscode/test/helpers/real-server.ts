/**
 * Starts a REAL Helios server for the tests: `$HELIOS_BIN serve --port <free port>`.
 * HELIOS_BIN defaults to ../../.venv/bin/helios relative to editors/vscode. A missing
 * binary is an error, never a skip.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';

export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');
export const READY_TIMEOUT_MS = 120_000;

/** The server command: HELIOS_BIN (a path, relative to editors/vscode, or a name on PATH). */
export function heliosBin(): string {
  const configured = process.env.HELIOS_BIN || '../../.venv/bin/helios';
  return configured.includes('/') || configured.includes('\\')
    ? path.resolve(PACKAGE_ROOT, configured)
    : configured;
}

/** Throws a loud, explicit error when the server binary is not there. */
export function requireHeliosBin(): string {
  const bin = heliosBin();
  if (path.isAbsolute(bin) && !existsSync(bin)) {
    throw new Error(
      `Helios server binary not found at ${bin}. Build it (make venv at the repo top) ` +
        'or point HELIOS_BIN at a `helios` executable. The real-server tests do not skip.',
    );
  }
  return bin;
}

/** A TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface RealServer {
  url: string;
  port: number;
  process: ChildProcess;
  /** Every /health status seen while waiting, in order (e.g. 503:loading, 200:healthy). */
  healthSeen: string[];
  output(): string;
  stop(): Promise<void>;
}

/** `extraEnv`: e.g. HELIOS_API_KEY for a server that wants a key. */
export async function startRealServer(extraEnv: Record<string, string> = {}): Promise<RealServer> {
  const bin = requireHeliosBin();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(bin, ['serve', '--host', '127.0.0.1', '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1', HELIOS_SHARE: 'false', ...extraEnv },
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  let exited: string | undefined;
  child.on('exit', (code, signal) => (exited = `exited with ${signal ?? code}`));
  child.on('error', (err) => (exited = `could not start: ${err.message}`));

  const server: RealServer = {
    url,
    port,
    process: child,
    healthSeen: [],
    output: () => output,
    stop: async () => {
      if (exited !== undefined || child.exitCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const late = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(late);
    },
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited !== undefined) {
      throw new Error(`helios serve ${exited} before it was ready. Output:\n${output.slice(-4000)}`);
    }
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      const body = (await response.json().catch(() => ({}))) as { status?: string };
      const seen = `${response.status}:${body.status}`;
      if (server.healthSeen[server.healthSeen.length - 1] !== seen) server.healthSeen.push(seen);
      if (response.status === 200) return server;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await server.stop();
  throw new Error(`helios serve did not answer GET /health with 200 in ${READY_TIMEOUT_MS / 1000} s. Output:\n${output.slice(-4000)}`);
}

/** Whether a process id is alive. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
