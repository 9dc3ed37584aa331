// The main job end to end, as `npm run demo` runs it (fewer rounds): coordinator and participants on
// loopback, the built-in model and non-IID tasks, FedIT rounds, the local-only comparison, the audit.

import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo } from '../src/demo/demo.ts';

test('the demo federation learns, beats every local-only adapter, and its log verifies', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-demo-test-'));
  try {
    const lines: string[] = [];
    const r = await runDemo({ dir, rounds: 10, print: (l) => lines.push(l) });
    t.log(lines.filter((l) => /^\s+\d+ {2}p|^federated|alone|pooled/.test(l)).join('\n'));
    t.is(r.rounds.length, 10);
    t.deepEqual(r.rounds[0].took, ['participant-1', 'participant-2', 'participant-3']);
    t.true(r.baseAccuracy.overall.accuracy <= 0.2);
    t.true(
      r.global.overall.accuracy >= r.rounds[0].accuracy.overall.accuracy + 0.2,
      'accuracy moves across rounds',
    );
    t.true(r.rounds.at(-1)!.heldOutLoss < r.rounds[0].heldOutLoss);
    for (const l of r.localOnly)
      t.true(r.global.overall.accuracy > l.accuracy.overall.accuracy, `${l.name} alone`);
    t.true(r.pooled.overall.accuracy > r.baseAccuracy.overall.accuracy, 'pooled learns too');
    const verdict = lines.find((l) => l.includes('the federated adapter is '));
    const gap = Math.round(100 * r.global.overall.accuracy) - Math.round(100 * r.pooled.overall.accuracy);
    t.regex(
      verdict ?? '',
      new RegExp(gap < 0 ? `${-gap} points below pooled` : 'pooled'),
      'the verdict follows from the numbers',
    );
    t.true(r.auditOk);
    t.true(lines.some((l) => /the log verifies/.test(l)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a participant that fails stops the demo at once, naming it; nothing is left running', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-demo-fail-'));
  try {
    // participant-2's data file cannot be written: a folder is in its place.
    mkdirSync(join(dir, 'participants', 'participant-2', 'data.jsonl'), { recursive: true });
    const lines: string[] = [];
    const err = await t.throwsAsync(runDemo({ dir, rounds: 2, print: (l) => lines.push(l) }), {
      code: 'DEMO_FAILED',
    });
    t.regex(err?.message ?? '', /^participant-2 failed: EISDIR: .*participant-2[/\\]data\.jsonl/);
    t.false(
      lines.some((l) => /participants joined|^round|^\s+\d+ {2}p/.test(l)),
      `stopped before any round: ${lines.join('\n')}`,
    );

    t.is(await coordinatorPort(lines), 'ECONNREFUSED', 'the coordinator it started is closed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an evaluation that fails after a round stops the demo: participants stop, the coordinator closes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-demo-eval-fail-'));
  try {
    const lines: string[] = [];
    // The round's row is printed at the end of its evaluation: failing there fails the evaluation.
    const print = (line: string) => {
      if (/^\s+1 {2}p/.test(line)) throw new Error('the terminal went away');
      lines.push(line);
    };
    await t.throwsAsync(runDemo({ dir, rounds: 1, print }), { message: 'the terminal went away' });
    t.is(await coordinatorPort(lines), 'ECONNREFUSED', 'the coordinator it started is closed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Connects to the coordinator the demo printed; 'ECONNREFUSED' once it is closed. */
async function coordinatorPort(lines: string[]): Promise<string> {
  const url = /coordinator listening on (http:\/\/\S+)/.exec(lines.join('\n'))?.[1];
  if (!url) return `no coordinator line in ${lines.join('\n')}`;
  const { hostname, port } = new URL(url);
  return new Promise<string>((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}
