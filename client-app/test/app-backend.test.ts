// The desktop app's backend (src/app/backend.ts) without a browser: what it refuses from the
// untrusted page, what it keeps across restarts, the power/idle limits, a crashing training
// worker, and the development shell's guard (token, Origin, Host) around the same API.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type { ApiMethod, AppEvent, LiveStatus } from '../src/app/api.ts';
import { AppLog } from '../src/app/app-log.ts';
import { reduceLiveStatus } from '../src/app/live-status.ts';
import { AppBackend } from '../src/app/backend.ts';
import { CHAT_MAX_NEW_TOKENS } from '../src/app/chat-reply.ts';
import { ChatSessions } from '../src/app/worker.ts';
import { openChatSession } from '../src/core/index.ts';
import { readAdapter } from '@fedit/shared';
import { adapterCachePath } from '../src/core/federation/store.ts';
import { startDevShell } from '../src/app/dev-shell.ts';
import { callBackend } from '../src/app/dispatch.ts';
import { ManualMonitor } from '../src/app/system-monitor.ts';
import { inProcessWorker } from '../src/app/in-process-worker.ts';
import { WorkerProcessLink, forkedWorker } from '../src/app/worker-link.ts';
import { repoRoot } from '../../test/fixtures/fedit-cli.ts';
import {
  joinAndChoose,
  startTestFederation,
  tempDir,
  writeDataWithBadRows,
  writeTinyModel,
} from './app-fixture.ts';

async function openBackend(
  t: ExecutionContext,
  home: string,
  options: Partial<Parameters<typeof AppBackend.open>[0]> = {},
): Promise<AppBackend> {
  const backend = await AppBackend.open({
    home,
    worker: new WorkerProcessLink(inProcessWorker),
    probeGpu: async () => false,
    ...options,
  });
  t.teardown(() => backend.close());
  return backend;
}

/**
 * Resolves with the first live status (now or later) that `predicate` accepts, as the page sees
 * it: snapshots, and the participant's events folded in with the backend's own reducer.
 */
function statusWhere(backend: AppBackend, predicate: (s: LiveStatus) => boolean): Promise<LiveStatus> {
  return new Promise((resolve) => {
    let status: LiveStatus | undefined;
    const see = (next: LiveStatus) => {
      status = next;
      if (predicate(status)) {
        stop();
        resolve(status);
      }
    };
    const stop = backend.onEvent((event: AppEvent) => {
      if (event.type === 'status') see(event.status);
      else if (event.type === 'state') see(event.state.status);
      else if (event.type === 'participant' && status) see(reduceLiveStatus(status, event.event));
    });
    void backend.getState().then((state) => status ?? see(state.status));
  });
}

/**
 * The live status as the page keeps it: from snapshots ('state', 'status') and the participant's
 * events folded in with reduceLiveStatus, never from the backend's own status. After every
 * participant event it is compared with the backend's status at that moment; `differences` lists
 * the events after which they differed.
 */
function followLikeThePage(backend: AppBackend, initial: LiveStatus) {
  let status = initial;
  let compared = 0;
  const differences: string[] = [];
  backend.onEvent((event) => {
    if (event.type === 'state') status = event.state.status;
    else if (event.type === 'status') status = event.status;
    else if (event.type === 'participant') {
      status = reduceLiveStatus(status, event.event);
      const seen = status;
      compared++;
      // getState() takes its answer when called, so it is the backend's status after this event.
      void backend.getState().then(({ status: backendStatus }) => {
        if (!isDeepStrictEqual(seen, backendStatus)) differences.push(JSON.stringify(event.event));
      });
    }
  });
  return { status: () => status, compared: () => compared, differences };
}

type ChatDone = Extract<AppEvent, { type: 'chat' }> & { reply: string };

/** Sends one chat message and resolves with its last event and the whole reply. */
async function chatOnce(backend: AppBackend, id: string, prompt: string): Promise<ChatDone> {
  let reply = '';
  const done = new Promise<Extract<AppEvent, { type: 'chat' }>>((resolve) => {
    const stop = backend.onEvent((event) => {
      if (event.type !== 'chat' || event.id !== id) return;
      reply += event.text;
      if (event.done) {
        stop();
        resolve(event);
      }
    });
  });
  await backend.chat(id, prompt);
  return { ...(await done), reply };
}

