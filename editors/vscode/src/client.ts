/**
 * The Helios REST client: fetch with a timeout, the caller's cancellation, a stable client
 * id header, errors sorted into the few kinds the extension reacts to, and back-off after
 * the server says 429 (or 503 with Retry-After).
 */
import type { CompletionRequest } from './request';

export const CLIENT_HEADER = 'X-Helios-Client';

export interface CompletionResponse {
  suggestion: string;
  confidence: number;
  processing_time: number;
}

export interface HealthResponse {
  status: string;
  model_loaded: boolean;
  server_version?: string;
  uptime?: number;
}

export interface StatusResponse {
  server_status: string;
  model_loaded: boolean;
  model_name?: string;
  uptime?: number;
  config?: Record<string, unknown>;
  limits?: { max_body_bytes?: number };
}

/** What went wrong, in the terms the extension acts on. */
export type ErrorKind =
  | 'unreachable' // nothing answered: connection refused, DNS, reset
  | 'timeout' // the server did not answer in time
  | 'aborted' // the caller cancelled (a newer keystroke)
  | 'backoff' // not sent: still inside a Retry-After window
  | 'rate_limited' // 429
  | 'loading' // 503: the model is not loaded (yet)
  | 'unauthorized' // 401: the server wants an API key, or another one
  | 'invalid_request' // 4xx other than 429
  | 'server_error' // 5xx other than 503
  | 'bad_response'; // an answer that is not the documented JSON

export class HeliosError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly details: {
      status?: number;
      errorCode?: string;
      /** Milliseconds until the server wants to be asked again. */
      retryAfterMs?: number;
      cause?: unknown;
    } = {},
  ) {
    super(message);
    this.name = 'HeliosError';
  }
}

export interface ClientOptions {
  baseUrl: string;
  clientId: string;
  /** Per-request time limit for /complete, in milliseconds. */
  completionTimeoutMs?: number;
  /** Per-request time limit for /health, /status and /restart. */
  requestTimeoutMs?: number;
  /** Sent as `Authorization: Bearer <key>` on every request when set (never logged). */
  apiKey?: string;
  /** The clock, for tests of back-off. */
  now?: () => number;
}

