/**
 * Debouncing keystrokes before asking the server.
 *
 * VS Code asks the inline completion provider on every keystroke and cancels the previous
 * ask. Waiting a few milliseconds first means a burst of typing sends one request, for
 * the last keystroke, instead of one per character.
 */
import type { CancellationLike } from './cancellation';

/** True after `ms`, false as soon as `token` is cancelled (at once if it already is). */
export function delay(ms: number, token?: CancellationLike): Promise<boolean> {
  if (token?.isCancellationRequested) {
    return Promise.resolve(false);
  }
  if (ms <= 0) {
    return Promise.resolve(true);
  }
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      subscription?.dispose();
      resolve(true);
    }, ms);
    const subscription = token?.onCancellationRequested(() => {
      clearTimeout(timer);
      subscription?.dispose();
      resolve(false);
    });
  });
}

/**
 * One wait at a time: a newer `wait` ends the older one with false, even if VS Code did
 * not cancel it, so only the latest keystroke goes on to make a request.
 */
export class Debouncer {
  private supersede: (() => void) | undefined;

  async wait(ms: number, token?: CancellationLike): Promise<boolean> {
    this.supersede?.();
    let superseded = false;
    const listeners: Array<() => void> = [];
    const local: CancellationLike = {
      get isCancellationRequested() {
        return superseded || (token?.isCancellationRequested ?? false);
      },
      onCancellationRequested(listener) {
        listeners.push(listener);
        const inner = token?.onCancellationRequested(listener);
        return {
          dispose() {
            const i = listeners.indexOf(listener);
            if (i !== -1) listeners.splice(i, 1);
            inner?.dispose();
          },
        };
      },
    };
    const mine = () => {
      superseded = true;
      for (const listener of [...listeners]) listener();
    };
    this.supersede = mine;
    try {
      // A wait of 0 still gives way to a newer call made in the same tick.
      return (await delay(ms, local)) && !local.isCancellationRequested;
    } finally {
      if (this.supersede === mine) {
        this.supersede = undefined;
      }
    }
  }

  dispose(): void {
    this.supersede?.();
    this.supersede = undefined;
  }
}