/** A backend with an identity, joined to `fed`, with its model and data chosen. */
async function readyBackend(
  t: ExecutionContext,
  home: string,
  fed: Awaited<ReturnType<typeof startTestFederation>>,
  data: string,
  options: Partial<Parameters<typeof AppBackend.open>[0]> = {},
): Promise<AppBackend> {
  const backend = await openBackend(t, home, options);
  const state = await joinAndChoose(backend, fed, data);
  t.true(state.model?.ok);
  t.is(state.data?.report.usable, 8);
  return backend;
}

test('refuses what the page must not ask, saying what is wrong', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const fed = await startTestFederation(t, dir);
  const backend = await openBackend(t, join(dir, 'home'));
  const notAModel = join(dir, 'empty-folder');
  await mkdir(notAModel);
  const data = await writeDataWithBadRows(dir);
  // As the page calls it: through the edge that checks each argument against its declaration.
  const page = (method: ApiMethod, ...args: unknown[]) => callBackend(backend, method, args);

  await t.throwsAsync(page('start'), { code: 'APP_NOT_READY', message: /create your identity first/ });
  await t.throwsAsync(page('chooseModel', 'models/tiny'), { code: 'APP_PATH', message: /absolute path/ });
  await t.throwsAsync(page('chooseModel', join(dir, 'nowhere')), {
    code: 'APP_PATH',
    message: /does not exist/,
  });
  await t.throwsAsync(page('chooseModel', data), { code: 'APP_PATH', message: /is not a folder/ });
  await t.throwsAsync(page('chooseModel', 42), {
    code: 'APP_ARGUMENT',
    message: /must be text, got number/,
  });
  await t.throwsAsync(page('chooseModel', '/tmp/\0x'), { code: 'APP_ARGUMENT', message: /NUL/ });
  await t.throwsAsync(page('chooseData', []), { code: 'APP_ARGUMENT', message: /choose at least one file/ });
  await t.throwsAsync(page('chooseData', data), { code: 'APP_ARGUMENT', message: /list of files/ });
  await t.throwsAsync(page('chooseData', [dir]), { code: 'APP_PATH', message: /is not a file/ });
  await t.throwsAsync(page('chooseData', Array(65).fill(data)), {
    code: 'APP_ARGUMENT',
    message: /at most 64/,
  });
  await t.throwsAsync(page('updateSettings', { device: 'tpu' }), {
    message: /device must be one of auto, cpu, webgpu/,
  });
  await t.throwsAsync(page('updateSettings', { maxThreads: -1 }), {
    message: /maxThreads must be a whole number/,
  });
  await t.throwsAsync(page('updateSettings', { maxThreads: 1e6 }), { message: /maxThreads/ });
  await t.throwsAsync(page('updateSettings', { onlyWhenIdle: 'yes' }), { message: /true or false/ });
  await t.throwsAsync(page('updateSettings', { __proto__: 1, evil: 1 }), {
    message: /unknown setting "evil"/,
  });
  await t.throwsAsync(page('updateSettings', { displayName: 'a\u0007b' }), { message: /printable/ });
  await t.throwsAsync(page('updateSettings', null), { message: /must be an object/ });
  await t.throwsAsync(page('inspectInvite', 'hello'), { code: 'INVITE_PREFIX' });
  await t.throwsAsync(page('inspectInvite', 'x'.repeat(10_000)), {
    code: 'APP_ARGUMENT',
    message: /characters long/,
  });
  await t.throwsAsync(page('joinFederation', fed.invite()), {
    code: 'APP_NOT_READY',
    message: /read the federation's settings before joining/,
  });
  await t.throwsAsync(page('chat', 'bad id!', 'hello'), { code: 'APP_ARGUMENT', message: /chat id/ });
  await t.throwsAsync(page('chat', 'c1', '   '), { code: 'APP_ARGUMENT', message: /empty/ });
  await t.throwsAsync(page('chat', 'c1', 'hello'), { code: 'APP_NOT_READY', message: /model folder/ });
  await t.throwsAsync(page('pause'), { code: 'APP_NOT_READY' });

  // A folder that is not a model is no exception: the state says why in words.
  const state = await backend.chooseModel(notAModel);
  t.false(state.model?.ok);
  t.regex(state.model?.problem ?? '', /cannot be used as a model: .*no config\.json/);

  // Nothing refused was stored.
  t.deepEqual((await backend.getState()).settings, {
    device: 'auto',
    maxThreads: 0,
    onlyWhenPluggedIn: true,
    onlyWhenIdle: false,
    displayName: '',
  });
  t.false(fed.events.some((e) => e.type === 'enrolled'));
});

