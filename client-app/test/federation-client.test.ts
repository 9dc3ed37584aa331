// The participant's side of a federation against the real coordinator over loopback: the fedit
// home folder, reading an invite's settings before joining, enrolling (twice: idempotent), taking
// part in a round with two participants, resuming an upload after a dropped connection and after
// a restart, and what goes over the wire (watched through a TCP tap between client and
// coordinator: only protocol events, never the data).

import { EventRecorder, FACTS, writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import test, { type ExecutionContext } from 'ava';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket as TcpSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLIENT_EVENTS,
  PacketType,
  fingerprint,
  formatInvite,
  parseInvite,
  unpackWire,
  type Packet,
} from '@fedit/shared';
import {
  createInvite,
  startCoordinator,
  type CoordinatorEvent,
  type FederationSettings as CoordinatorSettings,
  type RunningCoordinator,
} from '@fedit/coordinator';
import type { Trainer } from '@fedit/kernels';
import { initFederationFromModel } from '../src/operator/init-federation.ts';
import {
  DISK_LOADER,
  FederationError,
  Participant,
  enrol,
  inspectInvite,
  joinFederation,
  listMemberships,
  loadOrCreateIdentity,
  parseMembership,
  readMembership,
  removeMembership,
  readRoundResults,
  recordRoundResult,
  resolveHome,
  selectMembership,
  type ParticipantOptions,
  type ProgressEvent,
  type StatusEvent,
  type TrainingInputsLoader,
  writeMembership,
} from '../src/core/federation/index.ts';
import { assertCleanFailure, fedit, startFedit } from '../../test/fixtures/fedit-cli.ts';

// ---- fixtures ----------------------------------------------------------------------------------

const SECRET_TEXT = 'capital of France';

async function tempDir(t: ExecutionContext, prefix = 'fedit-fedclient-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function writeTinyModel(dir: string, seed = 0): Promise<string> {
  return writeTinyChatModel(join(dir, `model-${seed}`), seed);
}

async function writeData(dir: string, name: string, facts: string[][]): Promise<string> {
  const path = join(dir, name);
  const lines = facts.map(([q, a]) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: `The ${q}?` },
        { role: 'assistant', content: a },
      ],
    }),
  );
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}

interface Fed {
  dir: string;
  modelDir: string;
  coordinator: RunningCoordinator;
  /** Stops the coordinator and starts it again on the same folder (a new port). */
  restart(): Promise<RunningCoordinator>;
  events: CoordinatorEvent[];
  invite(url?: string): string;
  waitFor(predicate: (e: CoordinatorEvent) => boolean): Promise<CoordinatorEvent>;
}

/** A federation on a tiny model and its running coordinator, on 127.0.0.1:<free port>. */
async function startFederation(
  t: ExecutionContext,
  settings: Partial<CoordinatorSettings> = {},
): Promise<Fed> {
  const dir = await tempDir(t);
  const modelDir = await writeTinyModel(dir);
  const fedDir = join(dir, 'federation');
  await initFederationFromModel(fedDir, {
    modelDir,
    modelName: 'tiny-test',
    seed: 1,
    settings: {
      name: 'test federation',
      lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] },
      training: {
        localSteps: 3,
        batchSize: 2,
        lr: 1e-2,
        cutoffLen: 64,
        template: 'chat',
        trainOnInputs: false,
      },
      rounds: 1,
      participantsPerRound: { fraction: 1, minimum: 2 },
      minUpdates: 2,
      roundDeadlineSeconds: 120,
      ...settings,
    },
  });
  const recorder = new EventRecorder<CoordinatorEvent>();
  const start = () => startCoordinator({ dir: fedDir, host: '127.0.0.1', port: 0, onEvent: recorder.record });
  const fed: Fed = {
    dir,
    modelDir,
    coordinator: await start(),
    async restart() {
      await fed.coordinator.close();
      fed.coordinator = await start();
      return fed.coordinator;
    },
    events: recorder.events,
    invite: (url = fed.coordinator.url) => createInvite(fedDir, { url }),
    waitFor: (predicate) => recorder.next(predicate),
  };
  t.teardown(() => fed.coordinator.close());
  return fed;
}

/**
 * A TCP tap between a client and the coordinator: forwards bytes both ways, decodes what the
 * client sends (WebSocket frames, unmasked, then fedit's MessagePack packets), and can cut every
 * connection at once.
 */
