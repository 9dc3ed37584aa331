import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

// ---- Layers ------------------------------------------------------------------------------------
// Which code may import what, checked on every lint run (in the spirit of VS Code's
// code-import-patterns): a rule here, not a wish in a doc. docs/architecture.md, "Layers and how
// lint keeps them", explains each line; test/lint-layers.test.ts proves each rule fires.
//
// Each layer names the files it covers and the modules they must not import; a module name
// covers its subpaths ('lowdb' also forbids 'lowdb/node'), and a trailing '*' makes a prefix
// ('@fedit/*': every workspace package, 'node:*': every builtin).
// Static imports, `export ... from` and dynamic `import()` are all checked.

/** Rules for every file: workspaces meet only through their packages' entry points. */
const EVERYWHERE = [
  {
    // Any folder of another workspace (src/, test/, electron/, ...), not only its src/; the one
    // exception is a benchmark (the `npm run bench` entry in test/ runs each package's bench/).
    regex: '^(\\.\\./)+(shared|kernels|coordinator|client-app)/(?!bench/)',
    message: "reaches into another workspace's src/ by path: import its package (@fedit/...) instead.",
  },
  {
    // Subpaths a package declares in its package.json "exports" (@fedit/client/federation) are
    // entry points too; its source folder is not.
    regex: '^@fedit/[^/]+/src(/|$)',
    message: "reaches into a package's src/: import one of its declared entry points (package.json exports).",
  },
];

/** The source files lint checks, under a folder. */
const CODE = '**/*.{ts,mts,js,mjs}';

const NODE_BUILTINS = builtinModules.filter((name) => !name.startsWith('_'));

const LAYERS = [
  {
    files: [`shared/src/${CODE}`],
    forbid: ['socket.io', 'socket.io-client', 'electron', 'onnxruntime-node', 'lowdb', '@fedit/*'],
    why: 'shared/ is what every package and the auditor load: no transport, UI, runtime, store or other workspace.',
  },
  {
    files: [`kernels/src/${CODE}`],
    forbid: ['@fedit/coordinator', '@fedit/client', 'socket.io', 'socket.io-client', 'electron', 'lowdb'],
    why: 'kernels/ is the compute engine: it knows nothing of federation, transport, UI or storage.',
  },
  {
    files: [`coordinator/src/${CODE}`],
    forbid: ['@fedit/kernels', '@fedit/client', 'electron', 'onnxruntime-node'],
    why: 'the coordinator aggregates and logs; it never trains, so it loads no model runtime and no app.',
  },
  {
    files: [`client-app/src/core/${CODE}`],
    forbid: ['electron'],
    why: "the client core is what the CLI, the app's worker and the demo share: it knows no app, CLI or Electron.",
    patterns: [
      {
        regex: '^(\\.\\./)+(app|cli|demo|operator)/',
        message:
          "the client core is what the CLI, the app's worker and the demo share: it knows no app, CLI or Electron.",
      },
    ],
  },
  {
    files: [`client-app/electron/${CODE}`],
    forbid: ['@fedit/kernels', 'onnxruntime-node'],
    why: 'the Electron main process stays small: the engine runs in the worker (a native crash kills only it).',
  },
  {
    files: [`client-app/renderer/${CODE}`],
    forbid: ['electron', 'node:*', ...NODE_BUILTINS],
    why: 'the renderer is untrusted page code: it reaches the machine only through the preload API.',
    // Its one way into the app: the API's types. Values from src/, or packages, would be bundled
    // into the page.
    patterns: [
      {
        regex: '^(\\.\\./)+src/app/api(\\.ts)?$',
        allowTypeImports: true,
        message: 'the renderer may import only types (`import type`) from the app API.',
      },
      {
        // live-status.ts is the one exception: the pure reducer the backend and the page both fold
        // participant events with (no Node, no DOM, type-only imports), so they cannot disagree.
        regex: '^(\\.\\./)+src/(?!app/api(\\.ts)?$|app/live-status(\\.ts)?$)',
        message:
          'the renderer imports nothing from the app but the types of src/app/api.ts and the pure reducer src/app/live-status.ts.',
      },
      {
        // Bare module names other than those forbidden outright above (one error per import).
        regex: `^(?!node:|(${['electron', ...NODE_BUILTINS].join('|')})(/|$))[^./]`,
        allowTypeImports: true,
        message: 'the renderer may import only types from packages: whatever it runs is its own code.',
      },
    ],
  },
  {
    files: ['client-app/src/app/live-status.ts'],
    why: 'live-status.ts also runs in the page (the renderer folds events with it): it imports types only.',
    patterns: [
      {
        regex: '.',
        allowTypeImports: true,
        message:
          'live-status.ts also runs in the page (the renderer folds events with it): it imports types only.',
      },
    ],
  },
];

/** A regex source matching the module names in `names` and their subpaths; 'x*' is a prefix. */
function modulesRegex(names) {
  const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const alternatives = names.map((name) =>
    name.endsWith('*') ? escape(name.slice(0, -1)) : `${escape(name)}(/|$)`,
  );
  return `^(${alternatives.join('|')})`;
}

/** The lint config of one layer: its forbidden modules plus the rules for every file. */
function layerConfig({ files, ignores = [], forbid = [], why, patterns = [] }) {
  const forbidden = forbid.length > 0 ? [{ regex: modulesRegex(forbid), message: why }] : [];
  const all = [...EVERYWHERE, ...forbidden, ...patterns];
  return {
    files,
    ignores,
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: all }],
      // no-restricted-imports does not see import(); this names the same modules for it. Slashes are
      // written \x2F because esquery's regex literals cannot hold a '/'.
      'no-restricted-syntax': [
        'error',
        ...all.map(({ regex, message }) => ({
          selector: `ImportExpression[source.value=/${regex.replaceAll('/', '\\x2F')}/]`,
          message,
        })),
      ],
    },
  };
}

const layers = [layerConfig({ files: [CODE] }), ...LAYERS.map(layerConfig)];

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/app-dist/**', '**/app-release/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['client-app/renderer/**/*.{ts,js}'],
    languageOptions: { globals: { ...globals.browser } },
  },
  ...layers,
);
