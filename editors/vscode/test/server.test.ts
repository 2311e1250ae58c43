import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describeExit, isLoopback, launchFor, ServerProcess } from '../src/server';

describe('launchFor', () => {
  test('a loopback http URL gives `serve --host --port`', () => {
    assert.deepEqual(launchFor('helios', 'http://127.0.0.1:8000'), {
      command: 'helios',
      args: ['serve', '--host', '127.0.0.1', '--port', '8000', '--parent-pid', String(process.pid)],
      host: '127.0.0.1',
      port: 8000,
    });
    const v6 = launchFor('/opt/helios/bin/helios', 'http://[::1]:9000/');
    assert.ok(typeof v6 !== 'string');
    assert.deepEqual(v6.args, ['serve', '--host', '::1', '--port', '9000', '--parent-pid', String(process.pid)]);
    const localhost = launchFor('helios', 'http://localhost');
    assert.ok(typeof localhost !== 'string');
    assert.equal(localhost.port, 80);
  });

  test('URLs a local process cannot serve are refused with a reason', () => {
    assert.match(launchFor('helios', 'http://192.0.2.10:8000') as string, /not this machine/);
    assert.match(launchFor('helios', 'https://127.0.0.1:8000') as string, /only http/);
    assert.match(launchFor('helios', 'not a url') as string, /not a URL/);
    assert.match(launchFor('  ', 'http://127.0.0.1:8000') as string, /empty/);
    assert.match(launchFor('helios', 'http://127.0.0.1:8000/api') as string, /path/);
  });

  test('loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) assert.ok(isLoopback(host), host);
    for (const host of ['0.0.0.0', '10.0.0.1', 'example.com', '::']) assert.ok(!isLoopback(host), host);
  });
});

describe('ServerProcess', () => {
  test('a command that does not exist ends with a useful message', async () => {
    const lines: string[] = [];
    const server = new ServerProcess(
      { command: '/nonexistent/helios', args: ['serve'], host: '127.0.0.1', port: 1 },
      (line) => lines.push(line),
    );
    server.start();
    const exit = await server.exited;
    assert.equal((exit.error as NodeJS.ErrnoException).code, 'ENOENT');
    assert.equal(describeExit(exit), 'Helios server command not found (set helios.serverCommand)');
    assert.equal(server.running, false);
    assert.deepEqual(await server.stop(), exit);
  });

  test('exit codes and signals are described', () => {
    assert.equal(describeExit({ code: 2, signal: null }), 'Helios server exited with code 2');
    assert.equal(describeExit({ code: null, signal: 'SIGTERM' }), 'Helios server stopped by SIGTERM');
  });
});