export class HeliosClient {
  readonly baseUrl: string;
  readonly clientId: string;
  private readonly completionTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly now: () => number;
  // Private so that no log line or error message built from the client can show it.
  readonly #apiKey: string | undefined;
  private backoffUntil = 0;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.clientId = options.clientId;
    this.completionTimeoutMs = options.completionTimeoutMs ?? 15_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 3_000;
    this.now = options.now ?? Date.now;
    this.#apiKey = options.apiKey?.trim() || undefined;
  }

  /** Whether requests carry an API key (the key itself is not readable). */
  get hasApiKey(): boolean {
    return this.#apiKey !== undefined;
  }

  /** Milliseconds left before completions may be requested again (0 when none). */
  backoffRemainingMs(): number {
    return Math.max(0, this.backoffUntil - this.now());
  }

  /**
   * GET /health. Both 200 and 503 are answers (ready, or loading/failed), so both return;
   * `ok` says which.
   */
  async health(signal?: AbortSignal): Promise<{ ok: boolean; httpStatus: number; body: HealthResponse }> {
    const response = await this.send('GET', '/health', undefined, signal, this.requestTimeoutMs);
    if (response.status !== 200 && response.status !== 503) {
      throw errorFrom(response);
    }
    const body = readJson(response) as HealthResponse;
    if (!isObject(body) || typeof body.status !== 'string') {
      throw new HeliosError('bad_response', 'GET /health did not answer with a health object', {
        status: response.status,
      });
    }
    return { ok: response.status === 200, httpStatus: response.status, body };
  }

  /** GET /status. */
  async status(signal?: AbortSignal): Promise<StatusResponse> {
    const response = await this.send('GET', '/status', undefined, signal, this.requestTimeoutMs);
    if (!isOk(response)) {
      throw errorFrom(response);
    }
    const body = readJson(response) as StatusResponse;
    if (!isObject(body)) {
      throw new HeliosError('bad_response', 'GET /status did not answer with an object');
    }
    return body;
  }

  /** POST /restart. */
  async restart(signal?: AbortSignal): Promise<{ message?: string }> {
    const response = await this.send('POST', '/restart', {}, signal, this.requestTimeoutMs);
    if (!isOk(response)) {
      throw errorFrom(response);
    }
    return (readJson(response) ?? {}) as { message?: string };
  }

  /**
   * POST /complete. While a Retry-After window from an earlier answer is open this throws
   * `backoff` without sending anything.
   */
  async complete(request: CompletionRequest, signal?: AbortSignal): Promise<CompletionResponse> {
    const wait = this.backoffRemainingMs();
    if (wait > 0) {
      throw new HeliosError('backoff', `Helios asked to wait ${Math.ceil(wait / 1000)} s`, {
        retryAfterMs: wait,
      });
    }
    const response = await this.send('POST', '/complete', request, signal, this.completionTimeoutMs);
    if (!isOk(response)) {
      const error = errorFrom(response, this.now());
      if (error.details.retryAfterMs !== undefined) {
        this.backoffUntil = Math.max(this.backoffUntil, this.now() + error.details.retryAfterMs);
      }
      throw error;
    }
    const body = readJson(response) as CompletionResponse;
    if (!isObject(body) || typeof body.suggestion !== 'string') {
      throw new HeliosError('bad_response', 'POST /complete did not answer with a suggestion', {
        status: response.status,
      });
    }
    return body;
  }

  /**
   * POST /prefetch: the server warms its cache for a place the user is about to type at.
   * Best effort: no error is reported, whatever the answer (an older server has no such
   * endpoint). Resolves to whether the server took the request (a 2xx answer).
   */
  async prefetch(request: CompletionRequest): Promise<boolean> {
    if (this.backoffRemainingMs() > 0) return false;
    try {
      return isOk(await this.send('POST', '/prefetch', request, undefined, 5_000));
    } catch {
      return false; // a completion at that place will report any real problem
    }
  }

  private async send(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    timeoutMs: number,
  ): Promise<Answer> {
    if (signal?.aborted) {
      throw new HeliosError('aborted', `${method} ${path} cancelled`);
    }
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const headers: Record<string, string> = {
      Accept: 'application/json',
      [CLIENT_HEADER]: this.clientId,
    };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
    }
    if (this.#apiKey !== undefined) {
      headers.Authorization = `Bearer ${this.#apiKey}`;
    }
    try {
      const response = await fetch(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
        redirect: 'error',
        credentials: 'omit',
      });
      // Reading the body obeys the same abort and timer.
      return { status: response.status, statusText: response.statusText, headers: response.headers, text: await response.text() };
    } catch (err) {
      if (signal?.aborted) {
        throw new HeliosError('aborted', `${method} ${path} cancelled`, { cause: err });
      }
      if (timedOut) {
        throw new HeliosError('timeout', `${method} ${path}: no answer in ${timeoutMs} ms`, { cause: err });
      }
      throw new HeliosError('unreachable', `Helios server not reachable at ${this.baseUrl} (${networkCode(err)})`, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** An HTTP answer with its body read. */
interface Answer {
  status: number;
  statusText: string;
  headers: Headers;
  text: string;
}

function isOk(answer: Answer): boolean {
  return answer.status >= 200 && answer.status < 300;
}

function readJson(answer: Answer): unknown {
  if (answer.text.length === 0) return undefined;
  try {
    return JSON.parse(answer.text);
  } catch {
    throw new HeliosError('bad_response', `answer is not JSON (HTTP ${answer.status})`, {
      status: answer.status,
    });
  }
}

/** The error for a non-2xx answer, reading the documented `{detail, error_code}` body. */
function errorFrom(response: Answer, now = Date.now()): HeliosError {
  let detail = response.statusText || `HTTP ${response.status}`;
  let errorCode: string | undefined;
  try {
    const body = readJson(response);
    if (isObject(body)) {
      if (typeof body.detail === 'string') detail = body.detail;
      if (typeof body.error_code === 'string') errorCode = body.error_code;
    }
  } catch {
    // keep the status line as the detail
  }
  const retryAfterMs = parseRetryAfter(response.headers.get('Retry-After'), now);
  const details = { status: response.status, errorCode, retryAfterMs };
  const status = response.status;
  if (status === 429) {
    // A 429 without Retry-After still backs off a little rather than retrying at once.
    return new HeliosError('rate_limited', detail, { ...details, retryAfterMs: retryAfterMs ?? 1000 });
  }
  if (status === 503) {
    return new HeliosError('loading', detail, details);
  }
  if (status === 401) {
    return new HeliosError('unauthorized', detail, details);
  }
  if (status >= 400 && status < 500) {
    return new HeliosError('invalid_request', detail, details);
  }
  return new HeliosError('server_error', detail, details);
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date; undefined when absent or bad. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) {
    return Math.min(Number(trimmed), 3600) * 1000;
  }
  // An HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT"); Date.parse alone takes "-1" too.
  const date = /^[a-z]{3}, /i.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  if (Number.isNaN(date)) return undefined;
  return Math.min(Math.max(0, date - now), 3600 * 1000);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function networkCode(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (err as Error)?.message ?? 'network error';
}
