// Downloading a base model from the Hugging Face Hub (`fedit model fetch`, the app's download
// step), with @huggingface/hub. Only the files fedit reads are fetched: config.json, the
// safetensors weights (one file, or the shards of model.safetensors.index.json) and the tokenizer
// files; never the PyTorch, ONNX or GGUF copies a repository may also hold.
//
// Where the bytes go, so that no folder looks complete before it is:
//   <out>.partial/               the download in progress (its name says so); kept on failure
//     .fedit-fetch.json          which repository and revision it is (another one restarts it)
//     <file>.part                a file still arriving: the next run continues it with a Range request
//     <file>                     a file complete and checked against the hash the Hub lists for it
//                                (LFS files: SHA-256 of the content; others: the git blob SHA-1)
//   <out>/                       the folder renamed into place once every file is checked and the
//                                model's fedit identity is the one the federation pins
// A model whose identity is not the expected one is removed entirely: it can never become right.
//
// The Hub's address is the library's `hubUrl`; by default the HF_ENDPOINT environment variable
// (the one huggingface_hub users know, e.g. a mirror), else the library's own default. A gated
// model's token comes from HF_TOKEN.

import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { open, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { downloadFile, listFiles, type ListFileEntry } from '@huggingface/hub';
import { FeditError, MODEL_SIDE_FILES, formatModelRepo, type ModelRepo } from '@fedit/shared';

export type ModelFetchErrorCode =
  /** The output folder already holds files. */
  | 'MODEL_FETCH_OUT_EXISTS'
  /** The repository lacks a file fedit needs (config.json, safetensors weights, tokenizer.json). */
  | 'MODEL_FETCH_NOT_A_MODEL'
  /** The Hub answered with an error (no such repository or revision, no access, unreachable). */
  | 'MODEL_FETCH_HUB'
  /** A downloaded file's size or hash is not what the Hub lists for it (it was removed). */
  | 'MODEL_FETCH_CORRUPT'
  /** The downloaded model is not the one the federation pins (it was removed). */
  | 'MODEL_FETCH_IDENTITY';

export class ModelFetchError extends FeditError {
  constructor(code: ModelFetchErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export interface ModelFetchProgress {
  /** The file arriving now (a path in the repository). */
  file: string;
  /** Bytes of all the model's files on disk so far, resumed ones included, and in all. */
  done: number;
  total: number;
}

export interface ModelFetchOptions {
  source: ModelRepo;
  /** The model folder to create; it must not hold files yet. */
  out: string;
  /** The fedit identity the model must have (the federation's baseModel.identity). */
  expectedIdentity?: string;
  /** The Hub's address (default: $HF_ENDPOINT, else the library's default). */
  hubUrl?: string;
  /** For gated or private repositories (default: $HF_TOKEN). */
  accessToken?: string;
  onProgress?: (progress: ModelFetchProgress) => void;
  signal?: AbortSignal;
  /**
   * The fedit identity of the model in `dir`, its weights converted under `cacheDir`: the engine's
   * (./engine-identity.ts) in the CLI; the app asks its training worker, which hosts the engine.
   * Passed in, not imported: the engine loads onnxruntime, which the app's main process must not.
   */
  identityOf: (dir: string, cacheDir: string) => Promise<string>;
}

export interface FetchedModel {
  dir: string;
  identity: string;
  /** The files downloaded, as paths in the repository. */
  files: string[];
  bytes: number;
  /** Bytes that were already on disk from an interrupted download, and not fetched again. */
  resumedBytes: number;
}

/** The tokenizer and generation files fetched beside config.json and the weights (@fedit/shared). */
export { MODEL_SIDE_FILES };

const PARTIAL_SUFFIX = '.partial';
const MANIFEST = '.fedit-fetch.json';
const SHARD = /^model-\d+-of-\d+\.safetensors$/;

/** The partial folder an interrupted download of `out` leaves (and a later one continues). */
export function partialFolderOf(out: string): string {
  return resolve(out) + PARTIAL_SUFFIX;
}

/** Downloads `source` into `out`, resuming what an interrupted download left; see the file header. */
export async function fetchHubModel(o: ModelFetchOptions): Promise<FetchedModel> {
  const out = resolve(o.out);
  if (existsSync(out) && readdirSync(out).length > 0)
    throw new ModelFetchError(
      'MODEL_FETCH_OUT_EXISTS',
      `${out} already holds files; choose an empty or new folder for the model`,
    );
  const staging = await openStaging(out, o.source);
  const hub = hubParams(o);
  const files = modelFiles(await listRepository(hub, o.source), o.source);
  const total = files.reduce((sum, f) => sum + fileSize(f), 0);
  let done = 0;
  let resumedBytes = 0;
  for (const entry of files) {
    const onBytes = (n: number) => {
      done += n;
      o.onProgress?.({ file: entry.path, done, total });
    };
    resumedBytes += await downloadChecked(hub, entry, staging, onBytes);
  }
  const identity = await verifiedIdentity(staging, o.expectedIdentity, o.source, o.identityOf);
  await rm(join(staging, MANIFEST), { force: true });
  if (existsSync(out)) await rmdir(out); // empty, as checked above
  await rename(staging, out);
  return { dir: out, identity, files: files.map((f) => f.path), bytes: total, resumedBytes };
}

/** The partial folder for `out`, started afresh if it holds another repository's download. */
async function openStaging(out: string, source: ModelRepo): Promise<string> {
  const staging = partialFolderOf(out);
  const manifest = JSON.stringify({ repo: source.repo, revision: source.revision ?? null });
  const previous = await readFile(join(staging, MANIFEST), 'utf8').catch(() => undefined);
  if (previous !== manifest) await rm(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  await writeFile(join(staging, MANIFEST), manifest);
  return staging;
}

type HubParams = {
  repo: string;
  revision: string;
  hubUrl?: string;
  accessToken?: string;
  fetch: typeof fetch;
};

function hubParams(o: ModelFetchOptions): HubParams {
  const hubUrl = (o.hubUrl ?? process.env.HF_ENDPOINT)?.replace(/\/+$/, '') || undefined;
  const accessToken = o.accessToken ?? (process.env.HF_TOKEN || undefined);
  const signal = o.signal;
  return {
    repo: o.source.repo,
    revision: o.source.revision ?? 'main',
    ...(hubUrl && { hubUrl }),
    ...(accessToken && { accessToken }),
    fetch: signal ? (input, init) => fetch(input, { ...init, signal }) : fetch,
  };
}

async function listRepository(hub: HubParams, source: ModelRepo): Promise<ListFileEntry[]> {
  const entries: ListFileEntry[] = [];
  try {
    for await (const entry of listFiles(hub)) entries.push(entry);
  } catch (cause) {
    throw hubError(cause, `cannot list the files of ${formatModelRepo(source)}`);
  }
  return entries;
}

/** The files of `entries` fedit needs, or why the repository does not hold a model it can train. */
export function modelFiles(entries: readonly ListFileEntry[], source: ModelRepo): ListFileEntry[] {
  const files = new Map(entries.filter((e) => e.type === 'file').map((e) => [e.path, e]));
  const missing = (what: string) =>
    new ModelFetchError(
      'MODEL_FETCH_NOT_A_MODEL',
      `${formatModelRepo(source)} has no ${what}, which fedit needs to train a model (a Hugging Face model with safetensors weights)`,
    );
  if (!files.has('config.json')) throw missing('config.json');
  if (!files.has('tokenizer.json')) throw missing('tokenizer.json');
  const weights = files.has('model.safetensors')
    ? ['model.safetensors']
    : files.has('model.safetensors.index.json')
      ? ['model.safetensors.index.json', ...[...files.keys()].filter((p) => SHARD.test(p))]
      : [];
  if (weights.length === 0)
    throw missing('model.safetensors (or model.safetensors.index.json and its shards)');
  const wanted = ['config.json', ...MODEL_SIDE_FILES, ...weights];
  return wanted.filter((p) => files.has(p)).map((p) => files.get(p)!);
}

function fileSize(entry: ListFileEntry): number {
  return entry.lfs?.size ?? entry.size;
}

/**
 * Brings `entry` into `staging`, continuing a `.part` file with a Range request, and checks it
 * against the Hub's listing. Returns the bytes that were already there.
 */
async function downloadChecked(
  hub: HubParams,
  entry: ListFileEntry,
  staging: string,
  onBytes: (n: number) => void,
): Promise<number> {
  const size = fileSize(entry);
  const final = join(staging, entry.path);
  if (existsSync(final) && statSync(final).size === size) {
    onBytes(size); // checked when it was completed
    return size;
  }
  const part = final + '.part';
  let have = existsSync(part) ? statSync(part).size : 0;
  if (have > size) {
    await rm(part);
    have = 0;
  }
  if (have > 0) onBytes(have);
  if (have < size) {
    let blob: Blob | null;
    try {
      blob = await downloadFile({ ...hub, path: entry.path });
    } catch (cause) {
      throw hubError(cause, `cannot download ${entry.path}`);
    }
    if (!blob)
      throw new ModelFetchError('MODEL_FETCH_HUB', `the Hub lists ${entry.path} but does not serve it`);
    const body = (have > 0 ? blob.slice(have) : blob).stream() as unknown as WebReadableStream<Uint8Array>;
    // Each chunk is on disk before the next is read, so a dropped connection keeps all that arrived.
    const file = await open(part, 'a');
    try {
      for await (const chunk of Readable.fromWeb(body)) {
        await file.write(chunk as Uint8Array);
        onBytes((chunk as Uint8Array).length);
      }
    } catch (cause) {
      throw hubError(cause, `the download of ${entry.path} stopped (run again to continue it)`);
    } finally {
      await file.close();
    }
  }
  await checkAgainstListing(part, entry);
  await rename(part, final);
  return have;
}

/** The Hub lists an LFS file's SHA-256 and any other file's git blob SHA-1: the bytes must have it. */
async function checkAgainstListing(path: string, entry: ListFileEntry): Promise<void> {
  const size = statSync(path).size;
  const expected = entry.lfs?.oid ?? entry.oid;
  let actual: string | undefined;
  if (size === fileSize(entry) && expected !== undefined) {
    const hash = entry.lfs ? createHash('sha256') : createHash('sha1').update(`blob ${size}\0`);
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    actual = hash.digest('hex');
  }
  if (size !== fileSize(entry) || actual !== expected) {
    await rm(path, { force: true });
    const what =
      size !== fileSize(entry) ? `${size} bytes, not ${fileSize(entry)}` : `hash ${actual}, not ${expected}`;
    throw new ModelFetchError(
      'MODEL_FETCH_CORRUPT',
      `${entry.path} arrived damaged (${what}, as the Hub lists it); it was removed: run again to download it afresh`,
    );
  }
}

/**
 * The downloaded model's fedit identity, loaded as training will load it (converted in a cache of
 * its own, removed after: the conversion a participant uses is made from the final folder).
 */
async function verifiedIdentity(
  staging: string,
  expected: string | undefined,
  source: ModelRepo,
  identityOf: (dir: string, cacheDir: string) => Promise<string>,
): Promise<string> {
  const cacheDir = join(staging, '.fedit-verify-cache');
  let identity: string;
  try {
    identity = await identityOf(staging, cacheDir);
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
  if (expected !== undefined && identity !== expected) {
    await rm(staging, { recursive: true, force: true });
    throw new ModelFetchError(
      'MODEL_FETCH_IDENTITY',
      `${formatModelRepo(source)} holds a model of identity ${identity}, not the federation's ${expected}; it was removed (ask the operator which revision the federation uses)`,
    );
  }
  return identity;
}

function hubError(cause: unknown, what: string): ModelFetchError {
  if (cause instanceof ModelFetchError) return cause;
  const reason = (cause as Error)?.message ?? String(cause);
  return new ModelFetchError('MODEL_FETCH_HUB', `${what}: ${reason}`, { cause });
}

/** The folder name `fedit model fetch` uses by default: the repository's name. */
export function defaultModelFolder(source: ModelRepo): string {
  return basename(source.repo);
}