test('the limits hold training back until the computer is plugged in; settings, choices and rounds survive a restart', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const fed = await startTestFederation(t, dir);
  const data = await writeDataWithBadRows(dir);
  const home = join(dir, 'home');
  const monitor = new ManualMonitor();
  monitor.set({ onBattery: true });
  const backend = await readyBackend(t, home, fed, data, { monitor, limitPollMs: 50 });
  await backend.updateSettings({ device: 'cpu', maxThreads: 1, displayName: 'ignored after joining' });

  const connections = () => fed.events.filter((e) => e.type === 'connected').length;
  const before = connections(); // joining connected
  const page = followLikeThePage(backend, (await backend.getState()).status);
  let state = await backend.start();
  t.is(state.status.state, 'paused');
  t.is(state.status.pausedBy, 'power');
  t.is(connections(), before, 'on battery, the participant does not even connect');

  monitor.set({ onBattery: false });
  await statusWhere(backend, (s) => s.state === 'finished');
  state = await backend.getState();
  t.deepEqual(
    state.history.map((e) => [e.round, e.uploaded, e.outcome, e.updates]),
    [
      [1, true, 'aggregated', 1],
      [2, true, 'aggregated', 1],
    ],
  );
  t.is(state.status.losses.length, 30, 'one loss per local step of the last round');
  t.is(state.status.device, 'cpu');
  t.deepEqual(page.status(), state.status);
  t.true(page.compared() > 60, 'every step of both rounds was compared');
  t.deepEqual(page.differences, [], "the page's fold of the events it received is the backend's status");
  await backend.close();

  // Reopened on the same folder: everything chosen is still there, and the rounds too.
  const again = await openBackend(t, home, { monitor });
  state = await again.getState();
  t.is(state.settings.device, 'cpu');
  t.is(state.settings.maxThreads, 1);
  t.is(state.model?.dir, fed.modelDir);
  t.true(state.model?.ok);
  t.deepEqual(state.data?.files, [data]);
  t.is(state.federation?.name, 'app test federation');
  t.deepEqual(
    state.history.map((e) => e.round),
    [1, 2],
  );
  // A finished federation does not start again by itself: the app says it ended, and where its adapter is.
  t.is(state.status.state, 'finished');
  t.is(
    state.status.message,
    `the federation has ended after 2 rounds: your adapter is saved at ${state.ended?.adapterPath}`,
  );
  const log = await readFile(join(home, 'logs', 'app.log'), 'utf8');
  t.regex(log, /limit: holding training back \(power\)/);
  t.regex(log, /round 2: aggregated from 1 update/);
});

test('a training worker killed in the middle of a round is restarted and the round still gets its update', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const fed = await startTestFederation(t, dir, { rounds: 1 });
  const data = await writeDataWithBadRows(dir);
  const worker = new WorkerProcessLink(() => forkedWorker());
  let killed = false;
  worker.on('message', (message) => {
    // At the first training step: the native crash this guards against would come at any time.
    const event = message.type === 'participant' ? message.event : undefined;
    if (!killed && event?.type === 'progress' && event.data.phase === 'training') {
      killed = true;
      worker.kill();
    }
  });
  const backend = await readyBackend(t, join(dir, 'home'), fed, data, { worker, restartDelayMs: 100 });
  const crashed = statusWhere(backend, (s) => s.state === 'crashed');
  await backend.start();
  t.regex((await crashed).message ?? '', /killed by SIGKILL; restarting it and resuming/);
  await statusWhere(backend, (s) => s.state === 'finished');
  const closed = await fed.waitFor((e) => e.type === 'round-closed');
  t.is(
    closed.type === 'round-closed' && closed.updates,
    1,
    'the restarted worker trained and sent the update',
  );
  const state = await backend.getState();
  t.deepEqual(
    state.history.map((e) => [e.round, e.uploaded, e.outcome]),
    [[1, true, 'aggregated']],
  );
});

