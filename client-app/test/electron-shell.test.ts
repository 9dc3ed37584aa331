// The Electron shell without the Electron binary (it is fetched on first launch, never by tests):
// the build bundles every entry; the built preload, run against a fake 'electron', exposes exactly
// the API; the window is isolated, sandboxed and Node-free under a strict CSP; main's IPC answers,
// its utilityProcess link and its power monitor behave; the bundled training worker really runs.

import test from 'ava';
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import vm from 'node:vm';
import { FeditError } from '@fedit/shared';
import { API_METHODS, type AppState, type FeditAppApi } from '../src/app/api.ts';
import { WorkerProcessLink, forkedWorker } from '../src/app/worker-link.ts';
import { APP_FILES, EVENT_CHANNEL, type InvokeResult } from '../electron/channels.ts';
import { answerInvoke, type IpcContext } from '../electron/ipc.ts';
import { powerSystemMonitor, type PowerMonitorLike } from '../electron/power-monitor.ts';
import { utilityWorkerLink, type UtilityProcessLike } from '../electron/utility-worker-link.ts';
import {
  CONTENT_SECURITY_POLICY,
  isTrustedSender,
  mainWindowOptions,
  withContentSecurityPolicy,
} from '../electron/window-options.ts';
import { tempDir, writeTinyModel } from './app-fixture.ts';

const clientDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const electronDir = join(clientDir, 'electron');
let outDir = '';

