/**
 * What the status bar says: a small state machine fed by /health, /status, completion
 * results and the server process, and a pure view of it.
 */
import type { ErrorKind } from './client';

export type StatusKind =
  | 'unknown' // nothing asked yet
  | 'starting' // this extension launched `helios serve`; nothing answers yet
  | 'loading' // the server answers, the model is loading
  | 'ready'
  | 'unreachable' // nothing answers at the server URL
  | 'rate_limited' // the server said 429; completions wait until `retryUntil`
  | 'error'; // the server answers, but not as a usable Helios server

export interface StatusState {
  readonly kind: StatusKind;
  readonly model?: string;
  readonly version?: string;
  /** Why: the last error or health status, for the tooltip. */
  readonly message?: string;
  /** With `rate_limited`: epoch milliseconds when completions may be asked again. */
  readonly retryUntil?: number;
}

export type StatusEvent =
  | { type: 'starting' }
  | { type: 'health'; ok: boolean; status: string; version?: string }
  | { type: 'model'; name?: string }
  | { type: 'completed'; now: number }
  | { type: 'failed'; kind: ErrorKind; message: string; now: number; retryAfterMs?: number }
  | { type: 'tick'; now: number }
  | { type: 'start_failed'; message: string }
  | { type: 'process_exited'; message: string };

export const INITIAL_STATUS: StatusState = { kind: 'unknown' };

export function reduceStatus(state: StatusState, event: StatusEvent): StatusState {
  switch (event.type) {
    case 'starting':
      return { kind: 'starting', message: 'starting helios serve' };
    case 'health': {
      const version = event.version ?? state.version;
      if (event.ok) {
        if (state.kind === 'rate_limited') {
          return { ...state, version };
        }
        return { kind: 'ready', model: state.model, version };
      }
      // 503: the body says whether the model is loading or the engine is gone.
      if (/^(loading|starting|not_loaded)$/i.test(event.status)) {
        return { kind: 'loading', model: state.model, version, message: `model ${event.status}` };
      }
      return { kind: 'error', model: state.model, version, message: `server reports "${event.status}"` };
    }
    case 'model':
      return { ...state, model: event.name };
    case 'completed':
      // An answer to a request sent before a 429 does not end the back-off.
      if (state.kind === 'rate_limited' && (state.retryUntil ?? 0) > event.now) return state;
      return { kind: 'ready', model: state.model, version: state.version };
    case 'failed':
      return reduceFailure(state, event);
    case 'tick':
      if (state.kind === 'rate_limited' && (state.retryUntil ?? 0) <= event.now) {
        return { kind: 'ready', model: state.model, version: state.version };
      }
      return state;
    case 'start_failed':
      return { kind: 'unreachable', model: state.model, message: event.message };
    case 'process_exited':
      return { kind: 'unreachable', model: state.model, message: event.message };
  }
}

function reduceFailure(
  state: StatusState,
  event: Extract<StatusEvent, { type: 'failed' }>,
): StatusState {
  switch (event.kind) {
    case 'unreachable':
      // While our own server process comes up, a refused connection is expected.
      if (state.kind === 'starting') return state;
      return { kind: 'unreachable', model: state.model, message: 'Helios server not running' };
    case 'loading':
      return { kind: 'loading', model: state.model, version: state.version, message: event.message };
    case 'rate_limited':
    case 'backoff':
      return {
        kind: 'rate_limited',
        model: state.model,
        version: state.version,
        message: event.message,
        retryUntil: Math.max(state.retryUntil ?? 0, event.now + (event.retryAfterMs ?? 1000)),
      };
    case 'bad_response':
      return { kind: 'error', model: state.model, version: state.version, message: event.message };
    case 'unauthorized':
      return {
        kind: 'error',
        model: state.model,
        version: state.version,
        message: 'The server refused the API key (Helios: Set API Key).',
      };
    case 'timeout':
      // Slow, not down: /health decides, unless nothing was ever heard from the server.
      if (state.kind === 'unknown') {
        return { kind: 'error', message: 'the server accepts connections but does not answer' };
      }
      return state;
    case 'aborted':
    case 'invalid_request': // this request was wrong, the server is fine
    case 'server_error': // one generation failed
      return state;
  }
}

export interface StatusView {
  text: string;
  tooltip: string;
  /** Draw attention (warning background). */
  warning: boolean;
}

export function viewStatus(state: StatusState, enabled: boolean, serverUrl: string, now: number): StatusView {
  const lines: string[] = [];
  let text: string;
  let warning = false;
  switch (state.kind) {
    case 'unknown':
      text = '$(circle-outline) Helios';
      lines.push('Checking the Helios server…');
      break;
    case 'starting':
      text = '$(loading~spin) Helios: starting';
      lines.push('Starting the Helios server…');
      break;
    case 'loading':
      text = '$(loading~spin) Helios: loading';
      lines.push('The Helios server is loading its model.');
      break;
    case 'ready':
      text = `$(check) Helios${state.model ? `: ${shorten(state.model, 32)}` : ''}`;
      lines.push(`Helios is ready${state.model ? ` (model ${state.model})` : ''}.`);
      break;
    case 'unreachable':
      text = '$(debug-disconnect) Helios: not running';
      lines.push('Helios server not running.');
      warning = true;
      break;
    case 'rate_limited': {
      const seconds = Math.max(0, Math.ceil(((state.retryUntil ?? now) - now) / 1000));
      text = `$(watch) Helios: rate-limited${seconds > 0 ? ` (${seconds}s)` : ''}`;
      lines.push(`The server is busy; completions resume in ${seconds} s.`);
      break;
    }
    case 'error':
      text = '$(error) Helios: error';
      lines.push('The Helios server is not healthy.');
      warning = true;
      break;
  }
  if (!enabled) {
    text = '$(circle-slash) Helios: off';
    lines.push('Completions are turned off.');
    warning = false;
  }
  if (state.message && state.kind !== 'ready') lines.push(state.message);
  lines.push(`Server: ${serverUrl}${state.version ? ` (version ${state.version})` : ''}`);
  lines.push('Click for status and actions.');
  return { text, tooltip: lines.join('\n'), warning };
}

/** How long until /health is asked again in this state. */
export function pollDelayMs(state: StatusState): number {
  switch (state.kind) {
    case 'starting':
    case 'loading':
      return 1000;
    case 'unknown':
    case 'unreachable':
    case 'error':
      return 5000;
    case 'ready':
    case 'rate_limited':
      return 15000;
  }
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
