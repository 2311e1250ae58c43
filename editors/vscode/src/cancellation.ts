/** VS Code's CancellationToken, as far as this extension uses it. */
export interface CancellationLike {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => void): { dispose(): void };
}

/**
 * An AbortSignal that fires when `token` is cancelled, for fetch. Call `dispose` when the
 * request is over so the token does not keep the listener.
 */
export function abortSignalFrom(token: CancellationLike | undefined): {
  signal: AbortSignal;
  dispose(): void;
} {
  const controller = new AbortController();
  if (!token) {
    return { signal: controller.signal, dispose() {} };
  }
  if (token.isCancellationRequested) {
    controller.abort();
    return { signal: controller.signal, dispose() {} };
  }
  const subscription = token.onCancellationRequested(() => controller.abort());
  return { signal: controller.signal, dispose: () => subscription.dispose() };
}
