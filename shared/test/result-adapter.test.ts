// A federation's global adapter written as a PEFT folder (federation/result-adapter.ts): the
// tensors unchanged under their hash, PEFT's config from the federation's LoRA settings, the
// template and base identity in the metadata, and a model card with the audit command; the card
// arrives with the adapter (one staging folder), and a folder holding someone's files is refused.

import test from 'ava';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  auditCommand,
  hashTensors,
  readAdapter,
  tensorFromF32,
  validateFederationConfig,
  writeFederationAdapter,
  type FederationResult,
  type Tensor,
} from '@fedit/shared';

const config = validateFederationConfig({
  id: 'fed-test-1',
  name: "Alice's clinic",
  baseModel: { identity: `sha256:${'7'.repeat(64)}`, name: 'HuggingFaceTB/SmolLM2-135M-Instruct' },
  lora: { rank: 2, alpha: 4, dropout: 0.05, targets: ['v_proj', 'q_proj'] },
  training: { localSteps: 2, batchSize: 1, lr: 0.01, cutoffLen: 32, template: 'alpaca' },
  rounds: 3,
  participantsPerRound: { fraction: 1, minimum: 2 },
  roundDeadlineSeconds: 60,
  minUpdates: 2,
  aggregation: { rule: 'fedit' },
  limits: { maxUpdateNorm: 100, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
});

function tensors(): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const target of ['q_proj', 'v_proj']) {
    const base = `base_model.model.model.layers.0.self_attn.${target}`;
    out.set(`${base}.lora_A.weight`, tensorFromF32([2, 3], Float32Array.from([1, 2, 3, 4, 5, 6])));
    out.set(`${base}.lora_B.weight`, tensorFromF32([3, 2], Float32Array.from([0.5, 0, 0, 0.5, 1, -1])));
  }
  return out;
}

function result(adapterHash: string, auditFolder?: string): FederationResult {
  return {
    config,
    round: 2,
    adapterHash,
    roundsAggregated: 2,
    contributions: 5,
    rule: { name: 'fedit', config: { weightCap: 100 } },
    logHead: `sha256:${'a'.repeat(64)}`,
    coordinatorKey: new Uint8Array(32).fill(0xab),
    auditFolder,
    exportedBy: auditFolder === undefined ? 'participant' : 'coordinator',
  };
}

test('writes the tensors unchanged, PEFT config from the federation, template and identity in metadata, and the card', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-result-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const hash = hashTensors(tensors());
  const out = join(dir, 'with space');
  await writeFederationAdapter(out, tensors(), result(hash, '/srv/fed erations/clinic'));
  t.deepEqual((await readdir(out)).sort(), ['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
  const adapter = await readAdapter(out);
  t.is(adapter.hash, hash);
  t.like(adapter.config, { rank: 2, alpha: 4, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] });
  t.deepEqual(adapter.metadata.extra, {
    template: 'alpaca',
    federation: 'fed-test-1',
    federation_name: "Alice's clinic",
    round: '2',
    log_head: `sha256:${'a'.repeat(64)}`,
  });
  t.is(adapter.metadata.baseModelIdentity, config.baseModel.identity);
  const card = await readFile(join(out, 'README.md'), 'utf8');
  t.true(card.startsWith('---\nlibrary_name: peft\nbase_model: "HuggingFaceTB/SmolLM2-135M-Instruct"\n'));
  t.true(card.includes('| rule | `fedit`, settings `{"weightCap":100}` |'));
  t.true(card.includes('| contributions | 5 counted updates |'));
  t.true(card.includes('| round | 2; 2 of 3 aggregated |'));
  // The folder's path is one shell word however it is spelled.
  t.is(
    auditCommand(result(hash, '/srv/fed erations/clinic')),
    `fedit audit '/srv/fed erations/clinic' --key ${'ab'.repeat(32)}`,
  );
  t.true(card.includes(`fedit audit '/srv/fed erations/clinic' --key ${'ab'.repeat(32)}`));
});

test("a participant's card says FOLDER for the log it does not hold and counts only the rounds it saw", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-result-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const hash = hashTensors(tensors());
  await writeFederationAdapter(join(dir, 'a'), tensors(), { ...result(hash), logHead: undefined });
  const card = await readFile(join(dir, 'a', 'README.md'), 'utf8');
  t.true(card.includes(`fedit audit FOLDER --key ${'ab'.repeat(32)}`));
  t.true(card.includes('in the rounds this participant saw close'));
  t.true(card.includes('not known to a participant'));
  t.is((await readAdapter(join(dir, 'a'))).metadata.extra?.log_head, undefined);
});

test('an --out that holds files is refused and left as it was', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-result-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'taken');
  await mkdir(out);
  await writeFile(join(out, 'notes.txt'), 'mine');
  const error = await t.throwsAsync(writeFederationAdapter(out, tensors(), result(hashTensors(tensors()))));
  t.regex(error.message, /already holds files/);
  t.deepEqual(await readdir(out), ['notes.txt']);
});
