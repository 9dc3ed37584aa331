// Participants of `npm run bench -- federation`, many to a process: each joins with its own invite
// and fedit home (joinFederation: inspect + enrol, the client's real path), keeps one authenticated
// FederationConnection, and in every round fetches the global adapter ('adapter:get',
// downloadAdapter: hash-checked), adds small random noise to it in place of training, builds and
// signs the update (buildUpdate) and uploads it with the shared upload sequence (uploadPass:
// 'update:begin', sealed chunks, 'update:commit'), as Participant does. Nothing is trained and no model is loaded:
// the benchmark measures the federation's plumbing. Prints one 'joined' line once every
// participant has enrolled and a 'result' line when the federation's rounds are over.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PRESETS, loraTensorSpecs, uniformSampler, type LoraTarget } from '@fedit/kernels';
import {
  sealedUpload,
  tensorFromF32,
  tensorToF32,
  uploadPass,
  type Identity,
  type RoundOpen,
  type Tensor,
} from '@fedit/shared';
import type { FederationConnection } from '@fedit/client/federation';
import {
  buildUpdate,
  connectionUploadRequest,
  downloadAdapter,
  joinFederation,
  membershipConnection,
  parseFederationSettings,
  requireIdentity,
  sayReady,
  type Membership,
  type PhaseInbox,
} from '@fedit/client/federation';
import { epochMs, type ParticipantJob, type ParticipantLine, type ParticipantRound } from './messages.ts';
import { countSentBytes, takePartSecure } from './secure-participant.ts';

const { values: a } = parseArgs({ options: { job: { type: 'string' } } });
if (!a.job) throw new Error('participant-worker: --job <file> is required');
const job = JSON.parse(readFileSync(a.job, 'utf8')) as ParticipantJob;
const say = (line: ParticipantLine) => process.stdout.write(JSON.stringify(line) + '\n');

const model = PRESETS[job.preset];
const specs = loraTensorSpecs(model, {
  rank: job.rank,
  alpha: job.alpha,
  dropout: 0,
  targets: job.targets as LoraTarget[],
});
const REQUEST_TIMEOUT_MS = 600_000;

interface Member {
  index: number;
  home: string;
  identity: Identity;
  membership: Membership;
}

/** Runs `work` over `items` with at most `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, work: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i], i);
    }
  });
  await Promise.all(lanes);
  return out;
}

/** The global adapter plus uniform noise in [-scale, scale): the stand-in for a trained adapter. */
function fakeTrained(global: Map<string, Tensor>, seed: number): Map<string, Tensor> {
  const random = uniformSampler(seed);
  const out = new Map<string, Tensor>();
  for (const spec of specs) {
    const t = global.get(spec.name);
    if (!t || t.shape.join(',') !== spec.shape.join(','))
      throw new Error(`the global adapter's ${spec.name} is not [${spec.shape}]`);
    const values = Float32Array.from(tensorToF32(t));
    for (let i = 0; i < values.length; i++) values[i] += (random() * 2 - 1) * job.deltaScale;
    out.set(spec.name, tensorFromF32(spec.shape, values));
  }
  if (global.size !== specs.length) throw new Error('the global adapter has tensors the LoRA settings lack');
  return out;
}

