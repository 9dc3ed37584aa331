// Applying an adapter (eval, chat, generate) checks it against the model at the edge: a PEFT
// adapter made for another model size, for only some layers, or for a module the model lacks is
// refused with a message naming the tensor, before any graph is built.

import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loraTensorSpecs, PRESETS, type LoraConfig } from '@fedit/kernels';
import { tensorFromF32, writeAdapter } from '@fedit/shared';
import { writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { fedit } from '../../test/fixtures/fedit-cli.ts';
import { openChatSession } from '../src/core/index.ts';

const lora: LoraConfig = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] };
// The tiny model's shape; the adapters below are written for it, then broken one way each.
const specs = loraTensorSpecs(PRESETS.tiny, lora);

function adapterTensors(edit: (name: string, shape: number[]) => number[] | undefined) {
  const tensors = new Map<string, ReturnType<typeof tensorFromF32>>();
  for (const s of specs) {
    const shape = edit(s.name, s.shape);
    if (shape) tensors.set(s.name, tensorFromF32(shape, new Float32Array(shape[0] * shape[1]).fill(0.01)));
  }
  return tensors;
}

async function setup(t: { teardown: (f: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-adapter-apply-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const modelDir = await writeTinyChatModel(join(dir, 'model'));
  const write = async (name: string, tensors: ReturnType<typeof adapterTensors>) => {
    const out = join(dir, name);
    await writeAdapter(out, {
      config: { rank: lora.rank, alpha: lora.alpha, targetModules: lora.targets },
      tensors,
    });
    return out;
  };
  return { dir, modelDir, write };
}

test('an adapter that fits the model is applied', async (t) => {
  const { modelDir, write } = await setup(t);
  const adapterDir = await write(
    'fits',
    adapterTensors((_, shape) => shape),
  );
  const session = await openChatSession({ modelDir, adapterDir, threads: 1 });
  await session.close();
  t.pass();
});

test('an adapter for a wider model is refused, naming the module and both shapes', async (t) => {
  const { modelDir, write } = await setup(t);
  // in_features 128 instead of the tiny model's hidden size 64: a bigger model's adapter
  const adapterDir = await write(
    'wider',
    adapterTensors((name, [r, c]) => (name.includes('lora_A') ? [r, c * 2] : [r, c])),
  );
  const err = await t.throwsAsync(openChatSession({ modelDir, adapterDir, threads: 1 }));
  t.regex(err!.message, /adapts model\.layers\.0\.self_attn\.q_proj as 128 -> \d+ features/);
  t.regex(err!.message, /trained for another model/);
});

test('an adapter of only some layers is refused for direct use and pointed at export --merge', async (t) => {
  const { modelDir, write } = await setup(t);
  const adapterDir = await write(
    'layer0-only',
    adapterTensors((name, shape) => (name.includes('layers.1.') ? undefined : shape)),
  );
  const err = await t.throwsAsync(openChatSession({ modelDir, adapterDir, threads: 1 }));
  t.is((err as { code?: string }).code, 'ADAPTER_MISMATCH');
  t.regex(err!.message, /no q_proj LoRA for layer 1/);
  t.regex(err!.message, /fedit export --merge/);
});

test('an adapter for a layer the model lacks is refused', async (t) => {
  const { modelDir, write } = await setup(t);
  const tensors = adapterTensors((_, shape) => shape);
  for (const [name, tensor] of [...tensors])
    if (name.includes('layers.1.')) tensors.set(name.replace('layers.1.', 'layers.7.'), tensor);
  const adapterDir = await write('extra-layer', tensors);
  const err = await t.throwsAsync(openChatSession({ modelDir, adapterDir, threads: 1 }));
  t.regex(err!.message, /model\.layers\.7\.self_attn\.q_proj, but the base model has no such linear layer/);
});

test('fedit eval with a mismatched adapter prints the reason, no stack trace', async (t) => {
  const { dir, modelDir, write } = await setup(t);
  const adapterDir = await write(
    'layer0-only',
    adapterTensors((name, shape) => (name.includes('layers.1.') ? undefined : shape)),
  );
  const data = join(dir, 'data.jsonl');
  writeFileSync(data, JSON.stringify({ instruction: 'Say hi', output: 'hi' }) + '\n');
  const r = await fedit('eval', '--model', modelDir, '--adapter', adapterDir, '--data', data);
  t.not(r.code, 0);
  t.regex(r.stderr, /no q_proj LoRA for layer 1/);
  t.notRegex(r.stderr, /^\s+at /m, 'no stack trace');
});
