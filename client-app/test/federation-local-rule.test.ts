// The federation's local-training rule reaches each participant's training: with
// training.freezeLoraA in the federation config, a real round (coordinator and two participants on
// loopback) ends with a global adapter whose every lora_A is the round's starting one bit for bit
// (FFA-LoRA: the participants never moved A, and the mean of equal values is that value), while B
// learned; without it, A moves. FedProx's mu rides along in the same settings.

import test, { type ExecutionContext } from 'ava';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensorsFile, tensorToF32 } from '@fedit/shared';
import { aliceAndBob, tinyLoopbackFederation } from './fixtures/loopback.ts';

/** One round of a two-participant federation with these local-training settings; both global adapters. */
async function oneRound(t: ExecutionContext, rule: { freezeLoraA?: boolean; proximalMu?: number }) {
  const fed = await tinyLoopbackFederation(t, { name: 'local rule', training: rule });
  const { recorder } = fed;
  const { homes, run } = await aliceAndBob(fed);
  const results = await run();
  const closed = await recorder.next((e) => e.type === 'round-closed' || e.type === 'round-aborted');
  t.is(closed.type, 'round-closed', JSON.stringify(recorder.events));
  // The participant caches both global adapters by hash: the round's start and its result.
  const final = results[0].history[0].adapterHash!.slice('sha256:'.length);
  const cached = await readdir(join(homes[0], 'adapters'));
  t.is(cached.length, 2);
  const read = async (file: string) => {
    const { tensors } = await readSafetensorsFile(join(homes[0], 'adapters', file));
    return new Map([...tensors].map(([name, tensor]) => [name, tensorToF32(tensor)]));
  };
  return {
    start: await read(cached.find((f) => !f.startsWith(final))!),
    end: await read(`${final}.safetensors`),
  };
}

const changed = (a: Float32Array, b: Float32Array) => a.some((x, i) => x !== b[i]);

test('with freezeLoraA every lora_A of the global adapter survives a round bit for bit while lora_B learns', async (t) => {
  const { start, end } = await oneRound(t, { freezeLoraA: true, proximalMu: 0.1 });
  t.true(start.size > 0);
  for (const [name, before] of start) {
    if (name.includes('lora_A')) t.deepEqual(Array.from(end.get(name)!), Array.from(before), name);
    else t.true(changed(end.get(name)!, before), `${name} learned`);
  }
});

test('without freezeLoraA the round moves lora_A too', async (t) => {
  const { start, end } = await oneRound(t, {});
  const aNames = [...start.keys()].filter((n) => n.includes('lora_A'));
  t.true(aNames.some((name) => changed(end.get(name)!, start.get(name)!)));
});
