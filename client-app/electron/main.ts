// The desktop app's main process. Kept small (VS Code's process model): it owns the window and
// the backend (src/app/backend.ts), and trusts the page with nothing. The page is sandboxed and
// isolated (./window-options.ts), reaches the backend only through the preload's `window.fedit`
// (one IPC channel per API method, each sender checked), cannot navigate, open windows or load
// anything from the network. Training runs in a utilityProcess (./utility-worker-link.ts).
//
// Built by scripts/build-app.mjs into app-dist/main.mjs, next to the other files of APP_FILES.

import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  BrowserWindow,
  app,
  dialog,
  ipcMain,
  powerMonitor,
  safeStorage,
  session,
  shell,
  utilityProcess,
  type IpcMainInvokeEvent,
  type OpenDialogOptions,
} from 'electron';
import { API_METHODS } from '../src/app/api.ts';
import { AppBackend, LOGS_DIR } from '../src/app/backend.ts';
import { APP_FILES, EVENT_CHANNEL, invokeChannel, type InvokeResult } from './channels.ts';
import { useIdentityProtector } from '../src/core/federation/identity-file.ts';
import { keychainProtector } from './identity-keychain.ts';
import { answerInvoke } from './ipc.ts';
import { powerSystemMonitor } from './power-monitor.ts';
import { utilityWorkerLink } from './utility-worker-link.ts';
import { isTrustedSender, mainWindowOptions, withContentSecurityPolicy } from './window-options.ts';

const here = dirname(fileURLToPath(import.meta.url));
const rendererPage = join(here, APP_FILES.rendererPage);
const rendererUrl = pathToFileURL(rendererPage).href;
/** The page and its own files; anything else a request asks for is refused. */
const LOCAL_SCHEMES = new Set(['file:', 'data:', 'devtools:']);

let mainWindow: BrowserWindow | undefined;
/** The backend once it is open (for the log); `opening` until then, and until it is closed. */
let backend: AppBackend | undefined;
let opening: Promise<AppBackend> | undefined;
/** Windows can be made once Electron is ready. */
let ready = false;

app.enableSandbox();
// A development run (`npm run app`) keeps its own folder, away from an installed app's identity.
if (!app.isPackaged) app.setPath('userData', join(app.getPath('appData'), 'fedit-dev'));
// One app per user-data folder: two would train on, and write, the same identity and checkpoints.
if (!app.requestSingleInstanceLock()) {
  app.exit(0);
} else {
  // The backend keeps its log in <userData>/logs; Electron's own logs (on macOS
  // ~/Library/Logs/fedit by default) go to the same folder, the one "Show logs" opens.
  app.setAppLogsPath(join(app.getPath('userData'), LOGS_DIR));
  hardenContents();
  // At once, before anything slow: a second launch meanwhile exits on the lock and brings this
  // window forward, instead of vanishing without a word.
  app.on('second-instance', showWindow);
  app
    .whenReady()
    .then(start)
    .catch((error: unknown) => fail(error));
}

async function start(): Promise<void> {
  lockDownSession();
  ready = true;
  // The participant's key sealed by this computer's keychain where there is one (app-identity.ts).
  useIdentityProtector(keychainProtector(safeStorage));
  const worker = utilityWorkerLink({
    entry: join(here, APP_FILES.trainingWorker),
    fork: (modulePath, args, options) => utilityProcess.fork(modulePath, args, options),
    output: (line, stream) => (stream === 'stderr' ? backend?.log.warn(`worker: ${line}`) : undefined),
  });
  const backendOpening = AppBackend.open({
    home: app.getPath('userData'),
    worker,
    monitor: powerSystemMonitor(powerMonitor),
    openPath: async (path) => {
      const problem = await shell.openPath(path);
      if (problem) throw new Error(`cannot open ${path}: ${problem}`);
    },
  });
  opening = backendOpening;
  // Until the backend is open the page shows "Starting…": its first getState waits here.
  for (const method of API_METHODS) {
    ipcMain.handle(invokeChannel(method), async (event, ...args: unknown[]): Promise<InvokeResult> => {
      const opened = await backendOpening;
      if (!fromOurPage(event)) {
        opened.log.warn(`refused ${method} from ${event.senderFrame?.url ?? 'a frame that is gone'}`);
        return { ok: false, error: { code: 'APP_FORBIDDEN', message: 'not from the fedit window' } };
      }
      return answerInvoke(method, args, {
        backend: opened,
        pickModelDir,
        pickDataFiles,
        pickAdapterFolder,
        logError: (message) => opened.log.error(message),
      });
    });
  }
  // macOS keeps an app running without windows (training goes on); elsewhere closing it quits.
  app.on('activate', showWindow);
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  app.on('before-quit', (event) => {
    if (!opening) return;
    // Stop taking part first, so training writes its checkpoint; then quit for real.
    event.preventDefault();
    const closing = opening;
    opening = undefined;
    void closing
      .then((b) => b.close())
      .catch(() => undefined) // it did not open: start() reported why
      .finally(() => app.quit());
  });
  // The window first: opening the backend checks the chosen model and data again in the worker,
  // which takes a while on a large model.
  showWindow();
  backend = await backendOpening;
  backend.onEvent((event) => {
    if (mainWindow && !mainWindow.isDestroyed()) mainWindow.webContents.send(EVENT_CHANNEL, event);
  });
}

