// The layering rules of eslint.config.js, run through ESLint's own API on small sources placed
// (by file path) in each layer: a cross-layer import must fail lint, and the imports each layer
// legitimately makes must pass.
import test from 'ava';
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const eslint = new ESLint({ cwd: root });
const LAYER_RULES = new Set(['@typescript-eslint/no-restricted-imports', 'no-restricted-syntax']);

/** The layering errors lint reports for `source` placed at `filePath`. */
async function layerErrors(filePath: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: `${root}/${filePath}` });
  return result.messages
    .filter((m) => m.ruleId !== null && LAYER_RULES.has(m.ruleId) && m.severity === 2)
    .map((m) => m.message);
}

const forbidden = test.macro(async (t, filePath: string, source: string, because: RegExp) => {
  const errors = await layerErrors(filePath, source);
  t.is(errors.length, 1, `expected one layering error, got: ${errors.join(' | ')}`);
  t.regex(errors[0] ?? '', because);
});

const allowed = test.macro(async (t, filePath: string, source: string) => {
  t.deepEqual(await layerErrors(filePath, source), []);
});

// ---- shared ----------------------------------------------------------------------------------

const SHARED = 'shared/src/protocol/example.ts';
test(
  'shared may not import socket.io',
  forbidden,
  SHARED,
  "import { Server } from 'socket.io';\nexport const s = Server;\n",
  /shared\/ is what every package/,
);
test(
  'shared may not import a subpath of lowdb',
  forbidden,
  SHARED,
  "export { JSONFilePreset } from 'lowdb/node';\n",
  /no transport, UI, runtime, store/,
);
test(
  'shared may not load onnxruntime-node dynamically',
  forbidden,
  SHARED,
  "export const ort = await import('onnxruntime-node');\n",
  /shared\/ is what every package/,
);
test(
  'shared may not import electron',
  forbidden,
  SHARED,
  "import { app } from 'electron';\nexport const a = app;\n",
  /shared\//,
);
test(
  'shared may not import another workspace package',
  forbidden,
  SHARED,
  "import { loadCheckpoint } from '@fedit/kernels';\nexport const l = loadCheckpoint;\n",
  /other workspace/,
);
test(
  'shared may import its own files, node builtins and its dependencies',
  allowed,
  SHARED,
  "import { sha256 } from '../crypto/digest.ts';\nimport { readFile } from 'node:fs/promises';\nimport { pack } from 'msgpackr';\nexport const all = [sha256, readFile, pack];\n",
);

// ---- kernels ---------------------------------------------------------------------------------

const KERNELS = 'kernels/src/model/example.ts';
test(
  'kernels may not import the coordinator',
  forbidden,
  KERNELS,
  "import { startCoordinator } from '@fedit/coordinator';\nexport const s = startCoordinator;\n",
  /compute engine/,
);
test(
  'kernels may import shared and onnxruntime-node',
  allowed,
  KERNELS,
  "import { FeditError } from '@fedit/shared';\nimport * as ort from 'onnxruntime-node';\nexport const all = [FeditError, ort];\n",
);

// ---- coordinator -----------------------------------------------------------------------------

const COORDINATOR = 'coordinator/src/server/example.ts';
test(
  'the coordinator may not import kernels',
  forbidden,
  COORDINATOR,
  "import { loadCheckpoint } from '@fedit/kernels';\nexport const l = loadCheckpoint;\n",
  /never trains/,
);
test(
  'the coordinator may not load onnxruntime-node dynamically',
  forbidden,
  COORDINATOR,
  "export const ort = await import('onnxruntime-node');\n",
  /never trains/,
);
test(
  'the coordinator may not load kernels dynamically',
  forbidden,
  COORDINATOR,
  "export const kernels = await import('@fedit/kernels');\n",
  /never trains/,
);
test(
  'the coordinator may import shared, socket.io and lowdb',
  allowed,
  COORDINATOR,
  "import { FeditError } from '@fedit/shared';\nimport { Server } from 'socket.io';\nimport { JSONFilePreset } from 'lowdb/node';\nexport const all = [FeditError, Server, JSONFilePreset];\n",
);

// ---- no workspace reaches into another's src/ ---------------------------------------------------

