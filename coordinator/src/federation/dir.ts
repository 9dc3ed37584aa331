// A federation directory: everything a coordinator keeps, in one folder an operator can back up and
// an auditor can copy.
//
//   federation.json        the federation config (FederationConfig), as the operator set it
//   keys/coordinator.json  the coordinator's identity (secret keys; owner-only permissions)
//   keys/seed-chain.json   the secret behind the selection seeds' commitment (seed-chain-file.ts)
//   log/rounds.jsonl       the append-only, hash-chained, signed round log: the source of truth
//   blobs/                 content-addressed tensor sets (global adapters and counted updates)
//   index.json             lowdb index (participants, invites, round summaries), rebuilt from the log
//   uploads/               updates being received (discarded when their round ends)
//   init-in-progress       only while `fedit coordinator init` runs (or if it was stopped)

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  PRIVATE_DIR_MODE,
  PRIVATE_FILE_MODE,
  FeditError,
  RoundLog,
  generateIdentity,
  parseIdentity,
  readRoundLog,
  serializeIdentity,
  syncDirectory,
  serializePublicIdentity,
  parsePeftLoraTensorName,
  publicIdentity,
  verifyRoundRecordSignature,
  writeFileAtomic,
  configDifferences,
  configHash,
  createSeedChain,
  seedChainLength,
  federationPaths,
  validateFederationConfig,
  requireKnownRule,
  BlobStore,
  DP_RULE,
  type FederationConfig,
  type FederationPaths,
  type Identity,
  type RoundRecord,
  type Tensor,
} from '@fedit/shared';
import { initMarker, prepareInitFolder } from './init-folder.ts';
import { writeSeedChain } from './seed-chain-file.ts';

export { INIT_MARKER } from './init-folder.ts';

export type FederationSettings = Omit<FederationConfig, 'id' | 'baseModel'> & { id?: string };

/** The defaults `fedit coordinator init` starts from (FedIT/Shepherd-like, small local budgets). */
export const DEFAULT_SETTINGS: FederationSettings = {
  name: 'fedit federation',
  lora: { rank: 16, alpha: 16, dropout: 0.05, targets: ['q_proj', 'v_proj'] },
  training: {
    // Short rounds: with the same compute, fewer local steps over more rounds drift less between
    // averages and learn far better on non-IID data (docs/learning.md).
    localSteps: 10,
    batchSize: 4,
    lr: 3e-4,
    cutoffLen: 256,
    template: 'alpaca',
    trainOnInputs: false,
  },
  rounds: 10,
  participantsPerRound: { fraction: 1, minimum: 2 },
  roundDeadlineSeconds: 3600,
  minUpdates: 2,
  // Clipping at twice the round's median update norm, and (in initFederation) a weight cap of
  // one round's examples, stop one participant from taking over the average by scaling its update
  // or by claiming a huge example count (docs/learning.md measures both).
  aggregation: { rule: 'fedit', clipping: { kind: 'adaptive', multiplier: 2 } },
  limits: { maxUpdateNorm: 1000, maxUploadBytes: 512 * 1024 * 1024, maxExampleCount: 10_000_000 },
};

/**
 * The aggregation section merged over the defaults (a rule chosen alone keeps default clipping),
 * and the weight cap, when not set, at the examples a participant trains on in one round
 * (localSteps x batchSize): a larger dataset says nothing about one round's work.
 */
function withLearningDefaults(
  settings: FederationSettings,
  given: Partial<FederationSettings> | undefined,
): FederationSettings {
  // Differential privacy brings its own clipping and weighs each update 1 (DP-FedAvg: dp-config.ts
  // says why); the learning defaults would break its sensitivity, so they stay out. Under secure
  // aggregation no default norm clipping either: adaptive clipping needs the individual updates,
  // and the per-coordinate clip range of the encoding already bounds each one.
  const defaults = settings.differentialPrivacy
    ? { rule: DP_RULE }
    : settings.secureAggregation
      ? { rule: 'fedit' }
      : DEFAULT_SETTINGS.aggregation;
  const aggregation: FederationSettings['aggregation'] = { ...defaults, ...given?.aggregation };
  // The weight cap: W of secure aggregation's overflow condition; without DP each update's cap.
  if (!settings.differentialPrivacy || settings.secureAggregation)
    aggregation.weightCap ??= settings.training.localSteps * settings.training.batchSize;
  return { ...settings, aggregation };
}

/** What a new federation starts from: the base model every participant trains, and its adapter. */
export interface FederationStart {
  /**
   * The base model: its identity (loadCheckpoint().identity), the name participants see, and where
   * to download it (a Hugging Face repository and revision), if the operator says.
   */
  baseModel: FederationConfig['baseModel'];
  /**
   * The initial global adapter: PEFT's LoRA initialisation for the base model with the config's
   * rank and targets. Built by the caller (`fedit coordinator init` loads the model for it), so the
   * coordinator itself never loads a model.
   */
  initialAdapter: ReadonlyMap<string, Tensor>;
  settings?: Partial<FederationSettings>;
}

