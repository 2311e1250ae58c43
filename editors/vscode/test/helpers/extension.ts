/**
 * Activating the extension against the stand-in `vscode` module, and acting as VS Code
 * would: asking the inline completion provider, cancelling the previous ask on each new
 * keystroke.
 */
import '../stub/install';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as extension from '../../src/extension';
import {
  CancellationTokenSource,
  createTextDocument,
  InlineCompletionItem,
  InlineCompletionTriggerKind,
  Position,
  stub,
  Uri,
} from '../stub/vscode';
import { PACKAGE_ROOT } from './real-server';

export { stub };

const manifest = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8'));

/**
 * Activates with package.json defaults plus `settings` (keys without the `helios.` prefix)
 * and `secrets` already in SecretStorage.
 */
export function activate(settings: Record<string, unknown>, secrets: Record<string, string> = {}): extension.HeliosApi {
  stub.reset();
  stub.loadDefaults(manifest);
  for (const [key, value] of Object.entries(settings)) stub.settings.set(`helios.${key}`, value);
  for (const [key, value] of Object.entries(secrets)) stub.secrets.set(key, value);
  const context = stub.extensionContext();
  return extension.activate(context as never);
}

export async function deactivate(): Promise<void> {
  await extension.deactivate();
}

export function pythonDocument(text: string, file = 'src/fib.py') {
  return createTextDocument(text, 'python', Uri.file(`${stub.workspaceFolder}/${file}`));
}

/** Plays VS Code: each ask cancels the one before it, as a new keystroke does. */
export class Editor {
  private current: CancellationTokenSource | undefined;

  ask(
    document: ReturnType<typeof createTextDocument>,
    position: Position,
    trigger: InlineCompletionTriggerKind = InlineCompletionTriggerKind.Automatic,
  ): { result: Promise<InlineCompletionItem[] | undefined>; cancel(): void } {
    this.current?.cancel();
    const source = new CancellationTokenSource();
    this.current = source;
    const result = Promise.resolve(
      stub.inlineProvider().provideInlineCompletionItems(
        document,
        position,
        { triggerKind: trigger, selectedCompletionInfo: undefined },
        source.token,
      ),
    );
    return { result, cancel: () => source.cancel() };
  }
}

/** Waits until `predicate` holds, polling; fails with `what` after `timeoutMs`. */
export async function eventually(
  predicate: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