test('a training worker that dies is reported, restarted, and the participant takes part again', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  // Two participants per round: the app's participant alone waits, connected, for a round.
  const fed = await startTestFederation(t, dir, { participantsPerRound: { fraction: 1, minimum: 2 } });
  const data = await writeDataWithBadRows(dir);
  const worker = new WorkerProcessLink(() => forkedWorker());
  const backend = await readyBackend(t, join(dir, 'home'), fed, data, { worker, restartDelayMs: 100 });
  const fedId = (await backend.getState()).federation!.id;
  await backend.start();
  await statusWhere(backend, (s) => s.state === 'waiting');
  const connected = fed.events.filter((e) => e.type === 'connected').length;

  const crashed = statusWhere(backend, (s) => s.state === 'crashed');
  worker.kill(); // SIGKILL, as a native crash in onnxruntime would end it
  const status = await crashed;
  t.regex(status.message ?? '', /the training worker was killed by SIGKILL; restarting it/);
  await statusWhere(backend, (s) => s.state === 'waiting');
  await fed.waitFor(
    (e) => e.type === 'connected' && fed.events.filter((x) => x.type === 'connected').length > connected,
  );
  t.true(worker.alive);
  const log = await backend.readLogs();
  t.regex(log, /the training worker was killed by SIGKILL/);
  t.regex(log, /restarting the training worker/);

  // Pausing stops the participant (it disconnects); resuming takes part again.
  const paused = await backend.pause();
  t.is(paused.status.state, 'paused');
  t.is(paused.status.pausedBy, 'you');
  await fed.waitFor((e) => e.type === 'disconnected');
  await backend.resume();
  await statusWhere(backend, (s) => s.state === 'waiting');

  // Leaving stops the participant first, then forgets the membership and its round folders.
  const left = await backend.leaveFederation();
  t.is(left.federation, undefined);
  t.is(left.status.state, 'idle');
  t.deepEqual(left.history, []);
  t.deepEqual(await readdir(join(dir, 'home', 'federations')), []);
  t.false(existsSync(join(dir, 'home', 'rounds', fedId)));
  t.truthy(left.identity, 'the identity stays');
  await t.throwsAsync(backend.start(), { code: 'APP_NOT_READY', message: /join a federation first/ });
});

test('the process hosting the backend never loads onnxruntime: the engine runs in the worker', async (t) => {
  if (process.platform !== 'linux') return t.pass('checked through /proc/self/maps, on Linux');
  // Electron's main process imports these two; a native crash in the engine must not reach it.
  const script = `
    await import(${JSON.stringify(new URL('../src/app/backend.ts', import.meta.url).href)});
    await import(${JSON.stringify(new URL('../src/app/worker-link.ts', import.meta.url).href)});
    const maps = (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8');
    process.stdout.write(/onnxruntime/.test(maps) ? 'loaded' : 'not loaded');
  `;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: repoRoot, encoding: 'utf8' },
      (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout)),
    ),
  );
  t.is(out, 'not loaded');
});

test('device auto is the CPU until measured steps choose (app-device.test.ts); asking for WebGPU uses it when it starts here', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const withGpu = await openBackend(t, join(dir, 'a'), { probeGpu: async () => true });
  await new Promise((resolve) => setImmediate(resolve));
  let state = await withGpu.getState();
  t.true(state.gpuAvailable);
  t.is(state.status.device, 'cpu', 'Automatic has measured nothing yet');
  t.is(state.deviceChoice, undefined);
  state = await withGpu.updateSettings({ device: 'webgpu' });
  t.is(state.status.device, 'webgpu');
  state = await withGpu.updateSettings({ device: 'cpu' });
  t.is(state.status.device, 'cpu');
  const withoutGpu = await openBackend(t, join(dir, 'b'), { probeGpu: async () => false });
  state = await withoutGpu.updateSettings({ device: 'webgpu' });
  t.false(state.gpuAvailable);
  t.is(state.status.device, 'cpu', 'asking for a GPU that is not there trains on the CPU');
});

// ---- the development shell -----------------------------------------------------------------------

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function openSocket(url: string, origin: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { origin });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function call(
  ws: WebSocket,
  message: unknown,
): Promise<{ result?: unknown; error?: { code: string; message: string } }> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      const reply = JSON.parse(data.toString()) as { id?: number; event?: unknown };
      if (reply.event) return;
      ws.off('message', onMessage);
      resolve(reply as never);
    };
    ws.on('message', onMessage);
    ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  });
}