/**
 * Creates a federation: the coordinator's keys, the config, the initial global adapter and the
 * log's first record.
 */
export async function initFederation(
  root: string,
  options: FederationStart,
): Promise<{ config: FederationConfig; identity: Identity }> {
  const paths = federationPaths(root);
  if (existsSync(paths.config)) {
    throw new FeditError('FEDERATION_EXISTS', `${root} already holds a federation; choose an empty folder`);
  }
  const settings = withLearningDefaults({ ...DEFAULT_SETTINGS, ...options.settings }, options.settings);
  const config = validateFederationConfig({
    ...settings,
    id: settings.id ?? `fed-${randomBytes(6).toString('hex')}`,
    baseModel: options.baseModel,
  });
  requireKnownRule(config);
  checkInitialAdapter(config, options.initialAdapter);

  await prepareInitFolder(paths);
  // Owner-only from creation: the folder, the keys, every update (permissions.ts).
  chmodSync(root, PRIVATE_DIR_MODE); // made by prepareInitFolder, or the operator's empty folder
  for (const dir of [join(root, 'keys'), join(root, 'log'), paths.blobs, paths.uploads])
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const identity = generateIdentity();
  await writeFileAtomic(paths.keys, JSON.stringify(serializeIdentity(identity), null, 2) + '\n', {
    mode: PRIVATE_FILE_MODE,
  });
  // The public half, for auditors and for anyone checking signatures without the secret keys.
  await writeFileAtomic(
    join(root, 'keys', 'coordinator.pub.json'),
    JSON.stringify(serializePublicIdentity(publicIdentity(identity)), null, 2) + '\n',
  );

  // Every round's selection seed is fixed here, before anyone enrols (shared/src/rounds/seed-chain.ts).
  const seedChain = createSeedChain(seedChainLength(config.rounds));
  await writeSeedChain(root, seedChain);

  const globalAdapter = await new BlobStore(paths.blobs).put(options.initialAdapter);

  const log = await RoundLog.open(paths.log, {
    federation: config.id,
    coordinatorSecretKey: identity.sign.secretKey,
  });
  await log.append({
    kind: 'config',
    body: {
      // configHashVersion 2: the audit recomputes configHash (a v1 hash of older logs it cannot).
      settings: { config: JSON.stringify(config), configHash: configHash(config), configHashVersion: 2 },
      globalAdapter,
      seedChain: { commitment: seedChain.commitment, length: seedChain.length },
    },
  });
  await log.close();
  // federation.json is what makes the folder a federation (nothing opens one without it), so a
  // crash at any moment before this leaves a folder that a new init clears and redoes. The marker
  // goes only after it: a marker left beside a federation.json is harmless (init refuses the
  // folder for its federation.json), while a missing one would make init refuse its own leftovers.
  await writeFileAtomic(paths.config, JSON.stringify(config, null, 2) + '\n');
  rmSync(initMarker(paths), { force: true });
  await syncDirectory(root);
  return { config, identity };
}

/**
 * The initial adapter must be a LoRA of the config's rank: PEFT tensor names, A factors [rank, in],
 * B factors [out, rank]. Caught here, before anything is written, rather than by every participant.
 */
function checkInitialAdapter(config: FederationConfig, adapter: ReadonlyMap<string, Tensor>): void {
  const refuse = (why: string) =>
    new FeditError(
      'FEDERATION_ADAPTER',
      `the initial adapter is not a LoRA of rank ${config.lora.rank}: ${why}`,
    );
  if (adapter.size === 0) throw refuse('it has no tensors');
  for (const [name, tensor] of adapter) {
    const lora = parsePeftLoraTensorName(name);
    if (!lora) throw refuse(`${name} is not a PEFT LoRA tensor name`);
    const rankAt = lora.factor === 'A' ? 0 : 1;
    if (tensor.shape.length !== 2 || tensor.shape[rankAt] !== config.lora.rank)
      throw refuse(`${name} has shape [${tensor.shape.join(', ')}]`);
  }
}

/**
 * The federation's round log, which must begin with its config record. A folder with
 * federation.json but no log, or a log without that record, is one whose init never finished (by
 * an older fedit, which wrote federation.json first) or whose log was lost: no participant could
 * enrol in it (the log refuses any record before the config), so it is refused here, by name.
 */
export async function readFederationLog(paths: FederationPaths): Promise<RoundRecord[]> {
  const incomplete = (what: string) =>
    new FeditError(
      'FEDERATION_INCOMPLETE',
      `${paths.root}: ${what}. \`fedit coordinator init\` did not finish here, or the log was lost: ` +
        'restore the folder from your backup, or remove it and run init again',
    );
  if (!existsSync(paths.log)) throw incomplete(`there is no round log (${paths.log})`);
  const { records } = await readRoundLog(paths.log);
  if (records[0]?.kind !== 'config')
    throw incomplete(
      records.length === 0
        ? `the round log ${paths.log} is empty: it lacks the config record init writes first`
        : `the round log ${paths.log} does not begin with the config record`,
    );
  return records;
}