test.before(async () => {
  // Inside the repository's node_modules, so the bundles resolve the native packages they leave
  // out (onnxruntime-node) as they do from client-app/app-dist; ignored by git and the linters.
  const cache = join(clientDir, '..', 'node_modules', '.cache');
  await mkdir(cache, { recursive: true });
  outDir = await mkdtemp(join(cache, 'fedit-app-dist-'));
  await promisify(execFile)(process.execPath, [join(clientDir, 'scripts/build-app.mjs'), '--out', outDir]);
});
test.after.always(async () => {
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

const built = (file: string) => readFile(join(outDir, file), 'utf8');

test('the build bundles the main process, the preload, the training worker and the renderer', async (t) => {
  for (const file of [
    ...Object.values(APP_FILES),
    'renderer/main.js',
    'renderer/styles.css',
    'package.json',
  ]) {
    t.true(existsSync(join(outDir, file)), `${file} is built`);
  }
  const manifest = JSON.parse(await built('package.json'));
  t.is(manifest.main, APP_FILES.main);
  t.is(manifest.type, 'module');
  t.truthy(
    manifest.dependencies['onnxruntime-node'],
    'the native runtime is a dependency of the packaged app',
  );

  // Electron is the runtime, never bundled; the worker (a plain Node process) does not use it.
  // ONNX Runtime's native code loads only in the worker, never in the window's process.
  t.regex(await built(APP_FILES.main), /from "electron"/);
  t.notRegex(await built(APP_FILES.main), /from "onnxruntime-node"/);
  t.notRegex(await built(APP_FILES.trainingWorker), /["']electron["']/);
  const preload = await built(APP_FILES.preload);
  t.deepEqual(
    [...preload.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]),
    ['electron'],
  );
  t.notRegex(preload, /^\s*(import|export)\s/m, 'the preload is CommonJS, not a module');

  // The page gets the app's policy (not the development shell's, which allows its WebSocket),
  // and everything it references was built next to it.
  const html = await built(APP_FILES.rendererPage);
  t.is(/http-equiv="Content-Security-Policy"\s+content="([^"]*)"/.exec(html)?.[1], CONTENT_SECURITY_POLICY);
  for (const [, ref] of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
    t.true(existsSync(join(outDir, 'renderer', ref)), `index.html's ${ref} is built`);
  }
});

test('only main.ts and preload.ts load electron at run time (the rest runs in tests without it)', async (t) => {
  for (const file of [
    'channels.ts',
    'ipc.ts',
    'power-monitor.ts',
    'utility-worker-link.ts',
    'window-options.ts',
  ]) {
    const source = await readFile(join(electronDir, file), 'utf8');
    t.notRegex(source, /^import (?!type )[^;]*from 'electron'/m, file);
  }
});

interface FakeElectron {
  required: string[];
  exposed: Map<string, unknown>;
  invocations: { channel: string; args: unknown[] }[];
  answer: (channel: string, args: unknown[]) => InvokeResult;
  ipcListeners: EventEmitter;
}

/** Runs the built preload as Electron runs a sandboxed one: a script with a narrow require. */
async function runPreload(): Promise<FakeElectron & { api: FeditAppApi }> {
  const fake: FakeElectron = {
    required: [],
    exposed: new Map(),
    invocations: [],
    answer: () => ({ ok: true, value: undefined }),
    ipcListeners: new EventEmitter(),
  };
  const electron = {
    contextBridge: { exposeInMainWorld: (key: string, value: unknown) => fake.exposed.set(key, value) },
    ipcRenderer: {
      invoke: async (channel: string, ...args: unknown[]) => {
        fake.invocations.push({ channel, args });
        return fake.answer(channel, args);
      },
      on: (channel: string, listener: (...args: unknown[]) => void) =>
        fake.ipcListeners.on(channel, listener),
      removeListener: (channel: string, listener: (...args: unknown[]) => void) =>
        fake.ipcListeners.removeListener(channel, listener),
    },
  };
  const require = (name: string) => {
    fake.required.push(name);
    if (name !== 'electron') throw new Error(`a sandboxed preload cannot require ${name}`);
    return electron;
  };
  const module = { exports: {} };
  const code = await built(APP_FILES.preload);
  const wrapped = vm.runInNewContext(
    `(function (require, module, exports) {\n${code}\n})`,
    {},
    { filename: 'preload.cjs' },
  );
  wrapped(require, module, module.exports);
  return Object.assign(fake, { api: fake.exposed.get('fedit') as FeditAppApi });
}

test('the preload exposes exactly the API methods and onEvent as window.fedit, nothing else', async (t) => {
  const preload = await runPreload();
  t.deepEqual(preload.required, ['electron']);
  t.deepEqual([...preload.exposed.keys()], ['fedit']);
  t.deepEqual(Object.keys(preload.api).sort(), [...API_METHODS, 'onEvent'].sort());
  for (const [name, value] of Object.entries(preload.api)) t.is(typeof value, 'function', name);
});

test('each API method invokes its own channel with the arguments and unwraps the answer', async (t) => {
  const preload = await runPreload();
  preload.answer = (channel) =>
    channel === 'fedit:chooseModel'
      ? { ok: false, error: { code: 'APP_PATH', message: 'the model folder does not exist' } }
      : { ok: true, value: { channel } };
  t.deepEqual(await preload.api.inspectInvite('fedit-invite:abc'), {
    channel: 'fedit:inspectInvite',
  } as never);
  t.deepEqual(preload.invocations.at(-1), { channel: 'fedit:inspectInvite', args: ['fedit-invite:abc'] });
  await preload.api.chat('c1', 'hello');
  t.deepEqual(preload.invocations.at(-1), { channel: 'fedit:chat', args: ['c1', 'hello'] });
  const error = await t.throwsAsync(preload.api.chooseModel('/nowhere'));
  t.is(error?.message, 'the model folder does not exist');
  t.is((error as Error & { code?: string }).code, 'APP_PATH');
  for (const method of API_METHODS) {
    await (preload.api[method] as () => Promise<unknown>)().catch(() => undefined);
    t.is(preload.invocations.at(-1)?.channel, `fedit:${method}`);
  }
});

test('onEvent passes the app event on, never the IPC event, and unsubscribes', async (t) => {
  const preload = await runPreload();
  const seen: unknown[] = [];
  const unsubscribe = preload.api.onEvent((event) => seen.push(event));
  const ipcEvent = { sender: 'the ipcRenderer itself' };
  preload.ipcListeners.emit(EVENT_CHANNEL, ipcEvent, { type: 'status', status: { state: 'idle' } });
  t.deepEqual(seen, [{ type: 'status', status: { state: 'idle' } }]);
  unsubscribe();
  t.is(preload.ipcListeners.listenerCount(EVENT_CHANNEL), 0);
  preload.ipcListeners.emit(EVENT_CHANNEL, ipcEvent, { type: 'status' });
  t.is(seen.length, 1);
  // (A TypeError of the preload's realm, as in Electron, where it is copied over the bridge.)
  t.throws(() => preload.api.onEvent('not a function' as never), { name: 'TypeError' });
});

test('the window is context-isolated, sandboxed and without Node', (t) => {
  const options = mainWindowOptions('/app/preload.cjs', false);
  const web = options.webPreferences ?? {};
  t.is(web.contextIsolation, true);
  t.is(web.sandbox, true);
  t.is(web.nodeIntegration, false);
  t.is(web.nodeIntegrationInWorker, false);
  t.is(web.nodeIntegrationInSubFrames, false);
  t.is(web.webSecurity, true);
  t.is(web.allowRunningInsecureContent, false);
  t.is(web.webviewTag, false);
  t.is(web.devTools, false);
  t.is(web.preload, '/app/preload.cjs');
});

test('the content security policy allows no inline code, no eval and no network', (t) => {
  const directives = new Map(
    CONTENT_SECURITY_POLICY.split(';').map((d) => {
      const [name, ...sources] = d.trim().split(/\s+/);
      return [name, sources] as const;
    }),
  );
  t.notRegex(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval|unsafe-hashes|wasm-unsafe-eval|\*/);
  t.deepEqual(directives.get('default-src'), ["'none'"]);
  t.deepEqual(directives.get('script-src'), ["'self'"]);
  t.deepEqual(directives.get('connect-src'), ["'none'"]);
  t.deepEqual(directives.get('object-src'), ["'none'"]);
  t.deepEqual(
    withContentSecurityPolicy({
      'content-security-policy': ["script-src 'unsafe-inline'"],
      'X-Other': ['1'],
    }),
    { 'X-Other': ['1'], 'Content-Security-Policy': [CONTENT_SECURITY_POLICY] },
  );
});

test('IPC is answered only for the top frame showing our page', (t) => {
  const page = 'file:///opt/fedit/resources/app.asar/renderer/index.html';
  t.true(isTrustedSender({ url: page, isMainFrame: true }, page));
  t.true(isTrustedSender({ url: `${page}#settings`, isMainFrame: true }, page));
  t.false(isTrustedSender({ url: page, isMainFrame: false }, page), 'a subframe');
  t.false(isTrustedSender({ url: 'file:///tmp/evil.html', isMainFrame: true }, page));
  t.false(isTrustedSender({ url: 'https://example.org/', isMainFrame: true }, page));
  t.false(isTrustedSender({ url: 'not a url', isMainFrame: true }, page));
  t.false(isTrustedSender(null, page), 'a frame that is gone');
  const windows = 'file:///C:/Program%20Files/fedit/resources/app.asar/renderer/index.html';
  t.true(isTrustedSender({ url: windows.replace('C:', 'c:'), isMainFrame: true }, windows, 'win32'));
});

function fakeBackend(calls: unknown[][]): IpcContext['backend'] {
  const record =
    (name: string) =>
    async (...args: unknown[]) => {
      calls.push([name, ...args]);
      if (name === 'start') throw new FeditError('APP_NOT_READY', 'choose a model first');
      if (name === 'pause') throw new Error('a bug, with a stack');
      return `${name} done`;
    };
  const methods = Object.fromEntries(API_METHODS.map((m) => [m, record(m)]));
  return { ...methods, cpuThreads: 4 } as unknown as IpcContext['backend'];
}

test('main answers invokes: the picker without a path, the backend with one, errors by code', async (t) => {
  const calls: unknown[][] = [];
  const logged: string[] = [];
  let picked: string[] | undefined = ['/data/a.jsonl', '/data/b.json'];
  let folder: string | undefined = '/home/me/federated-adapter';
  const context: IpcContext = {
    backend: fakeBackend(calls),
    pickModelDir: async () => '/models/smol',
    pickAdapterFolder: async () => folder,
    pickDataFiles: async () => picked,
    logError: (message) => logged.push(message),
  };
  t.deepEqual(await answerInvoke('chooseModel', [], context), { ok: true, value: 'chooseModel done' });
  t.deepEqual(calls.at(-1), ['chooseModel', '/models/smol']);
  await answerInvoke('chooseModel', ['/typed/model'], context);
  t.deepEqual(calls.at(-1), ['chooseModel', '/typed/model']);
  await answerInvoke('chooseData', [], context);
  t.deepEqual(calls.at(-1), ['chooseData', ['/data/a.jsonl', '/data/b.json']]);
  picked = undefined; // cancelled: nothing changes, the page gets the state
  t.deepEqual(await answerInvoke('chooseData', [], context), { ok: true, value: 'getState done' });
  // Save adapter…: the folder picked, or the one typed; a cancelled picker saves nothing.
  await answerInvoke('saveAdapter', [], context);
  t.deepEqual(calls.at(-1), ['saveAdapter', '/home/me/federated-adapter']);
  await answerInvoke('saveAdapter', ['/typed/out'], context);
  t.deepEqual(calls.at(-1), ['saveAdapter', '/typed/out']);
  folder = undefined;
  const before = calls.length;
  t.deepEqual(await answerInvoke('saveAdapter', [], context), { ok: true, value: undefined });
  t.is(calls.length, before, 'nothing saved');
  await answerInvoke('chat', ['c1', 'hi', 'ignored'], context);
  t.deepEqual(calls.at(-1), ['chat', 'c1', 'hi']);
  const made = calls.length;
  t.like(await answerInvoke('chat', ['c1', { toString: 'hi' }], context), {
    ok: false,
    error: { code: 'APP_ARGUMENT', message: 'the message must be text, got an object' },
  });
  t.like(await answerInvoke('updateSettings', [{ maxThreads: 5 }], context), {
    ok: false,
    error: {
      code: 'APP_ARGUMENT',
      message: 'maxThreads must be a whole number from 0 (all cores) to 4, got 5',
    },
  });
  t.is(calls.length, made, 'an argument that breaks its rule never reaches the backend');

  t.deepEqual(await answerInvoke('start', [], context), {
    ok: false,
    error: { code: 'APP_NOT_READY', message: 'choose a model first' },
  });
  const bug = await answerInvoke('pause', [], context);
  t.deepEqual(bug, {
    ok: false,
    error: { code: 'INTERNAL', message: 'something went wrong inside the app; the logs say more' },
  });
  t.regex(logged[0], /pause failed: Error: a bug, with a stack/);
});

class FakeUtilityProcess extends EventEmitter implements UtilityProcessLike {
  readonly pid = 4242;
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly posted: unknown[] = [];
  postMessage(message: unknown): void {
    this.posted.push(message);
  }
  kill(): boolean {
    this.emit('exit', 9);
    return true;
  }
}

test('the utilityProcess link reports a crash, fails the job in flight and forks a new worker', async (t) => {
  const forked: FakeUtilityProcess[] = [];
  const output: string[] = [];
  const link = utilityWorkerLink({
    entry: '/app/training-worker.mjs',
    fork: (modulePath, args, options) => {
      t.is(modulePath, '/app/training-worker.mjs');
      t.deepEqual(options.stdio, ['ignore', 'pipe', 'pipe']);
      const child = new FakeUtilityProcess();
      forked.push(child);
      return child;
    },
    output: (line, stream) => output.push(`${stream}: ${line}`),
  });
  const crashes: unknown[] = [];
  link.on('crash', (exit) => crashes.push(exit));

  const job = link.request({ kind: 'check-model', dir: '/models/smol' });
  t.is(forked.length, 1);
  t.like(forked[0].posted[0], { type: 'job', job: { kind: 'check-model', dir: '/models/smol' } });
  forked[0].stderr.write('onnxruntime: out of memory\n');
  forked[0].emit('exit', 134);
  await t.throwsAsync(job, { message: /exited with code 134/ });
  t.deepEqual(crashes, [{ code: 134 }]);
  t.deepEqual(output, ['stderr: onnxruntime: out of memory']);

  const next = link.request({ kind: 'check-model', dir: '/models/smol' });
  t.is(forked.length, 2, 'a new worker once one is needed');
  const id = (forked[1].posted[0] as { id: number }).id;
  const result = { identity: 'abc', modelType: 'llama', layers: 2, hiddenSize: 64 };
  forked[1].emit('message', { type: 'job-done', id, result });
  t.deepEqual(await next, result);

  const disposed = link.dispose();
  t.like(forked[1].posted.at(-1), { type: 'quit' });
  forked[1].emit('exit', 0);
  await disposed;
  t.is(crashes.length, 1, 'an exit the app asked for is no crash');
});

test('the bundled training worker runs as a separate process and answers jobs', async (t) => {
  const link = new WorkerProcessLink(() => forkedWorker({ entry: join(outDir, APP_FILES.trainingWorker) }));
  t.teardown(() => link.dispose());
  await t.throwsAsync(link.request({ kind: 'check-model', dir: join(outDir, 'no-model-here') }), {
    message: /config\.json/,
  });
});

test('the power monitor answers the training limits and reports changes', (t) => {
  const power = new EventEmitter() as EventEmitter & PowerMonitorLike;
  let battery = false;
  let idle: ReturnType<PowerMonitorLike['getSystemIdleState']> = 'active';
  let threshold = 0;
  power.isOnBatteryPower = () => battery;
  power.getSystemIdleState = (seconds) => {
    threshold = seconds;
    return idle;
  };
  const monitor = powerSystemMonitor(power, 120);
  t.false(monitor.onBattery());
  t.false(monitor.isIdle());
  t.is(threshold, 120);
  battery = true;
  idle = 'locked';
  t.true(monitor.onBattery());
  t.true(monitor.isIdle());
  idle = 'unknown';
  t.true(monitor.isIdle(), 'a system that cannot tell does not hold training back forever');

  let changes = 0;
  const unsubscribe = monitor.subscribe?.(() => changes++);
  power.emit('on-battery');
  power.emit('unlock-screen');
  t.is(changes, 2);
  unsubscribe?.();
  power.emit('on-ac');
  t.is(changes, 2);
  t.is(power.eventNames().length, 0);
});

/**
 * Just enough of Electron's main-process API, written into the build folder and swapped in for
 * 'electron' by a module resolve hook, to run the built main.mjs in Node: a utilityProcess is a
 * Node child process, the page is a script that calls the IPC handlers as the preload would.
 */
const FAKE_ELECTRON = String.raw`
import { fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { pathToFileURL } from 'node:url';

// 'order': what main did, in order (listeners registered, the window made, the worker forked).
const report = { forks: [], order: [] };
const handlers = new Map();
const hooks = {};
const finish = () => {
  process.stdout.write('FAKE_ELECTRON_REPORT ' + JSON.stringify(report) + '\n');
  process.exit(0);
};

class App extends EventEmitter {
  isPackaged = true;
  on(event, listener) {
    report.order.push('on ' + event);
    return super.on(event, listener);
  }
  enableSandbox() { report.sandboxEverything = true; }
  requestSingleInstanceLock() { return true; }
  setAppLogsPath(path) { report.appLogsPath = path; }
  getPath(name) {
    if (name !== 'userData') throw new Error('unexpected app.getPath(' + name + ')');
    return process.env.FAKE_ELECTRON_USER_DATA;
  }
  whenReady() { return Promise.resolve(); }
  quit() {
    const event = { prevented: false, preventDefault() { this.prevented = true; } };
    this.emit('before-quit', event);
    if (!event.prevented) finish();
  }
  exit(code) { report.exitCode = code; finish(); }
}
export const app = new App();

class WebContents extends EventEmitter {
  mainFrame = { url: '' };
  sent = [];
  setWindowOpenHandler(handler) { hooks.windowOpen = handler; }
  send(channel, payload) { this.sent.push([channel, payload.type]); }
}

export class BrowserWindow extends EventEmitter {
  constructor(options) {
    super();
    report.order.push('window');
    report.windowOptions = options;
    this.webContents = new WebContents();
    app.emit('web-contents-created', {}, this.webContents);
  }
  isDestroyed() { return false; }
  isMinimized() { return false; }
  show() {}
  focus() {}
  async loadFile(path) {
    report.loadedFile = path;
    this.webContents.mainFrame.url = pathToFileURL(path).href;
    setImmediate(() => page(this.webContents).catch((error) => {
      report.pageError = String(error && error.stack || error);
      finish();
    }));
  }
}

export const ipcMain = { handle: (channel, handler) => handlers.set(channel, handler) };
export const session = {
  defaultSession: {
    setPermissionRequestHandler: (handler) => (hooks.permissionRequest = handler),
    setPermissionCheckHandler: (handler) => (hooks.permissionCheck = handler),
    webRequest: {
      onBeforeRequest: (handler) => (hooks.beforeRequest = handler),
      onHeadersReceived: (handler) => (hooks.headersReceived = handler),
    },
  },
};
export const powerMonitor = Object.assign(new EventEmitter(), {
  isOnBatteryPower: () => false,
  getSystemIdleState: () => 'active',
});
export const dialog = {
  showOpenDialog: async () => ({ canceled: true, filePaths: [] }),
  showErrorBox: (title, message) => (report.errorBox = title + ': ' + message),
};
export const shell = { openPath: async () => '' };
// Linux without a keyring: Chromium's built-in key, which protects nothing, so the app keeps the
// identity file owner-only instead (electron/identity-keychain.ts).
export const safeStorage = {
  isEncryptionAvailable: () => true,
  getSelectedStorageBackend: () => 'basic_text',
  encryptString: () => {
    throw new Error('the basic_text backend must not be used');
  },
  decryptString: () => {
    throw new Error('the basic_text backend must not be used');
  },
};
export const utilityProcess = {
  fork(modulePath, args, options) {
    report.order.push('fork');
    report.forks.push({ modulePath, options });
    const child = fork(modulePath, args, { serialization: 'advanced', stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const utility = Object.assign(new EventEmitter(), {
      pid: child.pid,
      stdout: child.stdout,
      stderr: child.stderr,
      postMessage: (message) => child.send(message),
      kill: () => child.kill('SIGKILL'),
    });
    child.on('message', (message) => utility.emit('message', message));
    child.on('exit', (code) => utility.emit('exit', code ?? 1));
    child.on('error', () => undefined);
    return utility;
  },
};

/** The page: what the preload would send, plus a forged frame and a subframe. */
async function page(contents) {
  const invoke = (method, args = [], frame = contents.mainFrame) =>
    handlers.get('fedit:' + method)({ sender: contents, senderFrame: frame }, ...args);
  report.channels = [...handlers.keys()];
  report.getState = await invoke('getState');
  report.forgedPage = await invoke('getState', [], { url: 'file:///tmp/evil.html' });
  report.subframe = await invoke('getState', [], { url: contents.mainFrame.url });
  report.pickerCancelled = await invoke('chooseModel');
  report.typedModel = await invoke('chooseModel', [process.env.FAKE_ELECTRON_MODEL_DIR]);
  report.badArgument = await invoke('updateSettings', [{ maxThreads: 'all of them' }]);
  report.windowOpen = hooks.windowOpen({ url: 'https://example.org/' });
  const navigation = { prevented: false, preventDefault() { this.prevented = true; } };
  contents.emit('will-navigate', navigation);
  report.navigationPrevented = navigation.prevented;
  const request = (url) => new Promise((resolve) => hooks.beforeRequest({ url }, resolve));
  report.remoteRequest = await request('https://example.org/script.js');
  report.pageRequest = await request(contents.mainFrame.url);
  report.headers = await new Promise((resolve) => hooks.headersReceived({ responseHeaders: {} }, resolve));
  report.permission = await new Promise((resolve) => hooks.permissionRequest(contents, 'media', resolve));
  report.eventsSent = contents.sent.map(([channel]) => channel);
  app.quit();
}
`;

interface FakeElectronReport {
  sandboxEverything: boolean;
  appLogsPath: string;
  windowOptions: ReturnType<typeof mainWindowOptions>;
  loadedFile: string;
  forks: { modulePath: string }[];
  channels: string[];
  getState: InvokeResult;
  forgedPage: InvokeResult;
  subframe: InvokeResult;
  pickerCancelled: InvokeResult;
  typedModel: InvokeResult;
  badArgument: InvokeResult;
  windowOpen: unknown;
  navigationPrevented: boolean;
  remoteRequest: { cancel: boolean };
  pageRequest: { cancel: boolean };
  headers: { responseHeaders: Record<string, string[]> };
  permission: boolean;
  eventsSent: string[];
  order: string[];
  pageError?: string;
  errorBox?: string;
}

/** Runs the built main process on the fake electron, with `userData` and `modelDir` for the page. */
async function runMainOnFakeElectron(
  work: string,
  userData: string,
  modelDir: string,
): Promise<FakeElectronReport & { stdout: string }> {
  // Named per run: the tests run at the same time.
  const run = basename(work);
  const fake = join(outDir, `fake-electron-${run}.mjs`);
  const hooks = join(outDir, `fake-electron-hooks-${run}.mjs`);
  const register = join(outDir, `fake-electron-register-${run}.mjs`);
  await writeFile(fake, FAKE_ELECTRON);
  await writeFile(
    hooks,
    `export async function resolve(specifier, context, next) {
      if (specifier === 'electron') return { url: ${JSON.stringify(pathToFileURL(fake).href)}, shortCircuit: true };
      return next(specifier, context);
    }\n`,
  );
  await writeFile(
    register,
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );

  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', pathToFileURL(register).href, join(outDir, APP_FILES.main)],
    {
      timeout: 60_000,
      env: {
        ...process.env,
        FAKE_ELECTRON_USER_DATA: userData,
        FAKE_ELECTRON_MODEL_DIR: modelDir,
        FEDIT_SKIP_WEBGPU: '1',
        // Belt and braces: were the real 'electron' package ever loaded here, it must not download.
        ELECTRON_OVERRIDE_DIST_PATH: join(work, 'no-electron'),
      },
    },
  );
  const line = stdout.split('\n').find((l) => l.startsWith('FAKE_ELECTRON_REPORT '));
  if (!line) throw new Error(`the fake electron made no report; main printed:\n${stdout}`);
  return { ...(JSON.parse(line.slice('FAKE_ELECTRON_REPORT '.length)) as FakeElectronReport), stdout };
}

test('the built main process wires window, IPC, backend and utility worker (on a fake electron)', async (t) => {
  const work = await tempDir(t, 'fedit-fake-electron-');
  const userData = join(work, 'user-data');
  const modelDir = await writeTinyModel(work, 7);
  const report = await runMainOnFakeElectron(work, userData, modelDir);
  t.is(report.pageError, undefined);
  t.is(report.errorBox, undefined);

  t.true(report.sandboxEverything);
  t.is(report.appLogsPath, join(userData, 'logs'));
  t.is(report.loadedFile, join(outDir, APP_FILES.rendererPage));
  t.is(report.windowOptions.webPreferences?.preload, join(outDir, APP_FILES.preload));
  t.is(report.windowOptions.webPreferences?.devTools, false, 'no devtools in the packaged app');
  t.deepEqual(report.channels.sort(), API_METHODS.map((m) => `fedit:${m}`).sort());

  t.true(report.getState.ok);
  const state = (report.getState as { value: AppState }).value;
  t.is(state.logsDir, join(userData, 'logs'));
  const forbidden = { ok: false, error: { code: 'APP_FORBIDDEN', message: 'not from the fedit window' } };
  t.deepEqual(report.forgedPage, forbidden);
  t.deepEqual(report.subframe, forbidden);
  t.true(report.pickerCancelled.ok);
  t.is(
    (report.pickerCancelled as { value: AppState }).value.model,
    undefined,
    'cancelling the picker changes nothing',
  );

  // The model check ran in the training worker, forked as a utility process from the bundle.
  t.deepEqual(
    report.forks.map((f) => f.modulePath),
    [join(outDir, APP_FILES.trainingWorker)],
  );
  t.true(report.typedModel.ok, JSON.stringify(report.typedModel));
  t.like((report.typedModel as { value: AppState }).value.model, { dir: modelDir, ok: true });
  t.like(report.badArgument, { ok: false, error: { code: 'APP_ARGUMENT' } });
  t.true(report.eventsSent.includes(EVENT_CHANNEL));

  t.deepEqual(report.windowOpen, { action: 'deny' });
  t.true(report.navigationPrevented);
  t.deepEqual(report.remoteRequest, { cancel: true });
  t.deepEqual(report.pageRequest, { cancel: false });
  t.deepEqual(report.headers.responseHeaders['Content-Security-Policy'], [CONTENT_SECURITY_POLICY]);
  t.false(report.permission);
});

test('main shows the window before the backend has opened, and listens for a second launch first', async (t) => {
  const work = await tempDir(t, 'fedit-fake-electron-');
  const userData = join(work, 'user-data');
  const modelDir = await writeTinyModel(work, 8);
  // A model chosen last time: opening the backend checks it again, in the worker (slow on a large one).
  await mkdir(join(userData, 'app'), { recursive: true });
  await writeFile(
    join(userData, 'app', 'settings.json'),
    JSON.stringify({ version: 1, settings: {}, modelDir }),
  );
  const report = await runMainOnFakeElectron(work, userData, modelDir);
  t.is(report.pageError, undefined);
  const at = (step: string) => {
    const i = report.order.indexOf(step);
    t.not(i, -1, `${step} happened: ${report.order.join(', ')}`);
    return i;
  };
  t.true(at('on second-instance') < at('window'), 'a second launch finds this one listening from the start');
  t.true(at('window') < at('fork'), 'the window is made before the backend checks the model in the worker');
  // The page's first call waited for the backend: its state has the model checked.
  t.true(report.getState.ok);
  t.like((report.getState as { value: AppState }).value.model, { dir: modelDir, ok: true });
});
