// A secure federation as the coordinator and its participants run it, in memory and through the
// real engines (SecureRoundClient, SecureRoundCollector), with every record signed and appended to
// a log the verifier can audit: config, enrolments, then per round round-open, secagg-keys,
// secagg-shares, secagg-unmask, secagg-consistency and round-closed (or round-aborted when the engines say so).
// Participants drop at a chosen phase; a test may tamper with a body before it is signed.

import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  DEFAULT_CHUNK_BYTES,
  DOMAINS,
  SecAggError,
  SecureRoundClient,
  SecureRoundCollector,
  aggregateSecureRound,
  canonicalPayloadHash,
  chunkCountFor,
  configHash,
  envelopeDigest,
  envelopeId,
  fingerprint,
  hashTensors,
  maskedInputTensors,
  publicIdentity,
  recordEnvelope,
  ruleRefFor,
  schemaLength,
  secureFixedPoint,
  selectParticipants,
  signDigest,
  signRoundRecord,
  tensorValues,
  tensorsFromValues,
  serverStateTensors,
  ZERO_HASH,
  type AdapterSchema,
  type ContentHash,
  type FederationConfig,
  type Identity,
  type RevealPayload,
  type RoundRecord,
  type RoundRecordBodies,
  type RoundRecordKind,
  type RoundRecordOf,
  type SecureSection,
  type Tensor,
  type UnsignedRoundRecord,
} from '@fedit/shared';
import { participantIdentity } from './envelopes.ts';

export const COORDINATOR = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));

export const A = 'layers.0.q_proj.lora_A.weight';
export const B = 'layers.0.q_proj.lora_B.weight';
export const SCHEMA: AdapterSchema = new Map([
  [A, [2, 6]],
  [B, [6, 2]],
]);
/** Words of a masked input: the adapter's 24 elements and the weight. */
export const LENGTH = schemaLength(SCHEMA) + 1;

export interface SecureOptions {
  n: number;
  graph: 'complete' | 'secagg+';
  degree?: number;
  rule?: 'fedit' | 'fedavg-uniform';
  serverOptimizer?: boolean;
  scaleBits?: number;
  /** The adapter's tensors (SCHEMA by default). */
  schema?: AdapterSchema;
}