async function takePart(
  member: Member,
  connection: FederationConnection,
  open: RoundOpen,
): Promise<ParticipantRound> {
  const r: ParticipantRound = {
    round: open.round,
    openAt: epochMs(),
    downloadedAt: 0,
    builtAt: 0,
    uploadStartAt: 0,
    committedAt: 0,
    downloadBytes: 0,
    uploadBytes: 0,
    chunks: 0,
  };
  try {
    const request = connection.request.bind(connection);
    const { bytes, tensors: global } = await downloadAdapter(open.globalAdapterHash, (hash, index) =>
      request('adapter:get', { hash, index }),
    );
    r.downloadBytes = bytes.byteLength;
    r.downloadedAt = epochMs();
    const pending = buildUpdate({
      identity: member.identity,
      federation: member.membership.federation,
      round: open.round,
      globalAdapterHash: open.globalAdapterHash,
      exampleCount: 1 + ((member.index * 7919 + open.round) % 1000),
      tensors: fakeTrained(global, member.index * 1000 + open.round),
      trainLoss: 0,
      chunkBytes: job.chunkBytes,
    });
    r.builtAt = epochMs();
    const upload = sealedUpload(
      pending.envelope,
      pending.payload,
      member.identity.box,
      member.membership.coordinator.box,
    );
    r.uploadStartAt = epochMs();
    const outcome = await uploadPass(connectionUploadRequest(connection), upload, {
      onChunk: (_, sealedBytes) => {
        r.uploadBytes += sealedBytes;
        r.chunks++;
      },
    });
    if (outcome.kind !== 'committed') throw new Error(`the upload ended ${outcome.kind}`);
    r.committedAt = epochMs();
  } catch (error) {
    r.error = `participant ${member.index}, round ${open.round}: ${(error as Error).message}`;
  }
  return r;
}

// ---- enrol everyone (real invites, real homes), then take part in every round --------------------

const t0 = epochMs();
const members = await pool(job.invites, job.enrolConcurrency, async (invite, i) => {
  const index = job.firstIndex + i;
  const home = join(job.homes, `p${String(index).padStart(4, '0')}`);
  const joined = await joinFederation(invite, { home, displayName: `bench-${index}`, timeoutMs: 120_000 });
  if (!joined) throw new Error(`participant ${index} did not join`);
  return { index, home, identity: await requireIdentity(home), membership: joined.membership };
});
say({ type: 'joined', participants: members.length, enrolMs: epochMs() - t0 });

const rounds: ParticipantRound[] = [];
const errors: string[] = [];
let roundsCpuFrom: NodeJS.CpuUsage | undefined;
await Promise.all(
  members.map(
    (member) =>
      new Promise<void>((resolve) => {
        const connection = membershipConnection(member.membership, member.identity, {
          requestTimeoutMs: REQUEST_TIMEOUT_MS,
        });
        let closed = 0;
        const work: Promise<void>[] = [];
        const seen = new Set<number>();
        const sent = countSentBytes(connection);
        const settings = parseFederationSettings(member.membership.config, member.home);
        let phases: PhaseInbox | undefined;
        connection.on('secagg:phase', (record, identities) => {
          try {
            if (phases?.round === record.round) phases.deliver(record, identities);
          } catch (error) {
            errors.push(`participant ${member.index}: ${(error as Error).message}`);
          }
        });
        connection.on('round:open', (open) => {
          if (seen.has(open.round) || !open.selected.includes(connection.participantId)) return;
          seen.add(open.round);
          roundsCpuFrom ??= process.cpuUsage();
          const before = { ...sent };
          const part = job.secure
            ? takePartSecure({ ...member, settings }, connection, open, job, (p) => (phases = p), fakeTrained)
            : takePart(member, connection, open);
          work.push(
            part.then((r) => {
              r.sentBytes = sent.all - before.all;
              if (job.secure) r.uploadBytes = sent.chunks - before.chunks;
              rounds.push(r);
            }),
          );
        });
        connection.on('round:closed', () => {
          if (++closed < job.rounds) return;
          void Promise.all(work).then(() => {
            connection.close();
            resolve();
          });
        });
        connection.on('failed', (error) => {
          errors.push(`participant ${member.index}: ${error.message}`);
          resolve();
        });
        connection.on('warning', (message) => errors.push(`participant ${member.index}: ${message}`));
        // Rounds select only participants who said they are ready.
        connection.on('authenticated', () => void sayReady(connection).catch(() => undefined));
        connection.open();
      }),
  ),
);
for (const r of rounds) if (r.error) errors.push(r.error);
const roundsCpu = process.cpuUsage(roundsCpuFrom);
const cpu = process.cpuUsage();
say({
  type: 'result',
  rounds,
  errors,
  cpuUser: cpu.user,
  cpuSystem: cpu.system,
  roundsCpuUs: roundsCpuFrom ? roundsCpu.user + roundsCpu.system : 0,
  maxRssKb: process.resourceUsage().maxRSS,
});
process.exit(0);