test('the development shell serves its page and API to the page it printed, and to nothing else', async (t) => {
  const dir = await tempDir(t, 'fedit-app-shell-');
  const shell = await startDevShell({
    home: join(dir, 'home'),
    worker: 'inline',
    probeGpu: async () => false,
  });
  t.teardown(() => shell.close());
  const url = new URL(shell.url);
  const origin = url.origin;
  const token = url.searchParams.get('token')!;
  t.is(url.hostname, '127.0.0.1');

  const page = await get(shell.url);
  t.is(page.status, 200);
  t.regex(page.body, /<script src="\/fedit-api.js"><\/script>/);
  t.is((await get(`${origin}/`)).status, 403, 'no token, no page');
  t.is((await get(`${origin}/?token=${'0'.repeat(token.length)}`)).status, 403);
  t.is(
    (await get(shell.url, { host: `localhost:${url.port}` })).status,
    421,
    'another Host (DNS rebinding) is refused',
  );
  t.is((await get(`${origin}/%2e%2e/package.json`)).status, 404);
  t.is((await get(`${origin}/../../package.json`)).status, 404);
  const script = await get(`${origin}/main.js`);
  t.is(script.status, 200, 'the renderer is bundled on the fly');
  t.regex(script.body, /window\.fedit|fedit/);
  t.regex((await get(`${origin}/fedit-api.js`)).body, /"getState","createIdentity"/);

  const api = `ws://${url.host}/api?token=${token}`;
  await t.throwsAsync(openSocket(`ws://${url.host}/api`, origin), { message: /403/ });
  await t.throwsAsync(openSocket(api, 'http://evil.example'), { message: /403/ });
  const ws = await openSocket(api, origin);
  t.teardown(() => ws.close());
  const state = await call(ws, { id: 1, method: 'getState', args: [] });
  t.is((state.result as { homeDir: string }).homeDir, join(dir, 'home'));
  t.deepEqual((await call(ws, { id: 2, method: 'constructor', args: [] })).error?.code, 'APP_ARGUMENT');
  t.regex((await call(ws, 'not json')).error?.message ?? '', /not JSON/);
  t.regex(
    (await call(ws, { id: 3, method: 'chooseModel', args: [null] })).error?.message ?? '',
    /cannot open a file picker/,
  );
  t.regex(
    (await call(ws, { id: 4, method: 'chooseModel', args: ['relative'] })).error?.message ?? '',
    /absolute path/,
  );
  const created = await call(ws, { id: 5, method: 'createIdentity', args: [] });
  t.regex((created.result as { identity: string }).identity, /^[0-9a-f]{32}$/);
});

test('the development shell on a home it cannot open says why in one line and exits 1, without a stack trace', async (t) => {
  const dir = await tempDir(t, 'fedit-app-shell-');
  const home = join(dir, 'home');
  await mkdir(home, { recursive: true, mode: 0o700 });
  await writeFile(join(home, 'identity.json'), '{"version": 1, "pub', { mode: 0o600 });
  const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'client-app/src/app/dev-main.ts'],
      { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, FEDIT_HOME: home }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? (error.code as number) : 0, stdout, stderr }),
    ),
  );
  t.is(run.code, 1, run.stderr);
  t.is(run.stdout, '');
  t.regex(
    run.stderr,
    new RegExp(`^fedit: ${home.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/identity\\.json is corrupted: .*\\n$`),
  );
  t.notRegex(run.stderr, /^\s+at /m, 'no stack trace');
});

test('a damaged settings file is set aside and the defaults used, with a line in the log', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const home = join(dir, 'home');
  await mkdir(join(home, 'app'), { recursive: true });
  await writeFile(join(home, 'app', 'settings.json'), '{"version": 1, "settings": {"device": ');
  const backend = await openBackend(t, home);
  t.is((await backend.getState()).settings.device, 'auto');
  t.regex(await backend.readLogs(), /settings\.json was damaged/);
  t.is(
    await readFile(join(home, 'app', 'settings.json.damaged'), 'utf8'),
    '{"version": 1, "settings": {"device": ',
  );
  const other = await writeTinyModel(dir, 3);
  t.true((await backend.chooseModel(other)).model?.ok, 'without a federation any readable model is fine');
  await backend.close();

  // A value this computer cannot take (the folder came from a machine with more cores) falls back
  // alone; the other settings stay.
  await writeFile(
    join(home, 'app', 'settings.json'),
    JSON.stringify({ version: 1, settings: { device: 'cpu', maxThreads: 9999 }, modelDir: other }),
  );
  const moved = await openBackend(t, home, { cpuThreads: 4 });
  const state = await moved.getState();
  t.is(state.settings.device, 'cpu');
  t.is(state.settings.maxThreads, 0);
  t.is(state.model?.dir, other);
  t.regex(
    await moved.readLogs(),
    /maxThreads must be a whole number from 0 \(all cores\) to 4, got 9999; using the default/,
  );
});

