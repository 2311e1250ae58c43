/**
 * The extension activated against the stand-in `vscode` module, with no server at all
 * (a real closed port). The tests with a real server are in real-server.test.ts.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { activate, deactivate, Editor, eventually, pythonDocument, stub } from './helpers/extension';
import { FetchSpy } from './helpers/fetch-spy';
import { freePort } from './helpers/real-server';
import { InlineCompletionTriggerKind, Position, StatusBarAlignment } from './stub/vscode';

const spy = new FetchSpy();

afterEach(async () => {
  spy.uninstall();
  spy.clear();
  await deactivate();
});

async function closedUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

describe('activation (stand-in vscode, no server)', () => {
  test('registers the commands, the provider and a status bar item that opens the status', async () => {
    activate({ serverUrl: await closedUrl(), autoStart: false });
    assert.deepEqual([...stub.commands.keys()].sort(), [
      'helios.restartServer',
      'helios.setApiKey',
      'helios.showLog',
      'helios.showStatus',
      'helios.startServer',
      'helios.toggleCompletions',
    ]);
    assert.equal(stub.providers.length, 1);
    assert.deepEqual(stub.providers[0].selector, [
      { scheme: 'file' },
      { scheme: 'untitled' },
      { scheme: 'vscode-notebook-cell' },
    ]);
    const item = stub.statusItem();
    assert.equal(item.visible, true);
    assert.equal(item.command, 'helios.showStatus');
    assert.equal(item.alignment, StatusBarAlignment.Right);
  });

  test('every command in package.json is registered, and nothing more', async () => {
    const manifest = require('../../package.json');
    activate({ serverUrl: await closedUrl(), autoStart: false });
    const declared = manifest.contributes.commands.map((c: { command: string }) => c.command).sort();
    assert.deepEqual([...stub.commands.keys()].sort(), declared);
    const activation = manifest.activationEvents as string[];
    for (const language of manifest.contributes.configuration.properties['helios.enabledLanguages'].default) {
      assert.ok(activation.includes(`onLanguage:${language}`), language);
    }
  });

  test('the manifest binds Alt+\\ to Trigger Inline Suggestion (VS Code binds no key to it)', () => {
    const manifest = require('../../package.json');
    const bindings = manifest.contributes.keybindings as Array<Record<string, string>>;
    const trigger = bindings.filter((b) => b.command === 'editor.action.inlineSuggest.trigger');
    assert.equal(trigger.length, 1);
    assert.equal(trigger[0].key, 'alt+\\');
    assert.equal(trigger[0].when, 'editorTextFocus && !editorReadonly');
  });

  test('the manifest claims no repository it does not have', () => {
    const manifest = require('../../package.json');
    assert.equal(manifest.repository, undefined);
    assert.doesNotMatch(JSON.stringify(manifest), /example\.invalid/);
  });

  test('a refused connection: "not running" in the status bar and ONE quiet notice with a start action', async () => {
    const api = activate({ serverUrl: await closedUrl(), autoStart: false });
    await eventually(() => api.status.kind === 'unreachable', 'status unreachable');
    assert.equal(stub.statusItem().text, '$(debug-disconnect) Helios: not running');
    await eventually(() => stub.messages.length > 0, 'a notification');
    assert.equal(stub.messages.length, 1);
    const [message] = stub.messages;
    assert.equal(message.level, 'warning');
    assert.match(message.message, /^Helios server not running at http:\/\/127\.0\.0\.1:\d+\.$/);
    assert.deepEqual(message.items, ['Start Server', 'Settings']);
    assert.equal(message.modal, false);

    // typing on: completions fail quietly, no more notifications
    const editor = new Editor();
    const doc = pythonDocument('def f(x):\n    return ');
    for (let i = 0; i < 3; i++) {
      assert.equal(await editor.ask(doc, new Position(1, 11), InlineCompletionTriggerKind.Invoke).result, undefined);
    }
    assert.equal(stub.messages.length, 1);
    assert.equal(api.status.kind, 'unreachable');
  });

  test('languages that are not enabled, or completions off: nothing is sent', async () => {
    activate({ serverUrl: await closedUrl(), autoStart: false, enabledLanguages: ['go'], debounceMs: 0 });
    spy.install();
    const editor = new Editor();
    assert.equal(await editor.ask(pythonDocument('x = '), new Position(0, 4)).result, undefined);
    stub.set('helios.enabledLanguages', ['python']);
    stub.set('helios.enable', false);
    assert.equal(await editor.ask(pythonDocument('x = '), new Position(0, 4)).result, undefined);
    assert.equal(spy.to('/complete').length, 0);
    stub.set('helios.enable', true);
    await editor.ask(pythonDocument('x = '), new Position(0, 4)).result;
    assert.equal(spy.to('/complete').length, 1);
  });

  test('a keystroke cancelled during the debounce never reaches the network', async () => {
    activate({ serverUrl: await closedUrl(), autoStart: false, debounceMs: 200 });
    spy.install();
    const editor = new Editor();
    const doc = pythonDocument('x = 1\n');
    const first = editor.ask(doc, new Position(0, 5));
    first.cancel();
    assert.equal(await first.result, undefined);
    // a burst: each ask cancels the previous; only the last is sent
    const asks = [0, 1, 2].map(() => editor.ask(doc, new Position(0, 5)));
    await Promise.all(asks.map((a) => a.result));
    assert.equal(spy.to('/complete').length, 1);
  });

  test('Toggle Completions flips helios.enable and the status bar says off', async () => {
    activate({ serverUrl: await closedUrl(), autoStart: false });
    await stub.commands.get('helios.toggleCompletions')!();
    assert.equal(stub.settings.get('helios.enable'), false);
    assert.equal(stub.statusItem().text, '$(circle-slash) Helios: off');
    await stub.commands.get('helios.toggleCompletions')!();
    assert.equal(stub.settings.get('helios.enable'), true);
    assert.notEqual(stub.statusItem().text, '$(circle-slash) Helios: off');
  });

  test('Show Status offers Start Server when nothing answers', async () => {
    const api = activate({ serverUrl: await closedUrl(), autoStart: false });
    await eventually(() => api.status.kind === 'unreachable', 'status unreachable');
    await stub.commands.get('helios.showStatus')!();
    assert.equal(stub.quickPicks.length, 1);
    const labels = stub.quickPicks[0].items.map((i: { label: string }) => i.label);
    assert.equal(labels[0], '$(debug-disconnect) Helios: not running');
    assert.ok(labels.includes('$(play) Start Server'));
    assert.ok(labels.includes('$(circle-slash) Turn Completions Off'));
    assert.ok(!labels.includes('$(debug-restart) Restart Server'));
  });

  test('auto-start with a command that does not exist: one notice with the reason, no modal', async () => {
    const api = activate({ serverUrl: await closedUrl(), autoStart: true, serverCommand: '/nonexistent/bin/helios' });
    await eventually(() => stub.messages.length > 0, 'a notification');
    await api.whenStarted();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(api.status.kind, 'unreachable');
    assert.equal(stub.messages.length, 1, JSON.stringify(stub.messages));
    assert.equal(
      stub.messages[0].message,
      'Helios server not running: Helios server command not found (set helios.serverCommand).',
    );
    assert.equal(stub.messages[0].modal, false);
    assert.match(stub.log(), /\$ \/nonexistent\/bin\/helios serve --host 127\.0\.0\.1 --port \d+/);
  });

  test('auto-start launches nothing for a URL a local process cannot serve', async () => {
    // https on loopback: still only local traffic, but `helios serve` speaks plain http
    const url = (await closedUrl()).replace('http:', 'https:');
    const api = activate({ serverUrl: url, autoStart: true, serverCommand: '/nonexistent/bin/helios' });
    await eventually(() => api.status.kind === 'unreachable', 'status unreachable');
    await eventually(() => /cannot start the server/.test(stub.log()), 'the reason in the log');
    await api.whenStarted();
    assert.doesNotMatch(stub.log(), /\$ \/nonexistent/);
    assert.match(stub.log(), /only http:\/\/ server URLs can be started locally/);
    assert.equal(stub.messages.length, 1);
    assert.match(stub.messages[0].message, /^Helios server not running at https:\/\/127\.0\.0\.1:\d+ \(only http:\/\/ server URLs can be started locally, not https:\/\/\)\.$/);
    assert.deepEqual(stub.messages[0].items, ['Settings']);
  });

  test('deactivate disposes the status bar item and the commands', async () => {
    activate({ serverUrl: await closedUrl(), autoStart: false });
    const item = stub.statusItem();
    await deactivate();
    assert.equal(item.disposed, true);
    assert.equal(stub.commands.size, 0);
    assert.equal(stub.providers.length, 0);
  });
});
