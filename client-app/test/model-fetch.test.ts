// Downloading a federation's base model from the Hub (core/model/hub-fetch.ts) through the real
// @huggingface/hub, against a local server that serves a tiny random checkpoint the way the Hub
// does (fixtures/hub-server.ts): the folder arrives whole and with the federation's identity, an
// interrupted download continues where it stopped, and a wrong model leaves nothing that looks done.
import test, { type ExecutionContext } from 'ava';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '@fedit/kernels';
import type { ListFileEntry } from '@huggingface/hub';
import { writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import {
  fetchHubModel,
  modelFiles,
  partialFolderOf,
  type ModelFetchProgress,
} from '../src/core/model/hub-fetch.ts';
import { engineIdentity as identityOf } from '../src/core/model/engine-identity.ts';
import { startFakeHub } from './fixtures/hub-server.ts';

const REPO = 'fedit-test/tiny-chat';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-model-fetch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A tiny random checkpoint served as REPO@COMMIT, and its identity as fedit computes it. */
async function servedModel(t: ExecutionContext, seed = 0) {
  const dir = await tempDir(t);
  const folder = await writeTinyChatModel(join(dir, 'repo'), seed);
  const { identity } = await loadCheckpoint(folder, { cacheDir: join(dir, 'cache') });
  const hub = await startFakeHub(t, { [REPO]: { folder, revision: COMMIT } });
  return { dir, folder, identity, hub };
}

function sameFiles(t: ExecutionContext, from: string, to: string): void {
  const names = readdirSync(from).filter((f) => !f.startsWith('.'));
  t.deepEqual(
    readdirSync(to)
      .filter((f) => !f.startsWith('.'))
      .sort(),
    names.sort(),
  );
  for (const name of names) t.true(readFileSync(join(to, name)).equals(readFileSync(join(from, name))), name);
}

test('fetches a model into a folder that has the identity the federation pins', async (t) => {
  const { dir, folder, identity, hub } = await servedModel(t);
  const out = join(dir, 'downloaded');
  const progress: ModelFetchProgress[] = [];
  const fetched = await fetchHubModel({
    identityOf,
    source: { repo: REPO, revision: COMMIT },
    out,
    expectedIdentity: identity,
    hubUrl: hub.url,
    onProgress: (p) => progress.push(p),
  });
  t.is(fetched.identity, identity);
  t.is(fetched.resumedBytes, 0);
  t.deepEqual(fetched.files, ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']);
  sameFiles(t, folder, out);
  t.false(existsSync(partialFolderOf(out)), 'no partial folder is left');
  t.is((await loadCheckpoint(out)).identity, identity, 'the folder loads as the model it is');
  const last = progress.at(-1)!;
  t.is(last.done, last.total);
  t.is(last.total, fetched.bytes);
  t.true(
    progress.every((p, i) => i === 0 || p.done >= progress[i - 1].done),
    'progress only grows',
  );
  t.true(
    hub.requests.some((r) => r.path === `/api/models/${REPO}/tree/${COMMIT}`),
    'the listing is asked of the revision',
  );
});

test('a download cut off mid-file continues with a Range request where it stopped', async (t) => {
  const { dir, folder, identity, hub } = await servedModel(t);
  const out = join(dir, 'downloaded');
  const weights = statSync(join(folder, 'model.safetensors')).size;
  hub.cutNext('model.safetensors', 4096);
  const source = { repo: REPO, revision: COMMIT };
  const first = await t.throwsAsync(
    fetchHubModel({ identityOf, source, out, expectedIdentity: identity, hubUrl: hub.url }),
  );
  t.is((first as { code?: string }).code, 'MODEL_FETCH_HUB');
  t.regex(first!.message, /model\.safetensors stopped \(run again to continue it\)/);
  t.false(existsSync(out), 'nothing at the model folder while it is incomplete');
  const part = join(partialFolderOf(out), 'model.safetensors.part');
  const kept = statSync(part).size;
  t.true(kept > 0 && kept < weights, `kept ${kept} of ${weights} bytes`);

  hub.requests.length = 0;
  const fetched = await fetchHubModel({
    identityOf,
    source,
    out,
    expectedIdentity: identity,
    hubUrl: hub.url,
  });
  t.is(fetched.identity, identity);
  t.true(fetched.resumedBytes >= kept, 'the bytes already there are not fetched again');
  t.true(
    hub.requests.some(
      (r) => r.path.endsWith('/model.safetensors') && r.range === `bytes=${kept}-${weights - 1}`,
    ),
    `a Range request from byte ${kept}: ${JSON.stringify(hub.requests)}`,
  );
  t.false(
    hub.requests.some((r) => r.path.endsWith('/config.json') && r.range === undefined),
    'files completed before the cut are not downloaded again',
  );
  sameFiles(t, folder, out);
});

test('a file that arrives damaged is removed and downloaded afresh on the next run', async (t) => {
  const { dir, folder, identity, hub } = await servedModel(t);
  const out = join(dir, 'downloaded');
  const source = { repo: REPO, revision: COMMIT };
  hub.damageNext('model.safetensors');
  const error = await t.throwsAsync(fetchHubModel({ identityOf, source, out, hubUrl: hub.url }));
  t.is((error as { code?: string }).code, 'MODEL_FETCH_CORRUPT');
  t.regex(error!.message, /model\.safetensors arrived damaged \(hash [0-9a-f]{64}, not [0-9a-f]{64}/);
  t.false(existsSync(join(partialFolderOf(out), 'model.safetensors.part')), 'the damaged bytes are gone');
  t.true(existsSync(join(partialFolderOf(out), 'config.json')), 'the sound files stay');
  const fetched = await fetchHubModel({
    identityOf,
    source,
    out,
    expectedIdentity: identity,
    hubUrl: hub.url,
  });
  t.is(fetched.identity, identity);
  sameFiles(t, folder, out);
});

test('a model of another identity is refused and leaves no folder behind', async (t) => {
  const { dir, hub } = await servedModel(t, 0);
  const other = await loadCheckpoint(await writeTinyChatModel(join(dir, 'other'), 1), {
    cacheDir: join(dir, 'other-cache'),
  });
  const out = join(dir, 'downloaded');
  const error = await t.throwsAsync(
    fetchHubModel({
      identityOf,
      source: { repo: REPO, revision: COMMIT },
      out,
      expectedIdentity: other.identity,
      hubUrl: hub.url,
    }),
  );
  t.is((error as { code?: string }).code, 'MODEL_FETCH_IDENTITY');
  t.true(error!.message.includes(other.identity), error!.message);
  t.false(existsSync(out));
  t.false(existsSync(partialFolderOf(out)));
});

test.serial("the Hub's address comes from HF_ENDPOINT when none is given", async (t) => {
  const { dir, identity, hub } = await servedModel(t);
  const before = process.env.HF_ENDPOINT;
  process.env.HF_ENDPOINT = hub.url + '/';
  t.teardown(() => {
    if (before === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = before;
  });
  const fetched = await fetchHubModel({
    identityOf,
    source: { repo: REPO, revision: COMMIT },
    out: join(dir, 'm'),
  });
  t.is(fetched.identity, identity);
  t.true(hub.requests.length > 0);
});

test('an unknown revision or a folder that holds files is refused, naming what', async (t) => {
  const { dir, hub } = await servedModel(t);
  const unknown = await t.throwsAsync(
    fetchHubModel({
      identityOf,
      source: { repo: REPO, revision: 'nosuch' },
      out: join(dir, 'm'),
      hubUrl: hub.url,
    }),
  );
  t.is((unknown as { code?: string }).code, 'MODEL_FETCH_HUB');
  t.regex(unknown!.message, /cannot list the files of fedit-test\/tiny-chat@nosuch/);
  const occupied = await t.throwsAsync(
    fetchHubModel({
      identityOf,
      source: { repo: REPO, revision: COMMIT },
      out: join(dir, 'repo'),
      hubUrl: hub.url,
    }),
  );
  t.is((occupied as { code?: string }).code, 'MODEL_FETCH_OUT_EXISTS');
});

test('only the files fedit reads are fetched, and a repository without safetensors is not a model', (t) => {
  const file = (path: string): ListFileEntry => ({ type: 'file', path, size: 1 });
  const source = { repo: 'o/n' };
  const sharded = [
    'config.json',
    'tokenizer.json',
    'generation_config.json',
    'pytorch_model.bin',
    'model.safetensors.index.json',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'onnx',
    'README.md',
  ].map(file);
  t.deepEqual(
    modelFiles(sharded, source).map((f) => f.path),
    [
      'config.json',
      'tokenizer.json',
      'generation_config.json',
      'model.safetensors.index.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
    ],
  );
  const error = t.throws(() =>
    modelFiles(['config.json', 'tokenizer.json', 'pytorch_model.bin'].map(file), source),
  );
  t.is((error as { code?: string }).code, 'MODEL_FETCH_NOT_A_MODEL');
  t.regex(error!.message, /o\/n has no model\.safetensors/);
});