test('a damaged round history is set aside before a round can overwrite it, with a line in the log; sound rounds stay', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const fed = await startTestFederation(t, dir);
  const home = join(dir, 'home');
  const backend = await openBackend(t, home);
  await backend.createIdentity();
  const invite = fed.invite();
  await backend.inspectInvite(invite);
  await backend.joinFederation(invite);
  const federation = (await backend.getState()).federation!.id;
  await backend.close();
  const history = join(home, 'app', `history-${federation}.json`);

  await mkdir(join(home, 'app'), { recursive: true });
  const truncated = '[{"round": 1, "selected": true, "uploaded": true, "outcome": "aggr';
  await writeFile(history, truncated);
  const first = await openBackend(t, home);
  t.deepEqual((await first.getState()).history, []);
  t.regex(
    await first.readLogs(),
    new RegExp(
      `history-${federation}\\.json was damaged \\(.*\\); kept as history-${federation}\\.json\\.damaged, starting an empty round history`,
    ),
  );
  t.is(await readFile(`${history}.damaged`, 'utf8'), truncated);
  t.false(existsSync(history));
  await first.close();

  // Damaged again: the earlier copy stays, and the rounds that are sound are still shown.
  const round2 = { round: 2, selected: true, uploaded: true, outcome: 'aggregated', updates: 1 };
  const partly = JSON.stringify([round2, { round: 'three' }, null]);
  await writeFile(history, partly);
  const second = await openBackend(t, home);
  t.deepEqual((await second.getState()).history, [round2]);
  t.regex(
    await second.readLogs(),
    /2 of its 3 entries are not round records\); kept as history-.*\.json\.damaged-2, keeping the 1 sound rounds/,
  );
  t.is(await readFile(`${history}.damaged`, 'utf8'), truncated);
  t.is(await readFile(`${history}.damaged-2`, 'utf8'), partly);
  t.deepEqual(JSON.parse(await readFile(history, 'utf8')), [round2]);
});

test('a settings file or round history that is there but cannot be read is left as it is, never written over; the app keeps working', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const fed = await startTestFederation(t, dir, { rounds: 1 });
  const data = await writeDataWithBadRows(dir);
  const home = join(dir, 'home');
  const joined = await readyBackend(t, home, fed, data);
  const federation = (await joined.getState()).federation!.id;
  await joined.close();

  // A folder in each file's place: reading it fails (EISDIR) as reading a file that a virus scanner
  // holds, or that this user may not read, fails, and the folder shows whether it was moved.
  const settings = join(home, 'app', 'settings.json');
  const history = join(home, 'app', `history-${federation}.json`);
  for (const path of [settings, history]) {
    await rm(path, { force: true });
    await mkdir(path);
    await writeFile(join(path, 'kept'), 'the data that could not be read');
  }
  const backend = await openBackend(t, home);
  const log = await backend.readLogs();
  t.regex(
    log,
    /settings\.json could not be read \(EISDIR.*\); it is left as it is, the default settings are used/,
  );
  t.regex(
    log,
    new RegExp(`history-${federation}\\.json could not be read \\(EISDIR.*\\); it is left as it is`),
  );
  t.notRegex(log, /damaged/);

  // Chosen again (the choices were in the unreadable file), trained for a round: shown, not saved over it.
  await backend.chooseModel(fed.modelDir);
  await backend.chooseData([data]);
  await backend.updateSettings({ device: 'cpu', maxThreads: 1 });
  await backend.start();
  await statusWhere(backend, (s) => s.state === 'finished');
  t.deepEqual(
    (await backend.getState()).history.map((e) => [e.round, e.outcome]),
    [[1, 'aggregated']],
  );
  for (const path of [settings, history]) {
    t.is(await readFile(join(path, 'kept'), 'utf8'), 'the data that could not be read', path);
    t.false(existsSync(`${path}.damaged`));
  }
});

// ---- chat, device, data report, idle limit, log ----------------------------------------------------

