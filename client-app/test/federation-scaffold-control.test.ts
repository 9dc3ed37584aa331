// The participant's SCAFFOLD state (core/federation/control.ts): c_i is zeros before the first
// counted update, c_i+ follows the header's arithmetic bit for bit, a kept c_i+ replaces c_i only
// when adopted (and adopting twice is harmless), and a damaged c_i file is an error naming it, never
// silently reset; the server's c is read from the announced state's "c:" tensors.

import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlName, tensorFromF32, type Tensor } from '@fedit/shared';
import {
  adoptNextControl,
  keepNextControl,
  nextOwnControl,
  readOwnControl,
  scaffoldCorrection,
  serverControl,
  trainedShapes,
} from '../src/core/federation/control.ts';
import { ownControlPath } from '../src/core/federation/store.ts';

const A = 'layers.0.q_proj.lora_A.weight';
const B = 'layers.0.q_proj.lora_B.weight';
const global = new Map<string, Tensor>([
  [
    A,
    tensorFromF32(
      [2, 3],
      Float32Array.from({ length: 6 }, (_, i) => Math.sin(i)),
    ),
  ],
  [
    B,
    tensorFromF32(
      [3, 2],
      Float32Array.from({ length: 6 }, (_, i) => Math.cos(i) / 10),
    ),
  ],
]);
const values = (seed: number) =>
  new Map(
    [A, B].map((n, t) => [
      n,
      Float32Array.from({ length: 6 }, (_, i) => Math.sin(seed * 13 + i + 6 * t) / 3),
    ]),
  );

test("c_i is zeros at first, c_i+ is the header's arithmetic, and it replaces c_i only once adopted", async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'fedit-control-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  const shapes = trainedShapes(global, false);
  t.deepEqual([...trainedShapes(global, true).keys()], [B], 'a frozen A has no control variate');
  const zeros = await readOwnControl(home, 'fed-1', shapes);
  t.deepEqual(
    [...zeros.values()].map((v) => [...v]),
    [new Array(6).fill(0), new Array(6).fill(0)],
  );

  const c = values(1);
  const own = values(2);
  const x = values(3);
  const y = values(4);
  const next = nextOwnControl({ c, own, global: x, trained: y, steps: 10, lr: 0.002 });
  for (const name of [A, B]) {
    const expected = Float32Array.from(own.get(name)!, (ci, j) =>
      Math.fround(ci - c.get(name)![j] + (x.get(name)![j] - y.get(name)![j]) / (10 * 0.002)),
    );
    t.deepEqual(next.get(name), expected, name);
    t.deepEqual(
      scaffoldCorrection(c, own).get(name),
      Float32Array.from(c.get(name)!, (v, j) => v - own.get(name)![j]),
    );
  }

  const roundDir = join(home, 'rounds', 'fed-1', '3');
  await keepNextControl(roundDir, next, shapes);
  t.deepEqual(await readOwnControl(home, 'fed-1', shapes), zeros, 'kept, not yet adopted');
  await adoptNextControl(roundDir, home, 'fed-1');
  t.deepEqual(await readOwnControl(home, 'fed-1', shapes), next);
  await adoptNextControl(roundDir, home, 'fed-1');
  t.deepEqual(await readOwnControl(home, 'fed-1', shapes), next, 'adopting again changes nothing');

  await writeFile(ownControlPath(home, 'fed-1'), 'not safetensors');
  await t.throwsAsync(readOwnControl(home, 'fed-1', shapes), {
    message: new RegExp(`${ownControlPath(home, 'fed-1')} is corrupted: .*remove it`),
  });
});

test("the server's c is the announced state's c: tensors, zeros when none was announced", (t) => {
  const shapes = trainedShapes(global, false);
  t.deepEqual(
    [...serverControl(undefined, shapes).values()].map((v) => v.every((x) => x === 0)),
    [true, true],
  );
  const c = values(5);
  const state = new Map(
    [...c].map(([n, v]) => [controlName(n), tensorFromF32(n === A ? [2, 3] : [3, 2], v)]),
  );
  t.deepEqual(serverControl(state, shapes), c);
  state.delete(controlName(B));
  t.throws(() => serverControl(state, shapes), {
    message: /lacks c:layers\.0\.q_proj\.lora_B\.weight of shape \[3,2\]/,
  });
});
