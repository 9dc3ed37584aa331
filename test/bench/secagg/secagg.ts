// `npm run bench -- secagg [--participants 50,200,1000] [--graph secagg+|complete] [--length N]
// [--json]`: what a secure round costs, timing the real engines (SecureRoundClient for every
// participant, SecureRoundCollector for the coordinator) in one process, no sockets. For each n:
//
//   participant   CPU ms per phase (advertise; keys: check the neighbours' adverts, split and box
//                 the shares; inbox: open the boxes; mask: encode and mask; reveal), the mean over
//                 all n participants, and bytes sent per round (the payloads' byte strings and ids:
//                 advert, shares, the masked input's 4·(L+1) bytes, reveal)
//   coordinator   CPU ms per update for the whole secure round (collect every phase, write the
//                 bodies, unmask, decode, the sum path), beside the plaintext round's: aggregateRound
//                 (fedit) over the same deltas as updates
//
// L defaults to the demo adapter's 34,816 elements (test/bench/aggregation's `demo` shape). Every
// participant survives; dropout recovery costs one more key reconstruction per dropped neighbour.
// Prints one JSON line on stdout and a table on stderr.

import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import nacl from 'tweetnacl';
import {
  SecureRoundClient,
  SecureRoundCollector,
  aggregateRound,
  aggregateSecureRound,
  ruleRefFor,
  secureFixedPoint,
  signRoundRecord,
  ZERO_HASH,
  type FederationConfig,
  type RoundRecordOf,
  type UnsignedRoundRecord,
} from '@fedit/shared';

const DEMO_LENGTH = 34_816;

function configFor(n: number, graph: 'secagg+' | 'complete'): FederationConfig {
  return {
    id: 'fed-bench',
    name: 'secagg bench',
    baseModel: { identity: `sha256:${'ab'.repeat(32)}`, name: 'demo' },
    lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q_proj'] },
    training: {
      localSteps: 1,
      batchSize: 1,
      lr: 1e-3,
      cutoffLen: 32,
      template: 'chat',
      trainOnInputs: false,
    },
    rounds: 1,
    participantsPerRound: { fraction: 1, minimum: n },
    roundDeadlineSeconds: 60,
    minUpdates: 1,
    aggregation: { rule: 'fedit', weightCap: 20 },
    limits: { maxUpdateNorm: 1000, maxUploadBytes: 1 << 24, maxExampleCount: 1000 },
    secureAggregation: {
      graph,
      thresholdFraction: 0.6,
      clipRange: 1,
      scaleBits: 12,
      maxParticipants: Math.max(n, 2),
      phaseSeconds: 60,
    },
  };
}

/** CPU ms `fn` takes (user + system). */
function cpu<T>(fn: () => T): [T, number] {
  const start = process.cpuUsage();
  const out = fn();
  const used = process.cpuUsage(start);
  return [out, (used.user + used.system) / 1000];
}

const ID_BYTES = 32;