class Tap {
  readonly packets: Packet[] = [];
  readonly clientBytes: Buffer[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<TcpSocket>();
  #port = 0;

  #target: URL | undefined;

  constructor(targetUrl: string) {
    this.#target = new URL(targetUrl);
    this.#server = createServer((client) => {
      const target = this.#target;
      if (!target) {
        client.destroy(); // the coordinator is down
        return;
      }
      const upstream = connect(Number(target.port), target.hostname);
      this.#sockets.add(client).add(upstream);
      const parse = this.#parser();
      client.on('data', (chunk: Buffer) => {
        parse(chunk);
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => client.write(chunk));
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.#port = (this.#server.address() as { port: number }).port;
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Forwards new connections to `url`; undefined: refuses them (as if the coordinator were down). */
  retarget(url: string | undefined): void {
    this.#target = url === undefined ? undefined : new URL(url);
  }

  /** Cuts every connection through the tap (new ones are still accepted). */
  cut(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /** Event names the client sent. */
  get events(): string[] {
    return this.packets
      .filter((p) => p.type === PacketType.EVENT)
      .map((p) => (p.data as unknown[])[0] as string);
  }

  #parser(): (chunk: Buffer) => void {
    let buffer = Buffer.alloc(0);
    let upgraded = false;
    let message: Buffer[] = [];
    let binary = false;
    return (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        buffer = buffer.subarray(end + 4);
        upgraded = true;
      }
      for (;;) {
        if (buffer.length < 2) return;
        const fin = (buffer[0] & 0x80) !== 0;
        const opcode = buffer[0] & 0x0f;
        const masked = (buffer[1] & 0x80) !== 0;
        let length = buffer[1] & 0x7f;
        let offset = 2;
        if (length === 126) {
          if (buffer.length < 4) return;
          length = buffer.readUInt16BE(2);
          offset = 4;
        } else if (length === 127) {
          if (buffer.length < 10) return;
          length = Number(buffer.readBigUInt64BE(2));
          offset = 10;
        }
        const maskOffset = offset;
        if (masked) offset += 4;
        if (buffer.length < offset + length) return;
        const payload = Buffer.from(buffer.subarray(offset, offset + length));
        if (masked) for (let i = 0; i < length; i++) payload[i] ^= buffer[maskOffset + (i % 4)];
        buffer = buffer.subarray(offset + length);
        this.clientBytes.push(payload);
        if (opcode === 2 || (opcode === 0 && binary)) {
          if (opcode === 2) binary = true;
          message.push(payload);
          if (fin) {
            this.packets.push(unpackWire(Buffer.concat(message), 'packet') as Packet);
            message = [];
            binary = false;
          }
        }
      }
    };
  }
}

/** Runs a participant and records its events. */
function runParticipant(options: ParticipantOptions) {
  const participant = new Participant();
  const statuses: StatusEvent[] = [];
  const progress: ProgressEvent[] = [];
  const warnings: string[] = [];
  participant.on('status', (e) => statuses.push(e));
  participant.on('progress', (e) => progress.push(e));
  participant.on('warning', (m) => warnings.push(m));
  const done = participant.start({ threads: 1, reconnectionDelayMax: 500, ...options });
  return { participant, statuses, progress, warnings, done };
}

// ---- the fedit home folder -----------------------------------------------------------------------

test('the fedit home is the explicit folder, else $FEDIT_HOME, else the per-user settings folder', (t) => {
  t.is(resolveHome('/x', { FEDIT_HOME: '/y' }, 'linux'), '/x');
  t.is(resolveHome(undefined, { FEDIT_HOME: '/y', HOME: '/h' }, 'linux'), '/y');
  t.is(resolveHome(undefined, { HOME: '/h', XDG_CONFIG_HOME: '/cfg' }, 'linux'), join('/cfg', 'fedit'));
  t.is(resolveHome(undefined, { HOME: '/h' }, 'linux'), join('/h', '.config', 'fedit'));
  t.is(
    resolveHome(undefined, { HOME: '/h' }, 'darwin'),
    join('/h', 'Library', 'Application Support', 'fedit'),
  );
  t.is(
    resolveHome(undefined, { APPDATA: 'C:\\Users\\a\\AppData\\Roaming' }, 'win32'),
    join('C:\\Users\\a\\AppData\\Roaming', 'fedit'),
  );
});

test('the identity is made once, owner-only; corrupted files are errors naming the file', async (t) => {
  const home = join(await tempDir(t), 'home');
  const first = await loadOrCreateIdentity(home);
  t.true(first.created);
  const again = await loadOrCreateIdentity(home);
  t.false(again.created);
  t.deepEqual(again.identity.sign.publicKey, first.identity.sign.publicKey);
  if (process.platform !== 'win32') {
    t.is((await stat(home)).mode & 0o777, 0o700);
    t.is((await stat(join(home, 'identity.json'))).mode & 0o777, 0o600);
  }
  t.deepEqual(
    (await readdir(home)).filter((f) => f.startsWith('.')),
    [],
    'no temporary file is left behind',
  );

  const text = await readFile(join(home, 'identity.json'), 'utf8');
  const stored = JSON.parse(text) as { sign: { publicKey: string }; box: { publicKey: string } };
  stored.sign.publicKey = stored.box.publicKey; // a public key that is not the secret key's
  await writeFile(join(home, 'identity.json'), JSON.stringify(stored));
  const error = await t.throwsAsync(loadOrCreateIdentity(home), { instanceOf: FederationError });
  t.is(error.code, 'FEDERATION_HOME');
  t.true(error.message.includes(join(home, 'identity.json')), error.message);

  await mkdir(join(home, 'federations'));
  await writeFile(join(home, 'federations', 'fed-1.json'), '{"version": 1, "federation": "fed-1"');
  const bad = await t.throwsAsync(readMembership(home, 'fed-1'), { code: 'FEDERATION_HOME' });
  t.true(bad.message.includes(join(home, 'federations', 'fed-1.json')), bad.message);
  t.regex(bad.message, /not valid JSON/);
  await t.throwsAsync(selectMembership(home, 'fed-2'), { code: 'FEDERATION_NOT_JOINED', message: /fed-2/ });
});

test("a membership file is read by its declaration: a malformed field is refused naming the field, the URL by the invite's rule", async (t) => {
  const home = join(await tempDir(t), 'home');
  const membership = {
    federation: 'fed-1',
    url: 'https://coordinator.example:8443',
    coordinator: { sign: new Uint8Array(32).fill(1), box: new Uint8Array(32).fill(2) },
    participantId: '0123456789abcdef0123456789abcdef',
    displayName: 'Ada',
    joinedAt: Date.UTC(2026, 0, 2),
    config: '{}',
    configHash: `sha256:${'ab'.repeat(32)}` as const,
  };
  await writeMembership(home, membership);
  const path = join(home, 'federations', 'fed-1.json');
  t.deepEqual(await readMembership(home, 'fed-1'), membership);
  const stored = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  t.deepEqual(parseMembership(JSON.stringify({ ...stored, later: 'a newer field' }), path), membership);

  const refused = (change: Record<string, unknown>) => {
    const error = t.throws(() => parseMembership(JSON.stringify({ ...stored, ...change }), path), {
      instanceOf: FederationError,
    });
    t.is(error.code, 'FEDERATION_HOME');
    t.true(error.message.startsWith(`${path} is corrupted: `), error.message);
    return error.message.slice(`${path} is corrupted: `.length);
  };
  t.regex(refused({ url: 'ftp://coordinator.example' }), /^url must be an http: or https: URL, got "ftp:"/);
  t.regex(refused({ url: 'not a url' }), /^url is not a valid URL: "not a url"/);
  t.regex(refused({ url: 'https://x/'.padEnd(3000, 'x') }), /^url must be a URL of 1 to 2048 characters/);
  t.regex(refused({ participantId: 'ABC' }), /^participantId is missing or invalid \("ABC"\)/);
  t.regex(refused({ configHash: undefined }), /^configHash is missing or invalid \(undefined\)/);
  t.regex(refused({ joinedAt: 'yesterday' }), /^joinedAt "yesterday" is not a date/);
  t.regex(refused({ version: 2 }), /^version must be 1, got 2/);
  t.regex(
    refused({ coordinator: { ...(stored.coordinator as object), sign: 'AAAA' } }),
    /^coordinator\.sign /,
  );
  t.regex(
    (t.throws(() => parseMembership('[1]', path)) as Error).message,
    /is corrupted: it is not a JSON object/,
  );
  // The invite's wording for the same URL, from the same rule.
  const { federation, coordinator } = membership;
  t.throws(() => formatInvite({ url: 'ftp://x', federation, coordinator, token: new Uint8Array(32) }), {
    code: 'INVITE_FIELD',
    message: 'invite.url must be an http: or https: URL, got "ftp:"',
  });
});

test('a mistyped invite is refused before any connection, saying what is wrong', async (t) => {
  const home = await tempDir(t);
  const invite = formatInvite({
    url: 'http://127.0.0.1:9',
    federation: 'fed-1',
    coordinator: { sign: new Uint8Array(32).fill(1), box: new Uint8Array(32).fill(2) },
    token: new Uint8Array(32).fill(3),
  });
  const typo = invite.slice(0, 30) + (invite[30] === 'A' ? 'B' : 'A') + invite.slice(31);
  await t.throwsAsync(inspectInvite(typo, { home }), { code: 'INVITE_CHECKSUM', message: /mistyped/ });
  await t.throwsAsync(inspectInvite('fedit-invte:abc', { home }), { code: 'INVITE_PREFIX' });
  // A well-formed invite to an address where nothing listens: a clear, bounded failure.
  await t.throwsAsync(inspectInvite(invite, { home, timeoutMs: 1500 }), {
    code: 'FEDERATION_UNREACHABLE',
    message: /127\.0\.0\.1:9/,
  });
});

// ---- joining -----------------------------------------------------------------------------------

test('joining: read the settings, enrol, join again (idempotent); refusals carry the coordinator’s code', async (t) => {
  const fed = await startFederation(t);
  const home = join(await tempDir(t), 'home');
  const invite = fed.invite();

  const inspection = await inspectInvite(invite, { home });
  t.is(inspection.federation, fed.coordinator.config.id);
  t.is(inspection.settings.baseModel.identity, fed.coordinator.config.baseModel.identity);
  t.is(inspection.settings.training.template, 'chat');
  t.is(inspection.coordinatorFingerprint, fingerprint(parseInvite(invite).coordinator));
  t.is(inspection.membership, undefined);
  t.deepEqual(await listMemberships(home), [], 'inspecting stores nothing');

  const joined = await enrol(inspection, { home, displayName: 'Alice' });
  t.true(joined.enrolled);
  t.true(joined.identityCreated);
  t.regex(joined.membership.participantId, /^[0-9a-f]{32}$/);
  t.truthy(fed.events.find((e) => e.type === 'enrolled' && e.displayName === 'Alice'));
  const stored = await readMembership(home, inspection.federation);
  t.is(stored?.participantId, joined.membership.participantId);
  t.is(stored?.url, fed.coordinator.url);
  t.is(stored?.configHash, inspection.configHash);
  if (process.platform !== 'win32') {
    t.is((await stat(join(home, 'federations', `${inspection.federation}.json`))).mode & 0o777, 0o600);
  }

  // The same invite again: already a member, so only authenticates.
  const again = await joinFederation(invite, { home });
  t.false(again!.enrolled);
  t.is(again!.membership.participantId, joined.membership.participantId);
  t.is(again!.membership.displayName, 'Alice');
  t.is(fed.events.filter((e) => e.type === 'enrolled').length, 1);

  // Declining at the confirmation step enrols nothing.
  const otherHome = join(await tempDir(t), 'home');
  t.is(await joinFederation(fed.invite(), { home: otherHome, confirm: () => false }), undefined);
  t.deepEqual(await listMemberships(otherHome), []);

  // The used invite, presented by another identity: the coordinator's refusal, code and message.
  const refused = await t.throwsAsync(joinFederation(invite, { home: otherHome }), {
    instanceOf: FederationError,
  });
  t.is(refused.code, 'INVITE_USED');
  t.true(refused.remote);
  t.regex(refused.message, /already used/);

  // An invite naming another federation at this coordinator's address.
  const parsed = parseInvite(fed.invite());
  const wrong = formatInvite({ ...parsed, federation: 'another-federation' });
  await t.throwsAsync(inspectInvite(wrong, { home: otherHome }), {
    code: 'FEDERATION_MISMATCH',
    message: /serves federation .* but this membership or invite is for "another-federation"/,
  });

  // Leaving forgets which cached adapter was which round's too (results.ts).
  const result = {
    round: 1,
    outcome: 'aggregated' as const,
    adapterHash: `sha256:${'a'.repeat(64)}`,
    updates: 2,
  };
  await recordRoundResult(home, inspection.federation, result);
  t.deepEqual(await readRoundResults(home, inspection.federation), [result]);
  t.true(await removeMembership(home, inspection.federation));
  t.is(await readMembership(home, inspection.federation), undefined);
  t.deepEqual(await readRoundResults(home, inspection.federation), []);
  t.false(await removeMembership(home, inspection.federation));
});

// ---- rounds ------------------------------------------------------------------------------------

test('two participants join with invites and take part in a round; only protocol messages leave', async (t) => {
  const started = Date.now();
  const fed = await startFederation(t);
  const work = await tempDir(t);
  const tap = new Tap(fed.coordinator.url);
  const tapUrl = await tap.listen();
  t.teardown(() => tap.close());

  const homes = [join(work, 'alice'), join(work, 'bob')];
  const data = [
    await writeData(work, 'alice.jsonl', FACTS.slice(0, 4)),
    await writeData(work, 'bob.jsonl', FACTS.slice(4)),
  ];
  // Alice talks to the coordinator through the tap, Bob directly.
  await joinFederation(fed.invite(tapUrl), { home: homes[0], displayName: 'Alice' });
  await joinFederation(fed.invite(), { home: homes[1], displayName: 'Bob' });

  const runs = homes.map((home, i) =>
    runParticipant({ modelDir: fed.modelDir, dataFiles: [data[i]], home, chunkBytes: 1024 }),
  );
  const results = await Promise.all(runs.map((r) => r.done));
  const closed = await fed.waitFor((e) => e.type === 'round-closed' || e.type === 'round-aborted');
  t.is(closed.type, 'round-closed', JSON.stringify(fed.events));
  t.is((closed as { updates: number }).updates, 2);

  for (const [i, result] of results.entries()) {
    t.is(result.reason, 'finished');
    t.is(result.history.length, 1);
    const [round] = result.history;
    t.like(round, {
      round: 1,
      selected: true,
      uploaded: true,
      outcome: 'aggregated',
      updates: 2,
      // Four facts each, one held out (held-out.ts: min(10%, 32), at least one).
      examples: 3,
    });
    t.true(Number.isFinite(round.trainLoss), `participant ${i} loss ${round.trainLoss}`);
    t.is(round.adapterHash, (closed as { adapter: string }).adapter);
    const seen = runs[i].statuses.map((s) => s.status);
    for (const status of [
      'connecting',
      'waiting',
      'downloading',
      'training',
      'uploading',
      'done-round',
      'stopped',
    ]) {
      t.true(seen.includes(status as never), `participant ${i} went through ${status}: ${seen.join(' ')}`);
    }
    t.deepEqual(runs[i].warnings, []);
    // Global adapters are cached by hash: the one the round started from and the one the
    // federation ended with (kept before the connection closed); the round's working folder is gone.
    t.is((await readdir(join(homes[i], 'adapters'))).length, 2);
    t.deepEqual(await readdir(join(homes[i], 'rounds', fed.coordinator.config.id)).catch(() => []), []);
  }

  // What Alice sent: protocol events only, and never her data in any form.
  const allowed = new Set<string>(CLIENT_EVENTS);
  t.true(tap.events.length > 0);
  t.deepEqual(
    tap.events.filter((e) => !allowed.has(e)),
    [],
  );
  t.true(tap.events.includes('update:commit'));
  t.true(tap.events.filter((e) => e === 'update:chunk').length >= 2, 'several sealed chunks');
  const everything = Buffer.concat(tap.clientBytes);
  t.is(everything.indexOf(SECRET_TEXT), -1, 'the data never crosses the wire');
  t.is(everything.indexOf('Paris'), -1);
  t.log(`two participants, one round: ${Date.now() - started} ms`);
});

test('a participant loads its model, tokenizer and data, and compiles its trainer, once for several rounds', async (t) => {
  const fed = await startFederation(t, {
    rounds: 3,
    participantsPerRound: { fraction: 1, minimum: 1 },
    minUpdates: 1,
  });
  const work = await tempDir(t);
  const home = join(work, 'home');
  const data = await writeData(work, 'data.jsonl', FACTS);
  await joinFederation(fed.invite(), { home, displayName: 'Dana' });

  // The real loaders, counted: every load still reads the files, every trainer compiles its graphs.
  const loads = { model: 0, tokenizer: 0, dataset: 0, trainer: 0 };
  const released: Trainer[] = [];
  const loader: TrainingInputsLoader = {
    model: (dir) => (loads.model++, DISK_LOADER.model(dir)),
    tokenizer: (dir) => (loads.tokenizer++, DISK_LOADER.tokenizer(dir)),
    dataset: (files, options) => (loads.dataset++, DISK_LOADER.dataset(files, options)),
    trainer: async (options) => {
      loads.trainer++;
      const trainer = await DISK_LOADER.trainer(options);
      const release = trainer.release.bind(trainer);
      trainer.release = () => (released.push(trainer), release());
      return trainer;
    },
  };
  const run = runParticipant({ modelDir: fed.modelDir, dataFiles: [data], home, chunkBytes: 1024, loader });
  const result = await run.done;

  t.is(result.reason, 'finished');
  t.deepEqual(
    result.history.map((r) => [r.round, r.uploaded, r.outcome, r.examples]),
    // One of the facts is held out (held-out.ts), never trained on.
    [1, 2, 3].map((round) => [round, true, 'aggregated', FACTS.length - 1]),
  );
  const trained = new Set(run.progress.filter((p) => p.phase === 'training').map((p) => p.round));
  t.deepEqual([...trained], [1, 2, 3], 'every round trained');
  t.deepEqual(loads, { model: 1, tokenizer: 1, dataset: 1, trainer: 1 });
  t.is(released.length, 1, 'the trainer is released when the participant stops');
});

test('an upload resumes after the connection drops, and after the client restarts, without retraining', async (t) => {
  const fed = await startFederation(t, { participantsPerRound: { fraction: 1, minimum: 1 }, minUpdates: 1 });
  const work = await tempDir(t);
  const tap = new Tap(fed.coordinator.url);
  const tapUrl = await tap.listen();
  t.teardown(() => tap.close());
  const home = join(work, 'home');
  const data = await writeData(work, 'data.jsonl', FACTS);
  await joinFederation(fed.invite(tapUrl), { home, displayName: 'Carol' });
  const options = { modelDir: fed.modelDir, dataFiles: [data], home, chunkBytes: 1024 };

  // First run: stop it while it uploads (after chunk 3 of ~8); the signed update stays on disk.
  const controller = new AbortController();
  const first = runParticipant({ ...options, signal: controller.signal });
  first.participant.on('progress', (p) => {
    if (p.phase === 'upload' && p.done === 3) controller.abort();
  });
  const stopped = await first.done;
  t.is(stopped.reason, 'stopped');
  t.false(stopped.history[0]?.uploaded ?? false);
  const roundFolder = join(home, 'rounds', fed.coordinator.config.id, '1', 'upload');
  t.deepEqual((await readdir(roundFolder)).sort(), ['envelope.msgpack', 'meta.json', 'payload.safetensors']);
  const total = first.progress.find((p) => p.phase === 'upload')!.total;
  t.true(total > 4, `${total} chunks`);

  // Second run: resumes the same upload (the coordinator still holds chunks 0-2), and its
  // connection is cut once more in the middle.
  const second = runParticipant(options);
  let cut = false;
  second.participant.on('progress', (p) => {
    if (p.phase === 'upload' && p.done === 5 && !cut) {
      cut = true;
      tap.cut();
    }
  });
  let reconnected = false;
  second.participant.on('connection', (state) => (reconnected ||= cut && state === 'connecting'));
  const result = await second.done;
  t.true(reconnected, 'the connection dropped and came back');
  t.is(result.reason, 'finished');
  t.like(result.history[0], { round: 1, selected: true, uploaded: true, outcome: 'aggregated', updates: 1 });
  t.false(
    second.statuses.some((s) => s.status === 'training' || s.status === 'downloading'),
    'no retraining',
  );
  const uploads = second.progress.filter((p) => p.phase === 'upload').map((p) => p.done);
  t.is(uploads[0], 4, `resumed after the 3 chunks already sent: ${uploads.join(',')}`);
  t.true(uploads.includes(total));
  t.true(
    uploads.filter((d) => d === 5).length === 1,
    'a chunk acknowledged before the cut is not sent again',
  );
  t.true(
    second.warnings.some((w) => /resuming the upload/.test(w)),
    second.warnings.join('\n'),
  );
  t.is(tap.events.filter((e) => e === 'update:begin').length, 3, 'one begin per connection that uploaded');
  t.is(
    tap.events.filter((e) => e === 'adapter:get').length,
    2,
    'the starting global adapter was fetched once (not again on resume), then the final one',
  );
  const closed = await fed.waitFor((e) => e.type === 'round-closed');
  t.is((closed as { updates: number }).updates, 1);
});

test('a participant whose base model is not the federation’s refuses to start, naming both', async (t) => {
  const fed = await startFederation(t, { participantsPerRound: { fraction: 1, minimum: 1 }, minUpdates: 1 });
  const work = await tempDir(t);
  const home = join(work, 'home');
  await joinFederation(fed.invite(), { home });
  const otherModel = await writeTinyModel(work, 7);
  const data = await writeData(work, 'data.jsonl', FACTS);
  const run = runParticipant({ modelDir: otherModel, dataFiles: [data], home });
  const error = await t.throwsAsync(run.done, { code: 'FEDERATION_MODEL_MISMATCH' });
  t.true(error.message.includes(fed.coordinator.config.baseModel.identity), error.message);
  t.true(error.message.includes(otherModel), error.message);
  t.is(run.participant.status, 'error');

  // A membership copied to a home whose identity the coordinator never enrolled: the
  // coordinator's refusal of the proof stops the participant, with its code and message.
  const stranger = join(work, 'stranger');
  await loadOrCreateIdentity(stranger);
  await mkdir(join(stranger, 'federations'));
  const file = `${fed.coordinator.config.id}.json`;
  await copyFile(join(home, 'federations', file), join(stranger, 'federations', file));
  const unknown = runParticipant({ modelDir: fed.modelDir, dataFiles: [data], home: stranger });
  const refused = await t.throwsAsync(unknown.done, { instanceOf: FederationError });
  t.is(refused.code, 'AUTH_UNKNOWN');
  t.regex(refused.message, /refused auth:prove: this identity is not enrolled/);
  t.is(unknown.statuses.filter((s) => s.status === 'error').length, 1);

  // Data with nothing usable under the federation's settings: refused before connecting.
  const empty = join(work, 'empty.jsonl');
  await writeFile(empty, '{"messages": [{"role": "user", "content": "no answer"}]}\n');
  await t.throwsAsync(runParticipant({ modelDir: fed.modelDir, dataFiles: [empty], home }).done, {
    code: 'FEDERATION_DATA',
  });
});

// ---- the command -------------------------------------------------------------------------------

test('fedit client join / status / leave', async (t) => {
  const fed = await startFederation(t);
  const home = join(await tempDir(t), 'home');
  const invite = fed.invite();

  // Not a terminal and no --yes: nothing is joined.
  assertCleanFailure(t, await fedit('client', 'join', invite, '--home', home), /--yes/, 2);
  assertCleanFailure(t, await fedit('client', 'join', 'fedit-invite:AAAA', '--home', home), /INVITE_/, 65);

  const joined = await fedit('client', 'join', invite, '--yes', '--name', 'Dana', '--home', home);
  t.is(joined.code, 0, joined.stderr);
  t.regex(joined.stdout, /base model\s+tiny-test/);
  t.regex(joined.stdout, /fingerprint\s+[0-9a-f]{32}/);
  t.regex(joined.stdout, /joined federation \S+ as Dana/);

  const status = await fedit('client', 'status', '--json', '--home', home);
  t.is(status.code, 0, status.stderr);
  const parsed = JSON.parse(status.stdout) as { memberships: { federation: string; displayName: string }[] };
  t.like(parsed.memberships[0], { federation: fed.coordinator.config.id, displayName: 'Dana' });

  const left = await fedit('client', 'leave', fed.coordinator.config.id, '--home', home);
  t.is(left.code, 0, left.stderr);
  assertCleanFailure(
    t,
    await fedit('client', 'leave', fed.coordinator.config.id, '--home', home),
    /has not joined/,
  );
  assertCleanFailure(
    t,
    await fedit('client', 'run', '--model', fed.modelDir, '--data', 'x.jsonl', '--home', home),
    /not joined any federation/,
  );
});

test('fedit client run: two participants print their round; Ctrl-C stops a waiting one cleanly', async (t) => {
  const fed = await startFederation(t);
  const work = await tempDir(t);
  const homes = [join(work, 'erin'), join(work, 'frank')];
  const data = [
    await writeData(work, 'erin.jsonl', FACTS.slice(0, 4)),
    await writeData(work, 'frank.jsonl', FACTS.slice(4)),
  ];
  for (const home of homes) await joinFederation(fed.invite(), { home });
  const runs = await Promise.all(
    homes.map((home, i) =>
      fedit('client', 'run', '--model', fed.modelDir, '--data', data[i], '--home', home, '--threads', '1'),
    ),
  );
  for (const r of runs) {
    t.is(r.code, 0, r.stderr);
    t.regex(
      r.stdout,
      // Four facts each, one held out; not on a terminal, each line starts with its time and level.
      /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z INFO {2}round 1: aggregated from 2 updates; this computer: trained on 3 examples, loss \d+\.\d{4}, update sent$/m,
    );
    t.regex(
      r.stdout,
      /^ {2}held-out examples, the adapter the round started from: yours loss \d+\.\d{4}, exact match \d+%; federation mean loss \d+\.\d{4}, exact match \d+%$/m,
    );
    t.regex(r.stderr, /\[training\] training round 1/);
    t.regex(
      r.stderr,
      /the federation has ended: your adapter is saved at \S+\.safetensors \(this computer sent 1 update\)/,
    );
  }

  // A second federation that waits for two participants: one starts, waits, and is interrupted.
  const lonely = await startFederation(t);
  const home = join(work, 'gina');
  await joinFederation(lonely.invite(), { home });
  const child = startFedit('client', 'run', '--model', lonely.modelDir, '--data', data[0], '--home', home);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (let i = 0; i < 2400 && !stderr.includes('[waiting]'); i++) await new Promise((r) => setTimeout(r, 50));
  t.regex(stderr, /\[waiting\] waiting for the next round/);
  child.kill('SIGINT');
  t.is(await exited, 130, stderr);
  t.regex(stderr, /stopping/);
  t.regex(stderr, /stopped; run the same command again to continue/);
  t.notRegex(stderr, /^\s+at /m, 'no stack trace');
});

test('the coordinator restarts mid-upload: the participant reconnects, drops the aborted round’s update, trains the next', async (t) => {
  const fed = await startFederation(t, {
    participantsPerRound: { fraction: 1, minimum: 1 },
    minUpdates: 1,
    rounds: 2,
  });
  const work = await tempDir(t);
  const tap = new Tap(fed.coordinator.url);
  const tapUrl = await tap.listen();
  t.teardown(() => tap.close());
  const home = join(work, 'home');
  const data = await writeData(work, 'data.jsonl', FACTS);
  await joinFederation(fed.invite(tapUrl), { home });
  const roundsDir = join(home, 'rounds', fed.coordinator.config.id);

  const run = runParticipant({ modelDir: fed.modelDir, dataFiles: [data], home, chunkBytes: 1024 });
  let restarted: Promise<void> | undefined;
  run.participant.on('progress', (p) => {
    if (p.round === 1 && p.phase === 'upload' && p.done === 2 && !restarted) {
      // The coordinator goes away in the middle of the upload, and comes back at another port.
      tap.retarget(undefined);
      tap.cut();
      restarted = (async () => {
        t.deepEqual(await readdir(roundsDir), ['1'], 'the signed update of round 1 is kept on disk');
        tap.retarget((await fed.restart()).url);
      })();
    }
  });
  const result = await run.done;
  await restarted;
  t.truthy(
    fed.events.find((e) => e.type === 'recovered' && e.abortedRound === 1),
    'the restarted coordinator aborted round 1',
  );
  t.is(result.reason, 'finished');
  const [one, two] = result.history;
  t.like(one, { round: 1, selected: true, uploaded: false });
  t.like(two, { round: 2, selected: true, uploaded: true, outcome: 'aggregated', updates: 1 });
  t.true(run.statuses.some((s) => s.status === 'training' && s.round === 2));
  t.deepEqual(await readdir(roundsDir), [], 'nothing of round 1 is left');
});
