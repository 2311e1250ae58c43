/**
 * Makes `require('vscode')` load the stand-in. Import this before anything that imports
 * the extension.
 */
import Module = require('node:module');

const target = require.resolve('./vscode');
const loader = Module as unknown as {
  _resolveFilename(request: string, ...rest: unknown[]): string;
};
const original = loader._resolveFilename;
loader._resolveFilename = function (request: string, ...rest: unknown[]): string {
  return request === 'vscode' ? target : original.call(this, request, ...rest);
};