test(
  "a bench may not reach into another workspace's src/",
  forbidden,
  'coordinator/bench/example.ts',
  "import { Participant } from '../../client-app/src/core/federation/index.ts';\nexport const p = Participant;\n",
  /another workspace's src\//,
);
test(
  "the CLI may not reach into shared's src/ by path",
  forbidden,
  'client-app/src/cli/example.ts',
  "export { sha256 } from '../../../shared/src/crypto/digest.ts';\n",
  /another workspace's src\//,
);
test(
  "no file may import a package's src/ through its name",
  forbidden,
  'client-app/src/cli/example.ts',
  "export { sha256 } from '@fedit/shared/src/crypto/digest.ts';\n",
  /declared entry points/,
);
test(
  'a subpath a package declares in its exports is an entry point',
  allowed,
  'test/bench/example.ts',
  "import { Participant } from '@fedit/client/federation';\nexport const p = Participant;\n",
);
test(
  'a workspace may import its own src/ and other packages by name',
  allowed,
  'coordinator/bench/example.ts',
  "import { startCoordinator } from '../src/index.ts';\nimport { FeditError } from '@fedit/shared';\nexport const all = [startCoordinator, FeditError];\n",
);

// ---- the renderer --------------------------------------------------------------------------------

const RENDERER = 'client-app/renderer/src/example.ts';
test(
  'the renderer may import the app API only as types',
  forbidden,
  RENDERER,
  "import { AppState } from '../../src/app/api.ts';\nexport const s: AppState | undefined = undefined;\n",
  /only types/,
);
test(
  'the renderer may not import other app modules, even as types',
  forbidden,
  RENDERER,
  "import type { AppBackend } from '../../src/app/backend.ts';\nexport type B = AppBackend;\n",
  /nothing from the app but/,
);
test(
  'the renderer may not import electron',
  forbidden,
  RENDERER,
  "import { ipcRenderer } from 'electron';\nexport const i = ipcRenderer;\n",
  /untrusted page code/,
);
test(
  'the renderer may not import bare node builtins',
  forbidden,
  RENDERER,
  "import { readFile } from 'fs';\nexport const r = readFile;\n",
  /untrusted page code/,
);
test(
  'the renderer may not import node: builtins',
  forbidden,
  RENDERER,
  "import { readFile } from 'node:fs/promises';\nexport const r = readFile;\n",
  /untrusted page code/,
);
test(
  'the renderer may import the API types and its own modules',
  allowed,
  RENDERER,
  "import type { AppState } from '../../src/app/api.ts';\nimport { h } from './dom.ts';\nexport type S = AppState;\nexport const hh = h;\n",
);
test(
  'the renderer may fold events with the pure live-status reducer',
  allowed,
  RENDERER,
  "import { reduceLiveStatus } from '../../src/app/live-status.ts';\nexport const r = reduceLiveStatus;\n",
);
test(
  'the live-status reducer the page runs imports types only',
  forbidden,
  'client-app/src/app/live-status.ts',
  "import { FEDIT_VERSION } from '@fedit/shared';\nexport const v = FEDIT_VERSION;\n",
  /imports types only/,
);

// ---- the client core, the Electron main process, other workspaces' folders -----------------------

test(
  'the client core may not import the app',
  forbidden,
  'client-app/src/core/federation/example.ts',
  "import { AppBackend } from '../../app/backend.ts';\nexport const b = AppBackend;\n",
  /knows no app, CLI or Electron/,
);
test(
  'the client core may not import electron',
  forbidden,
  'client-app/src/core/example.ts',
  "import { app } from 'electron';\nexport const a = app;\n",
  /knows no app, CLI or Electron/,
);
test(
  'the Electron main process may not load the engine',
  forbidden,
  'client-app/electron/example.ts',
  "import { loadCheckpoint } from '@fedit/kernels';\nexport const l = loadCheckpoint;\n",
  /engine runs in the worker/,
);
test(
  "no file may reach into another workspace's test helpers by path",
  forbidden,
  'shared/src/rounds/example.ts',
  "import { Peer } from '../../../coordinator/test/helpers/peer.ts';\nexport const p = Peer;\n",
  /another workspace's/,
);
test(
  'the renderer may not run code from an npm package',
  forbidden,
  RENDERER,
  "import { pack } from 'msgpackr';\nexport const p = pack;\n",
  /only types from packages/,
);
test(
  "the bench entry may run another workspace's benchmark",
  allowed,
  'test/bench/example.ts',
  "import { benchTrain } from '../../kernels/bench/train.ts';\nexport const b = benchTrain;\n",
);