function benchOne(n: number, graph: 'secagg+' | 'complete', length: number) {
  const config = configFor(n, graph);
  const keys = Array.from({ length: n }, () => nacl.sign.keyPair());
  const ids = keys.map(() => randomBytes(16).toString('hex'));
  const signing = new Map(ids.map((id, k) => [id, keys[k].publicKey]));
  const coordinator = nacl.sign.keyPair();
  let seq = 0;
  let prevHash = ZERO_HASH;
  const sign = <
    K extends 'round-open' | 'secagg-keys' | 'secagg-shares' | 'secagg-unmask' | 'secagg-consistency',
  >(
    kind: K,
    body: unknown,
  ) => {
    const record = signRoundRecord(
      {
        seq: seq++,
        federation: config.id,
        round: 1,
        kind,
        prevHash,
        time: new Date().toISOString(),
        body,
      } as UnsignedRoundRecord,
      coordinator.secretKey,
    );
    prevHash = record.hash;
    return record as RoundRecordOf<K>;
  };
  const selection = { seed: 's', fraction: '1', minimum: n, selected: [...ids].sort() };
  const rule = ruleRefFor(config);
  const open = sign('round-open', {
    rule,
    selection,
    globalAdapter: `sha256:${'0'.repeat(64)}`,
    deadline: new Date().toISOString(),
  });
  const schema = new Map([['w', [length]]]);
  const global = new Map([['w', Float32Array.from({ length }, (_, i) => Math.sin(i) / 10)]]);
  const deltas = ids.map(
    (_, k) => new Map([['w', Float32Array.from({ length }, (_, i) => Math.sin(i * 0.37 + k) / 20)]]),
  );
  const weights = ids.map((_, k) => 1 + (k % 20));

  const phase = { advertise: 0, keys: 0, inbox: 0, mask: 0, reveal: 0 };
  let bytes = 0;
  let coordinatorMs = 0;
  const coord = <T>(fn: () => T): T => {
    const [out, ms] = cpu(fn);
    coordinatorMs += ms;
    return out;
  };
  const collector = coord(
    () =>
      new SecureRoundCollector({
        federation: config.id,
        round: 1,
        config,
        selected: selection.selected,
        signingKeys: signing,
        roundOpenHash: open.hash,
        length: length + 1,
      }),
  );
  const clients = ids.map(
    (id, k) =>
      new SecureRoundClient({
        federation: config.id,
        round: 1,
        participant: id,
        identitySecretKey: keys[k].secretKey,
        config,
        roundOpen: open,
      }),
  );
  ids.forEach((id, k) => {
    const [advert, ms] = cpu(() => clients[k].advertise());
    phase.advertise += ms;
    bytes += 32 + 32 + 64 + 8;
    coord(() => collector.addAdvertise(id, advert));
  });
  const keysRecord = sign(
    'secagg-keys',
    coord(() => collector.keysBody()),
  );
  ids.forEach((id, k) => {
    const [shares, ms] = cpu(() => clients[k].onKeys(keysRecord, (p) => signing.get(p)));
    phase.keys += ms;
    bytes += 32 + 64 + 8 + shares.ciphertexts.reduce((s, c) => s + c.box.length + ID_BYTES, 0);
    coord(() => collector.addShares(id, shares));
  });
  const sharesRecord = sign(
    'secagg-shares',
    coord(() => collector.sharesBody()),
  );
  const masked = new Map<string, Uint32Array>();
  ids.forEach((id, k) => {
    const inbox = coord(() => collector.inbox(id));
    phase.inbox += cpu(() => clients[k].onInbox(inbox, sharesRecord))[1];
    const [y, ms] = cpu(() => clients[k].mask(deltas[k], weights[k]));
    phase.mask += ms;
    bytes += 4 * y.length;
    masked.set(id, y);
    coord(() =>
      collector.addMasked(id, {
        hash: `sha256:${'1'.repeat(64)}`,
        envelopeDigest: `sha256:${k.toString(16).padStart(64, '0')}`,
        envelope: {} as never,
      }),
    );
  });
  const unmaskRecord = sign(
    'secagg-unmask',
    coord(() => collector.unmaskBody()),
  );
  coord(() => collector.unmaskRecorded(unmaskRecord.hash));
  // The consistency check's cost (a signature, then t or more signatures checked) counts as the
  // reveal's: it is the step before it.
  ids.forEach((id, k) => {
    const [signed, ms] = cpu(() => clients[k].onUnmask(unmaskRecord));
    phase.reveal += ms;
    bytes += 64 + 8;
    coord(() => collector.addConsistency(id, signed));
  });
  const consistencyRecord = sign(
    'secagg-consistency',
    coord(() => collector.consistencyBody()),
  );
  ids.forEach((id, k) => {
    const [reveal, ms] = cpu(() => clients[k].onConsistency(consistencyRecord));
    phase.reveal += ms;
    bytes += 64 + 8 + (reveal.self.length + reveal.key.length) * (68 + ID_BYTES);
    coord(() => collector.addReveal(id, reveal));
  });
  coord(() => {
    const { sum } = collector.unmask((p) => masked.get(p)!);
    return aggregateSecureRound({
      rule: rule.name,
      config: rule.config,
      schema,
      global,
      sum,
      survivors: n,
      fixedPoint: secureFixedPoint(config.secureAggregation!, 20),
    });
  });
  const [, plainMs] = cpu(() =>
    aggregateRound({
      rule: rule.name,
      config: rule.config,
      schema,
      global,
      contributions: ids.map((participant, k) => ({
        participant,
        exampleCount: weights[k],
        update: () =>
          new Map([['w', Float32Array.from(deltas[k].get('w')!, (d, i) => global.get('w')![i] + d)]]),
      })),
    }),
  );
  const per = (ms: number) => Number((ms / n).toFixed(2));
  return {
    participants: n,
    graph,
    degree: keysRecord.body.graph.degree,
    threshold: keysRecord.body.threshold,
    length,
    participantMsPerPhase: Object.fromEntries(Object.entries(phase).map(([k, v]) => [k, per(v)])),
    participantMs: per(Object.values(phase).reduce((a, b) => a + b, 0)),
    participantBytesSent: Math.round(bytes / n),
    coordinatorMsPerUpdate: per(coordinatorMs),
    plaintextCoordinatorMsPerUpdate: per(plainMs),
  };
}

export async function benchSecagg(argv: string[]): Promise<void> {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      participants: { type: 'string', default: '50,200,1000' },
      graph: { type: 'string', default: 'secagg+' },
      length: { type: 'string', default: String(DEMO_LENGTH) },
      json: { type: 'boolean', default: false },
    },
  });
  const graph = a.graph === 'complete' ? 'complete' : 'secagg+';
  const counts = a.participants.split(',').map(Number);
  const length = Number(a.length);
  if (counts.some((n) => !Number.isInteger(n) || n < 2) || !Number.isInteger(length) || length < 1)
    throw new Error('--participants takes whole numbers >= 2, --length a whole number >= 1');
  const rows = [];
  for (const n of counts) {
    const row = benchOne(n, graph, length);
    rows.push(row);
    process.stderr.write(
      `${graph} n=${n} (degree ${row.degree}, t=${row.threshold}): participant ${row.participantMs} ms ${JSON.stringify(row.participantMsPerPhase)}, ${row.participantBytesSent} B sent; coordinator ${row.coordinatorMsPerUpdate} ms/update (plaintext ${row.plaintextCoordinatorMsPerUpdate})\n`,
    );
  }
  process.stdout.write(JSON.stringify({ bench: 'secagg', graph, length, rows }) + '\n');
}