test('the chat uses the newest global adapter and says which; with the coordinator gone, the newest on disk', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const fed = await startTestFederation(t, dir);
  const data = await writeDataWithBadRows(dir);
  const home = join(dir, 'home');
  const backend = await readyBackend(t, home, fed, data);
  await backend.updateSettings({ device: 'cpu', maxThreads: 1 });

  let done = await chatOnce(backend, 'c0', 'The capital of France?');
  const baseReply = done.reply;
  t.falsy(done.error);
  t.is(done.source?.adapter, undefined);
  t.is(done.source?.newestKnown, undefined);
  t.regex(done.adapter ?? '', /^the base model alone, no adapter yet/);
  t.regex(await backend.readLogs(), /chat model loaded \(the base model alone\)/);

  await backend.start();
  await statusWhere(backend, (s) => s.state === 'finished');
  // The chat model does not share the worker's memory with training.
  t.regex(await backend.readLogs(), /chat model released: training started/);
  const [round1, round2] = (await backend.getState()).history.map((e) => e.adapterHash!);
  t.truthy(round1 && round2 && round1 !== round2);

  // The last round's adapter: never downloaded for training, fetched for the chat.
  done = await chatOnce(backend, 'c1', 'The capital of France?');
  t.falsy(done.error);
  t.deepEqual(done.source?.adapter, { round: 2, hash: round2 });
  t.true(done.source?.newest);
  t.regex(
    done.adapter ?? '',
    /^the federation's newest global adapter: the global adapter after round 2 \(sha256:/,
  );
  // The reply is round 2's adapter's: the folder the chat used holds exactly its tensors, and a
  // chat session of the client core on that folder answers the same, greedily; the base model
  // alone answered otherwise. (Whether the tiny model learned "Paris" by round 2 depends on the
  // identity-seeded data order, so the answer itself is not asserted.)
  const [chatFolder] = await readdir(join(home, 'chat-adapters'));
  const usedDir = join(home, 'chat-adapters', chatFolder);
  t.is((await readAdapter(usedDir)).hash, round2);
  const independent = await openChatSession({ modelDir: fed.modelDir, adapterDir: usedDir, threads: 1 });
  let expected = '';
  for await (const piece of independent.reply('The capital of France?', {
    maxNewTokens: CHAT_MAX_NEW_TOKENS,
    temperature: 0,
  }))
    expected += piece;
  await independent.close();
  t.is(done.reply, expected, 'round 2 adapter answers');
  t.not(done.reply, baseReply, 'not the base model');

  // The federation is over and its coordinator gone; the newest adapter is not on this computer
  // (as when the app was closed before it was fetched): the newest one that is answers.
  await fed.coordinator.close();
  await rename(adapterCachePath(home, round2), `${adapterCachePath(home, round2)}.aside`);
  await rm(join(home, 'chat-adapters'), { recursive: true });
  done = await chatOnce(backend, 'c2', 'The capital of France?');
  t.falsy(done.error, 'the chat does not fail');
  t.deepEqual(done.source?.adapter, { round: 1, hash: round1 });
  t.false(done.source?.newest);
  t.deepEqual(done.source?.newestKnown, { round: 2, hash: round2 });
  t.regex(done.source?.problem ?? '', /could not be fetched/);
  t.regex(
    done.adapter ?? '',
    /^an older global adapter, the global adapter after round 1 \(sha256:[0-9a-f]+…\): the newest, after round 2, cannot be used on this computer: it could not be fetched/,
  );
  t.true(done.reply.length > 0);

  // The newest is on disk again, but cannot be made the chat's PEFT folder (a file is in its
  // place): the chat falls back to the older one and says why, rather than failing.
  await rename(`${adapterCachePath(home, round2)}.aside`, adapterCachePath(home, round2));
  await writeFile(join(home, 'chat-adapters', round2.slice('sha256:'.length, 'sha256:'.length + 16)), 'x');
  done = await chatOnce(backend, 'c3', 'The capital of France?');
  t.falsy(done.error, 'the chat does not fail');
  t.deepEqual(done.source?.adapter, { round: 1, hash: round1 });
  t.regex(
    done.source?.problem ?? '',
    /^it could not be made ready for the chat: .*exists and is not a folder/,
  );
  t.true(done.reply.length > 0);
});

test('a chat model is not released for being idle while a reply waits to open it', async (t) => {
  const dir = await tempDir(t, 'fedit-app-chat-idle-');
  const modelDir = await writeTinyModel(dir, 3);
  const changes: string[] = [];
  const chats = new ChatSessions(50, (loaded, why) =>
    changes.push(`${loaded ? 'loaded' : 'released'}: ${why}`),
  );
  t.teardown(() => chats.release('test over'));
  const options = { modelDir, threads: 1 };
  await chats.reply(() => chats.open(options));
  chats.idle();
  // The next reply is asked for at once, but waits (as for an adapter) past the idle time before
  // it opens the model.
  await chats.reply(async () => {
    await new Promise((resolve) => setTimeout(resolve, 200));
    await chats.open(options);
  });
  await chats.serially(async () => undefined); // whatever was queued behind the reply has run
  t.true(chats.loaded, changes.join('; '));
  t.deepEqual(changes, ['loaded: the base model alone']);
});

