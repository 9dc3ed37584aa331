// A participant's session: what `Participant.start` loads once and every round then trains from.
//
//   membership + identity -> the federation's settings
//   base model (checked against the federation's) -> tokenizer -> the data's token rows + report
//
// Rounds train from these in memory: the model is not re-opened, the tokenizer not reloaded, the
// data not re-read, re-tokenized or re-hashed per round. Only a change of the federation's prompt
// settings (template, cutoff, train-on-inputs) prepares the rows again. The trainer, with its
// compiled graphs, is kept from round to round while the training settings compile the same graphs
// (TrainerKeeper), and released when the participant stops.
import {
  Trainer,
  loadCheckpoint,
  loadTokenizer,
  type ExecutionProvider,
  type LoadedModel,
  type Tokenizer,
  type TrainerOptions,
} from '@fedit/kernels';
import type { AnnouncedConfig, ContentHash, Identity } from '@fedit/shared';
import {
  prepareDataset,
  type DatasetFileSpec,
  type DatasetFormat,
  type DatasetReport,
  type PreparedDataset,
  type PrepareOptions,
  type TrainingExample,
} from '../data/index.ts';
import { dataFilesDigest } from '../train/checkpoint.ts';
import { TrainerKeeper } from '../train/train-lora.ts';
import type { FederationConnection } from './connection.ts';
import { FederationError } from './errors.ts';
import { heldOutSlice } from './held-out.ts';
import { participantRank } from './rank.ts';
import { parseFederationInfo, parseFederationSettings, type FederationSettings } from './settings.ts';
import {
  membershipPath,
  requireIdentity,
  resolveHome,
  selectMembership,
  writeMembership,
  type Membership,
} from './store.ts';

/**
 * How a session loads its training inputs. The default reads them from disk; a host may wrap it
 * (a test counts the loads through it) but every load still goes through the real functions.
 */
export interface TrainingInputsLoader {
  model(modelDir: string): Promise<LoadedModel>;
  tokenizer(modelDir: string): Promise<Tokenizer>;
  dataset(files: readonly (string | DatasetFileSpec)[], options: PrepareOptions): Promise<PreparedDataset>;
  /** Creates a trainer (compiles its graphs): once per session while the rounds' settings agree. */
  trainer(options: TrainerOptions): Promise<Trainer>;
}

export const DISK_LOADER: TrainingInputsLoader = {
  model: loadCheckpoint,
  tokenizer: loadTokenizer,
  dataset: prepareDataset,
  trainer: (options) => Trainer.create(options),
};

export interface ParticipantOptions {
  /** Base model folder: must be the federation's base model. */
  modelDir: string;
  /** The participant's data files (they never leave the machine). */
  dataFiles: string[];
  format?: DatasetFormat;
  /** The fedit home folder (default: resolveHome()). */
  home?: string;
  /** Which joined federation (default: the only one). */
  federationId?: string;
  provider?: ExecutionProvider;
  threads?: number;
  /** Aborting stops the participant (training saves a checkpoint first; uploads stay on disk). */
  signal?: AbortSignal;
  /** Stop after this many rounds have closed (default: run until the federation's last round). */
  maxRounds?: number;
  /** Plaintext bytes per upload chunk (default DEFAULT_CHUNK_BYTES). */
  chunkBytes?: number;
  /** How long a request waits for its answer (default 30 s). */
  requestTimeoutMs?: number;
  /** Longest pause between reconnection attempts, ms (default 5000). */
  reconnectionDelayMax?: number;
  /** Loads the model, tokenizer and data once per start (default DISK_LOADER). */
  loader?: TrainingInputsLoader;
  /**
   * Keep a held-out slice and measure each global adapter on it (held-out.ts; default true). A
   * simulation that compares the federation with local and pooled training on the same examples
   * turns it off, so that every side trains on all of them.
   */
  heldOut?: boolean;
  /**
   * Train this LoRA rank, below the federation's (rank.ts), and keep it in the membership; default:
   * the membership's, else the federation's rank.
   */
  rank?: number;
}

/** The participant's data as its rounds train on it: token rows under the federation's prompt settings. */
export interface SessionData {
  rows: TrainingExample[];
  /** The seeded held-out slice (held-out.ts): never trained on, each global adapter is measured on it. */
  heldOut: TrainingExample[];
  report: DatasetReport;
  /** Digest of the data files, read once: part of a round checkpoint's identity. */
  digest: string;
}

