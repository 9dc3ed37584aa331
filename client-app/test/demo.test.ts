// The main job end to end, as `npm run demo` runs it (fewer rounds): coordinator and participants on
// loopback, the built-in model and non-IID tasks, FedIT rounds, the local-only comparison, the audit.

import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo } from '../src/demo/demo.ts';

test('the demo federation learns, beats every local-only adapter, and its log verifies', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-demo-test-'));
  try {
    const lines: string[] = [];
    const r = await runDemo({ dir, rounds: 4, print: (l) => lines.push(l) });
    t.log(lines.filter((l) => /^\s+\d+ {2}p|^federated|alone/.test(l)).join('\n'));
    t.is(r.rounds.length, 4);
    t.deepEqual(r.rounds[0].took, ['participant-1', 'participant-2', 'participant-3']);
    t.true(r.baseAccuracy.overall.accuracy <= 0.2);
    t.true(
      r.global.overall.accuracy >= r.rounds[0].accuracy.overall.accuracy + 0.2,
      'accuracy moves across rounds',
    );
    t.true(r.rounds.at(-1)!.heldOutLoss < r.rounds[0].heldOutLoss);
    for (const l of r.localOnly)
      t.true(r.global.overall.accuracy > l.accuracy.overall.accuracy, `${l.name} alone`);
    t.true(r.auditOk);
    t.true(lines.some((l) => /the log verifies/.test(l)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