export function secureConfig(o: SecureOptions): FederationConfig {
  return {
    id: 'fed-secure',
    name: 'secure rounds',
    baseModel: { identity: `sha256:${'cd'.repeat(32)}`, name: 'tiny' },
    lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'] },
    training: {
      localSteps: 1,
      batchSize: 1,
      lr: 1e-3,
      cutoffLen: 32,
      template: 'chat',
      trainOnInputs: false,
    },
    rounds: 2,
    participantsPerRound: { fraction: 1, minimum: o.n },
    roundDeadlineSeconds: 60,
    minUpdates: 2,
    aggregation: {
      rule: o.rule ?? 'fedit',
      weightCap: 50,
      ...(o.serverOptimizer && { serverOptimizer: { kind: 'adam' as const, lr: 0.5 } }),
    },
    limits: { maxUpdateNorm: 1000, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
    secureAggregation: {
      graph: o.graph,
      ...(o.degree !== undefined && { degree: o.degree }),
      thresholdFraction: 0.6,
      clipRange: 1,
      scaleBits: o.scaleBits ?? 16,
      maxParticipants: 64,
      phaseSeconds: 30,
    },
  };
}

/** Identities are costly on a shared CPU: one per name for the whole run. */
const IDENTITIES = new Map<string, { id: string; identity: Identity }>();
export function member(name: string): { id: string; identity: Identity } {
  let m = IDENTITIES.get(name);
  if (!m) {
    const identity = participantIdentity(name);
    m = { id: fingerprint(publicIdentity(identity)), identity };
    IDENTITIES.set(name, m);
  }
  return m;
}

/**
 * Where participants drop out: before advertising, after advertising, after sharing, after masking
 * (no consistency signature, no reveal), after signing the unmask record (no reveal).
 */
export type DropPhase = 'advertise' | 'shares' | 'masked' | 'consistency' | 'reveal';

export interface RoundPlan {
  /** Participant id -> the phase it drops at; or chosen once the round-open record (its graph seed) is known. */
  drop?:
    ReadonlyMap<string, DropPhase> | ((open: RoundRecordOf<'round-open'>) => ReadonlyMap<string, DropPhase>);
  /** Edits a body before it is signed (a lying coordinator). */
  tamper?: <K extends RoundRecordKind>(kind: K, body: RoundRecordBodies[K]) => RoundRecordBodies[K];
  /** Changes a holder's reveal before the collector takes it (a malicious holder). */
  reveal?: (holder: string, payload: RevealPayload) => RevealPayload;
  /** Called with the clients and the unmask record before anyone signs it, to try extra requests. */
  unmasked?: (
    clients: ReadonlyMap<string, SecureRoundClient>,
    unmask: RoundRecordOf<'secagg-unmask'>,
    collector: SecureRoundCollector,
  ) => void;
  /** Called with the clients and the unmask record after the reveals, to try extra requests. */
  after?: (clients: ReadonlyMap<string, SecureRoundClient>, unmask: RoundRecordOf<'secagg-unmask'>) => void;
}

export interface RoundResult {
  round: number;
  outcome: 'closed' | 'aborted';
  reason?: string;
  /** The SecAggError code the round aborted with. */
  code?: string;
  /** Each participant's float32 delta and capped weight. */
  deltas: Map<string, { delta: Map<string, Float32Array>; weight: number }>;
  /** The masked inputs as uploaded. */
  masked: Map<string, Uint32Array>;
  sum?: Uint32Array;
  section?: SecureSection;
  adapter?: Map<string, Float32Array>;
  /** Reveals sent, by holder. */
  reveals: Map<string, RevealPayload>;
}

/** A small deterministic delta for participant k in round r, inside the clip range. */
export function deltaOf(round: number, k: number, schema: AdapterSchema = SCHEMA): Map<string, Float32Array> {
  return new Map(
    [...schema].map(([name, [r, c]], t) => [
      name,
      Float32Array.from({ length: r * c }, (_, i) => Math.sin(round * 11 + k * 5 + i * 3 + t) / 4),
    ]),
  );
}

/** The masked input's envelope, signed as the participant signs it (exampleCount 1). */
export function maskedEnvelope(
  identity: Identity,
  federation: string,
  round: number,
  globalAdapterHash: string,
  words: Uint32Array,
) {
  const tensors = maskedInputTensors(words);
  const payload = canonicalPayloadHash(tensors);
  const envelope = {
    version: 1 as const,
    federation,
    round,
    participant: identity.sign.publicKey,
    globalAdapterHash: globalAdapterHash as ContentHash,
    exampleCount: 1,
    tensorSchema: [{ name: 'secagg.masked', shape: [words.length], dtype: 'I32' }],
    payloadHash: payload.hash as ContentHash,
    payloadBytes: payload.bytes,
    chunkBytes: DEFAULT_CHUNK_BYTES,
    chunkCount: chunkCountFor(payload.bytes, DEFAULT_CHUNK_BYTES),
    createdAt: Date.parse('2026-03-01T09:00:00.000Z'),
  };
  // signEnvelope validates float dtypes only until the wire branch admits the I32 masked tensor.
  const typed = envelope as unknown as Parameters<typeof envelopeDigest>[0];
  const signature = signDigest(identity.sign.secretKey, DOMAINS.envelope, envelopeDigest(typed));
  const signed = { ...typed, signature };
  return { tensors, envelope: recordEnvelope(signed), envelopeDigest: envelopeId(typed) };
}

export class SecureFederation {
  readonly config: FederationConfig;
  readonly schema: AdapterSchema;
  readonly length: number;
  readonly names: string[];
  readonly ids: string[];
  readonly records: RoundRecord[] = [];
  readonly blobs = new Map<string, Map<string, Tensor>>();
  globalAdapter: string;
  serverState?: string;

  constructor(readonly options: SecureOptions) {
    this.config = secureConfig(options);
    this.schema = options.schema ?? SCHEMA;
    this.length = schemaLength(this.schema) + 1;
    this.names = Array.from({ length: options.n }, (_, k) => `p${k}`);
    this.ids = this.names.map((n) => member(n).id);
    this.globalAdapter = this.store(
      tensorsFromValues(
        this.schema,
        new Map(
          [...this.schema].map(([name, [r, c]]) => [
            name,
            Float32Array.from({ length: r * c }, (_, i) => Math.cos(i) / 3),
          ]),
        ),
      ),
    );
    this.append('config', 0, {
      settings: { config: JSON.stringify(this.config), configHash: configHash(this.config) },
      globalAdapter: this.globalAdapter,
    });
    for (const id of [...this.ids].sort())
      this.append('enrol', 0, {
        participant: id,
        publicKey: Buffer.from(this.identityOf(id).sign.publicKey).toString('hex'),
      });
  }

  identityOf(id: string): Identity {
    return member(this.names[this.ids.indexOf(id)]).identity;
  }

  store(tensors: Map<string, Tensor>): string {
    const hash = hashTensors(tensors);
    this.blobs.set(hash, tensors);
    return hash;
  }

  append<K extends RoundRecordKind>(
    kind: K,
    round: number,
    body: RoundRecordBodies[K],
    tamper?: RoundPlan['tamper'],
  ): RoundRecordOf<K> {
    const record = signRoundRecord(
      {
        seq: this.records.length,
        federation: this.config.id,
        round,
        kind,
        prevHash: this.records.at(-1)?.hash ?? ZERO_HASH,
        time: new Date(Date.parse('2026-05-01T08:00:00.000Z') + this.records.length * 1000).toISOString(),
        body: tamper ? tamper(kind, body) : body,
      } as UnsignedRoundRecord,
      COORDINATOR.secretKey,
    );
    this.records.push(record);
    return record as RoundRecordOf<K>;
  }

  signingKey = (participant: string): Uint8Array | undefined =>
    this.ids.includes(participant) ? this.identityOf(participant).sign.publicKey : undefined;

  /** Runs round `round` through the engines (see the header). */
  runRound(round: number, plan: RoundPlan = {}): RoundResult {
    const rule = ruleRefFor(this.config);
    const seed = `seed-${round}`;
    const selection = {
      seed,
      fraction: '1',
      minimum: this.ids.length,
      selected: selectParticipants(seed, this.ids, '1', this.ids.length),
    };
    const open = this.append('round-open', round, {
      rule,
      selection,
      globalAdapter: this.globalAdapter,
      deadline: '2026-05-02T00:00:00.000Z',
    });
    const federation = this.config.id;
    const drop =
      (typeof plan.drop === 'function' ? plan.drop(open) : plan.drop) ?? new Map<string, DropPhase>();
    const collector = new SecureRoundCollector({
      federation,
      round,
      config: this.config,
      selected: selection.selected,
      signingKeys: new Map(this.ids.map((id) => [id, this.identityOf(id).sign.publicKey])),
      roundOpenHash: open.hash,
      length: this.length,
    });
    const clients = new Map<string, SecureRoundClient>();
    for (const id of selection.selected)
      clients.set(
        id,
        new SecureRoundClient({
          federation,
          round,
          participant: id,
          identitySecretKey: this.identityOf(id).sign.secretKey,
          config: this.config,
          roundOpen: open,
        }),
      );
    const result: RoundResult = {
      round,
      outcome: 'aborted',
      deltas: new Map(),
      masked: new Map(),
      reveals: new Map(),
    };
    const live = (phase: DropPhase) => [...clients.keys()].filter((id) => !isDropped(drop.get(id), phase));
    const abort = (err: unknown) => {
      // Too few left, an exposing split, or a party refusing what it was sent: the round aborts.
      if (!(err instanceof SecAggError)) throw err;
      this.append('round-aborted', round, { reason: err.message, dropped: [] });
      return { ...result, reason: err.message, code: err.code };
    };
    try {
      for (const id of live('advertise')) collector.addAdvertise(id, clients.get(id)!.advertise());
      const keys = this.append('secagg-keys', round, collector.keysBody(), plan.tamper);
      for (const id of live('shares'))
        collector.addShares(id, clients.get(id)!.onKeys(keys, this.signingKey));
      const shares = this.append('secagg-shares', round, collector.sharesBody(), plan.tamper);
      const global = tensorValues(this.blobs.get(this.globalAdapter)!);
      for (const id of live('masked')) {
        const k = this.ids.indexOf(id);
        clients.get(id)!.onInbox(collector.inbox(id), shares);
        const delta = deltaOf(round, k, this.schema);
        const weight = 1 + ((k * 7) % 40);
        result.deltas.set(id, { delta, weight });
        const y = clients.get(id)!.mask(delta, weight);
        result.masked.set(id, y);
        const signed = maskedEnvelope(this.identityOf(id), federation, round, this.globalAdapter, y);
        collector.addMasked(id, {
          hash: this.store(signed.tensors),
          envelopeDigest: signed.envelopeDigest,
          envelope: signed.envelope,
        });
      }
      const unmask = this.append('secagg-unmask', round, collector.unmaskBody(), plan.tamper);
      collector.unmaskRecorded(unmask.hash);
      plan.unmasked?.(clients, unmask, collector);
      for (const id of live('consistency')) collector.addConsistency(id, clients.get(id)!.onUnmask(unmask));
      const consistency = this.append('secagg-consistency', round, collector.consistencyBody(), plan.tamper);
      for (const id of live('reveal')) {
        const honest = clients.get(id)!.onConsistency(consistency);
        const reveal = plan.reveal ? plan.reveal(id, honest) : honest;
        result.reveals.set(id, reveal);
        collector.addReveal(id, reveal);
      }
      plan.after?.(clients, unmask);
      if (!collector.canUnmask()) throw new SecAggError('SECAGG_ABORT', 'too few reveals to unmask');
      const { sum, secureSection } = collector.unmask((p) => result.masked.get(p)!);
      const serverStateIn = this.serverState;
      const aggregate = aggregateSecureRound({
        rule: rule.name,
        config: rule.config,
        schema: this.schema,
        global,
        serverState: serverStateIn === undefined ? undefined : tensorValues(this.blobs.get(serverStateIn)!),
        sum,
        survivors: secureSection.maskedInputs.length,
        fixedPoint: secureFixedPoint(this.config.secureAggregation!, this.config.aggregation.weightCap!),
      });
      const serverStateOut =
        aggregate.serverState && this.store(serverStateTensors(this.schema, aggregate.serverState));
      const out = this.store(tensorsFromValues(this.schema, aggregate.adapter));
      this.append(
        'round-closed',
        round,
        {
          rule,
          selection,
          updates: [],
          globalAdapterIn: this.globalAdapter,
          globalAdapterOut: out,
          ...(serverStateOut !== undefined && serverStateIn !== undefined && { serverStateIn }),
          ...(serverStateOut !== undefined && { serverStateOut }),
          dropped: [],
          metrics: {},
          secure: secureSection,
        },
        plan.tamper,
      );
      this.globalAdapter = out;
      this.serverState = serverStateOut ?? this.serverState;
      return { ...result, outcome: 'closed', sum, section: secureSection, adapter: aggregate.adapter };
    } catch (err) {
      return abort(err);
    }
  }
}

const ORDER: DropPhase[] = ['advertise', 'shares', 'masked', 'consistency', 'reveal'];
/** Whether a participant dropping at `at` is gone by `phase`. */
function isDropped(at: DropPhase | undefined, phase: DropPhase): boolean {
  return at !== undefined && ORDER.indexOf(at) <= ORDER.indexOf(phase);
}

/** hex SHA-256 of a string, for ad-hoc ids. */
export const sha = (text: string) => createHash('sha256').update(text).digest('hex');