function showWindow(): void {
  if (!ready) return; // a second launch before this one is ready: the window comes anyway
  if (mainWindow && !mainWindow.isDestroyed()) {
    if (mainWindow.isMinimized()) mainWindow.restore();
    mainWindow.focus();
    return;
  }
  const created = new BrowserWindow(mainWindowOptions(join(here, APP_FILES.preload), !app.isPackaged));
  mainWindow = created;
  created.once('ready-to-show', () => created.show());
  created.webContents.on('render-process-gone', (_event, details) =>
    backend?.log.error(`the window's renderer stopped: ${details.reason} (exit code ${details.exitCode})`),
  );
  void created.loadFile(rendererPage);
}

/** The sender is our window's top frame, showing our page. */
function fromOurPage(event: IpcMainInvokeEvent): boolean {
  const frame = event.senderFrame;
  if (!mainWindow || mainWindow.isDestroyed() || event.sender !== mainWindow.webContents || !frame)
    return false;
  return isTrustedSender({ url: frame.url, isMainFrame: frame === event.sender.mainFrame }, rendererUrl);
}

async function pickModelDir(): Promise<string | undefined> {
  const options: OpenDialogOptions = {
    title: 'Choose the base model folder',
    buttonLabel: 'Use this folder',
    properties: ['openDirectory'],
  };
  const picked = mainWindow
    ? await dialog.showOpenDialog(mainWindow, options)
    : await dialog.showOpenDialog(options);
  return picked.canceled ? undefined : picked.filePaths[0];
}

async function pickDataFiles(): Promise<string[] | undefined> {
  const options: OpenDialogOptions = {
    title: 'Choose your training data',
    buttonLabel: 'Use these files',
    properties: ['openFile', 'multiSelections'],
    filters: [
      { name: 'Instruction data (JSON, JSON Lines)', extensions: ['json', 'jsonl'] },
      { name: 'All files', extensions: ['*'] },
    ],
  };
  const picked = mainWindow
    ? await dialog.showOpenDialog(mainWindow, options)
    : await dialog.showOpenDialog(options);
  return picked.canceled || picked.filePaths.length === 0 ? undefined : picked.filePaths;
}

/** A new or empty folder for "Save adapter…" (the backend refuses one that holds files). */
async function pickAdapterFolder(): Promise<string | undefined> {
  const options: OpenDialogOptions = {
    title: "Choose a new or empty folder for the federation's adapter",
    buttonLabel: 'Save the adapter here',
    properties: ['openDirectory', 'createDirectory', 'promptToCreate'],
  };
  const picked = mainWindow
    ? await dialog.showOpenDialog(mainWindow, options)
    : await dialog.showOpenDialog(options);
  return picked.canceled ? undefined : picked.filePaths[0];
}

/** Every web contents, now and later: no new windows, no navigation, no <webview>. */
function hardenContents(): void {
  app.on('web-contents-created', (_event, contents) => {
    contents.setWindowOpenHandler(() => ({ action: 'deny' }));
    // Loading the page (loadFile) emits neither of these; everything the page starts does.
    contents.on('will-navigate', (event) => event.preventDefault());
    contents.on('will-frame-navigate', (event) => {
      if (!event.isMainFrame || event.url !== rendererUrl) event.preventDefault();
    });
    contents.on('will-redirect', (event) => event.preventDefault());
    contents.on('will-attach-webview', (event) => event.preventDefault());
  });
}

/** The page's session: no permissions, no remote requests, and our CSP on every response. */
function lockDownSession(): void {
  const pageSession = session.defaultSession;
  pageSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  pageSession.setPermissionCheckHandler(() => false);
  pageSession.webRequest.onBeforeRequest((details, callback) => {
    const scheme = new URL(details.url).protocol;
    callback({ cancel: !LOCAL_SCHEMES.has(scheme) });
  });
  // Defense in depth: index.html carries the policy in a <meta> tag too.
  pageSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: withContentSecurityPolicy(details.responseHeaders) });
  });
}

function fail(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  backend?.log.error(`the app could not start: ${(error as Error)?.stack ?? message}`);
  dialog.showErrorBox('fedit could not start', message);
  app.exit(1);
}