export interface ParticipantSession {
  options: ParticipantOptions;
  home: string;
  identity: Identity;
  membership: Membership;
  settings: FederationSettings;
  /** The LoRA rank this participant trains: the federation's, or the lower one it chose (rank.ts). */
  rank: number;
  model: LoadedModel;
  tokenizer: Tokenizer;
  data: SessionData;
  /** The trainer kept across rounds; released when the participant stops. */
  trainers: TrainerKeeper;
  connection: FederationConnection;
  /** Stops everything: the caller's signal, a fatal error, or the end of the federation. */
  stop: AbortController;
  roundsClosed: number;
}

/** Everything of a session but its connection, loaded once. */
export type LoadedSession = Omit<ParticipantSession, 'connection' | 'stop' | 'roundsClosed'>;

/**
 * Reads the membership and identity, loads the base model (refusing another than the federation's),
 * the tokenizer and the data. `loading` is told before the slow part starts.
 */
export async function loadSession(options: ParticipantOptions, loading: () => void): Promise<LoadedSession> {
  const loader = options.loader ?? DISK_LOADER;
  const home = resolveHome(options.home);
  const identity = await requireIdentity(home);
  let membership = await selectMembership(home, options.federationId);
  const settings = parseFederationSettings(membership.config, membershipPath(home, membership.federation));
  const rank = participantRank(settings, options.rank ?? membership.rank);
  if (options.rank !== undefined && options.rank !== membership.rank) {
    membership = { ...membership, rank: options.rank };
    await writeMembership(home, membership);
  }
  loading();
  const model = await loader.model(options.modelDir);
  checkBaseModel(model, settings, options.modelDir);
  const tokenizer = await loader.tokenizer(options.modelDir);
  const data = await prepareSessionData(options, settings, tokenizer, dataFilesDigest(options.dataFiles));
  const trainers = new TrainerKeeper((o) => loader.trainer(o));
  return { options, home, identity, membership, settings, rank, model, tokenizer, data, trainers };
}

/**
 * Adopts the federation's settings from 'federation:info' (its signed config record) when they
 * changed (keeping them in the membership file). Resolves false when nothing changed; else with the
 * data's new report when the prompt settings changed and the rows were prepared again.
 */
export async function adoptSettings(
  session: ParticipantSession,
  info: AnnouncedConfig,
): Promise<{ report?: DatasetReport } | false> {
  if (info.configHash === session.membership.configHash) return false;
  const settings = parseFederationInfo(info, `the settings of federation ${session.membership.federation}`);
  checkBaseModel(session.model, settings, session.options.modelDir);
  const rank = participantRank(settings, session.membership.rank);
  const previous = session.settings.training;
  let report: DatasetReport | undefined;
  if (
    settings.training.template !== previous.template ||
    settings.training.cutoffLen !== previous.cutoffLen ||
    settings.training.trainOnInputs !== previous.trainOnInputs
  ) {
    session.data = await prepareSessionData(
      session.options,
      settings,
      session.tokenizer,
      session.data.digest,
    );
    report = session.data.report;
  }
  session.settings = settings;
  session.rank = rank;
  session.membership = {
    ...session.membership,
    config: info.config,
    configHash: info.configHash as ContentHash,
  };
  await writeMembership(session.home, session.membership);
  return { report };
}

/** Throws FEDERATION_MODEL_MISMATCH unless `model` is the federation's base model. */
export function checkBaseModel(model: LoadedModel, settings: FederationSettings, modelDir: string): void {
  if (model.identity !== settings.baseModel.identity) {
    throw new FederationError(
      'FEDERATION_MODEL_MISMATCH',
      `the model in ${modelDir} (identity ${model.identity}) is not federation ${settings.id}'s base model ${settings.baseModel.name} (identity ${settings.baseModel.identity}); use the same checkpoint as the other participants`,
    );
  }
}

/** The data's token rows with the federation's prompt settings; FEDERATION_DATA when nothing is usable. */
async function prepareSessionData(
  options: ParticipantOptions,
  settings: FederationSettings,
  tokenizer: Tokenizer,
  digest: string,
): Promise<SessionData> {
  const loader = options.loader ?? DISK_LOADER;
  const prepared = await loader.dataset(
    options.dataFiles.map((path) => (options.format ? { path, format: options.format } : path)),
    {
      tokens: {
        tokenizer,
        template: settings.training.template,
        cutoffLen: settings.training.cutoffLen,
        trainOnInputs: settings.training.trainOnInputs,
      },
      heldOut: options.heldOut === false ? undefined : heldOutSlice(settings.id),
    },
  );
  if (prepared.report.usable === 0) {
    throw new FederationError(
      'FEDERATION_DATA',
      `${options.dataFiles.join(', ')}: no usable training example with the federation's settings (template ${settings.training.template}, cutoff ${settings.training.cutoffLen} tokens); see the report`,
    );
  }
  return { rows: prepared.rows!.train, heldOut: prepared.rows!.heldOut, report: prepared.report, digest };
}