test('the device shown is the one the trainer runs on: a GPU that cannot start falls back to the CPU', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const fed = await startTestFederation(t, dir, { rounds: 1 });
  const data = await writeDataWithBadRows(dir);
  // The probe says there is a GPU, but the worker finds no Vulkan driver: WebGPU cannot start there.
  const env = { ...process.env, VK_ICD_FILENAMES: '/nonexistent.json', VK_DRIVER_FILES: '/nonexistent.json' };
  const worker = new WorkerProcessLink(() => forkedWorker({ env }));
  const backend = await readyBackend(t, join(dir, 'home'), fed, data, {
    worker,
    probeGpu: async () => true,
  });
  let state = await backend.updateSettings({ device: 'webgpu', maxThreads: 1 });
  t.is(state.status.device, 'webgpu', 'before training, what is asked for');
  await backend.start();
  const training = await statusWhere(backend, (s) => s.state === 'training' && s.device === 'cpu');
  t.is(training.device, 'cpu');
  await statusWhere(backend, (s) => s.state === 'finished');
  state = await backend.getState();
  t.is(state.status.device, 'cpu');
  t.is(state.settings.device, 'webgpu', 'the setting stays as chosen');
  t.regex(await backend.readLogs(), /training was asked to run on webgpu but runs on cpu/);
  // Asking for the CPU is what it says again.
  state = await backend.updateSettings({ device: 'cpu' });
  t.is(state.status.device, 'cpu');
});

test('data chosen before the model says why there are no previews; the log names data files, not their paths', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const fed = await startTestFederation(t, dir);
  const data = await writeDataWithBadRows(dir);
  const backend = await openBackend(t, join(dir, 'home'));
  await backend.createIdentity();

  let state = await backend.chooseData([data]);
  t.is(state.data?.report.usable, 8, 'the rows are checked at once');
  t.deepEqual(state.data?.previews, []);
  t.regex(state.data?.previewProblem ?? '', /^choose the base model first: .*tokens of the base model/);

  state = await backend.chooseModel(fed.modelDir);
  t.deepEqual(state.data?.previews, []);
  t.regex(state.data?.previewProblem ?? '', /^join a federation first/);

  const invite = fed.invite();
  await backend.inspectInvite(invite);
  state = await backend.joinFederation(invite);
  t.is(state.data?.previewProblem, undefined);
  t.is(state.data?.previews.length, 3);

  const log = await backend.readLogs();
  t.regex(
    log,
    /data facts\.jsonl: 11 records, 8 usable, 3 skipped \(not tokenized yet: choose the base model first/,
  );
  t.false(log.includes(data), 'the data file is named, its folder is not');
});

test("the log writes the user's home folder as ~", async (t) => {
  const dir = await tempDir(t, 'fedit-app-log-');
  const log = new AppLog(dir, { home: '/home/ann' });
  log.info('model /home/ann/models/tiny; other /home/anna/x; /home/ann');
  await log.close();
  t.regex(
    await readFile(join(dir, 'app.log'), 'utf8'),
    / model ~\/models\/tiny; other \/home\/anna\/x; ~\n$/,
  );
});

test('"only when idle" holds training back while the computer is in use, and pause and resume work under it', async (t) => {
  const dir = await tempDir(t, 'fedit-app-backend-');
  const fed = await startTestFederation(t, dir, { rounds: 1 });
  const data = await writeDataWithBadRows(dir);
  const monitor = new ManualMonitor();
  monitor.set({ onBattery: false, idle: false });
  const backend = await readyBackend(t, join(dir, 'home'), fed, data, { monitor, limitPollMs: 50 });
  await backend.updateSettings({ device: 'cpu', maxThreads: 1, onlyWhenIdle: true });

  const connections = () => fed.events.filter((e) => e.type === 'connected').length;
  const before = connections();
  let state = await backend.start();
  t.is(state.status.state, 'paused');
  t.is(state.status.pausedBy, 'idle');
  t.is(connections(), before, 'while the computer is in use, the participant does not connect');

  // The person pauses: their pause outlasts the computer going idle.
  state = await backend.pause();
  t.is(state.status.pausedBy, 'you');
  monitor.set({ idle: true });
  await new Promise((resolve) => setTimeout(resolve, 200));
  state = await backend.getState();
  t.is(state.status.state, 'paused');
  t.is(state.status.pausedBy, 'you');
  t.is(connections(), before);

  // Resumed while in use again: the idle limit holds it; idle: it takes part.
  monitor.set({ idle: false });
  state = await backend.resume();
  t.is(state.status.pausedBy, 'idle');
  monitor.set({ idle: true });
  await statusWhere(backend, (s) => s.state === 'finished');
  t.deepEqual(
    (await backend.getState()).history.map((e) => [e.round, e.outcome]),
    [[1, 'aggregated']],
  );
  const log = await backend.readLogs();
  t.regex(log, /limit: holding training back \(idle\)/);
  t.regex(log, /limits: nothing holds training back/);
});