export interface OpenedFederation {
  paths: FederationPaths;
  config: FederationConfig;
  identity: Identity;
}

/** Reads a federation directory's config and keys (clear errors for anything missing or damaged). */
export function openFederationDir(root: string): OpenedFederation {
  const paths = federationPaths(root);
  if (!existsSync(paths.config))
    throw new FeditError(
      'FEDERATION_MISSING',
      `${root}: no federation.json (create one with \`fedit coordinator init\`)`,
    );
  const readJson = (path: string) => {
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as unknown;
    } catch (err) {
      throw new FeditError('FEDERATION_DAMAGED', `${path}: ${(err as Error).message}`);
    }
  };
  const config = validateFederationConfig(readJson(paths.config));
  requireKnownRule(config); // a federation.json naming a rule this coordinator lacks is refused at start
  if (!existsSync(paths.keys))
    throw new FeditError('FEDERATION_DAMAGED', `${paths.keys}: the coordinator's keys are missing`);
  let identity: Identity;
  try {
    identity = parseIdentity(readJson(paths.keys));
  } catch (err) {
    if (err instanceof FeditError && err.code === 'FEDERATION_DAMAGED') throw err;
    throw new FeditError(
      'FEDERATION_DAMAGED',
      `${paths.keys}: not the coordinator's keys (${(err as Error).message}); restore it from your backup`,
    );
  }
  mkdirSync(paths.uploads, { recursive: true, mode: PRIVATE_DIR_MODE });
  return { paths, config, identity };
}

/** Upload folders of rounds other than `keep` (left behind by a crash) — safe to delete. */
export function staleUploadDirs(paths: FederationPaths, keep?: number): string[] {
  if (!existsSync(paths.uploads)) return [];
  return readdirSync(paths.uploads)
    .filter((d) => d !== String(keep))
    .map((d) => join(paths.uploads, d));
}

/** The federation config the round log records (its last config record that carries one). */
export function loggedConfig(records: readonly RoundRecord[]): unknown {
  let logged: unknown;
  for (const r of records) {
    if (r.kind !== 'config') continue;
    const text = (r.body.settings as { config?: unknown }).config;
    if (typeof text === 'string') logged = JSON.parse(text);
  }
  return logged;
}

/**
 * Refuses to run on a federation.json that is not the config the round log recorded at init.
 * Participants agreed to that config (the log's signed first record), and the audit reads the
 * settings from the log; a config edited afterwards would run rounds under rules nobody agreed to
 * and the log does not show. Every field is compared: none of federation.json is a runtime
 * setting (where to listen, --host and --port, are options of `fedit coordinator start`, not
 * part of the config), and even the deadline or the limits change what participants' updates are
 * held to.
 */
export function checkConfigMatchesLog(
  config: FederationConfig,
  records: readonly RoundRecord[],
  configPath: string,
): void {
  let logged: unknown;
  try {
    logged = loggedConfig(records);
  } catch (err) {
    throw new FeditError(
      'FEDERATION_DAMAGED',
      `the round log's config record does not hold a readable config: ${(err as Error).message}`,
    );
  }
  if (logged === undefined) return; // a log from before configs were recorded: nothing to compare
  const differ = configDifferences(config, logged);
  if (differ.length === 0) return;
  throw new FeditError(
    'FEDERATION_CONFIG_CHANGED',
    `${configPath} differs from the config recorded in the round log in ${differ.join(', ')}. ` +
      'The log is the truth: participants agreed to the recorded settings, which the log signs, ' +
      'so the config cannot change after init. Restore federation.json to the recorded ' +
      'values (they are in the first record of log/rounds.jsonl), or create a new federation with ' +
      '`fedit coordinator init` for different settings.',
  );
}

/**
 * Opens a federation directory for a command that hands its identity to someone, as an invite
 * does (the federation id and the coordinator's public keys, which the joiner then trusts): the
 * folder must be the federation its round log records. federation.json must be the logged config
 * (checkConfigMatchesLog), and keys/coordinator.json the keys that signed the log, or the invite
 * would send participants to settings or a key nobody agreed to. Reads only; writes nothing.
 */
export async function openFederationDirChecked(
  root: string,
): Promise<OpenedFederation & { records: readonly RoundRecord[] }> {
  const fed = openFederationDir(root);
  const records = await readFederationLog(fed.paths);
  checkConfigMatchesLog(fed.config, records, fed.paths.config);
  const last = records.at(-1);
  if (last && !verifyRoundRecordSignature(last, fed.identity.sign.publicKey)) {
    throw new FeditError(
      'FEDERATION_KEYS_CHANGED',
      `${fed.paths.keys} holds other keys than the ones that signed the round log (${fed.paths.log}). ` +
        "Participants trust the coordinator's key from their invite, and the log proves which key " +
        'ran this federation: restore the original keys/coordinator.json from your backup.',
    );
  }
  return { ...fed, records };
}
