// The compiled-graph files createSession keeps beside the weights (ORT resolves external data
// relative to them): written atomically, and never trusted when a crash tore one.

import test from 'ava';
import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildForwardGraph } from '../src/generate/graph.ts';
import { serializeModel } from '../src/onnx/serialize.ts';
import { createSession } from '../src/runtime/session.ts';
import { tinyModel } from './helpers/tiny.ts';

/** The one graph file in `dir`. */
function graphFile(dir: string): string {
  const files = readdirSync(dir).filter((n) => n.endsWith('.onnx'));
  if (files.length !== 1) throw new Error(`expected one .onnx file in ${dir}, found ${files.join(', ')}`);
  return join(dir, files[0]);
}

test('a graph file already in place is reused, not written again', async (t) => {
  const m = await tinyModel({}, { seed: 30 });
  try {
    const graph = buildForwardGraph(m.config, m.store);
    const warnings: string[] = [];
    await (await createSession(graph, { modelDir: m.store.dir })).release();
    const path = graphFile(m.store.dir);
    const written = statSync(path).mtimeMs;
    await new Promise((r) => setTimeout(r, 30));
    const again = await createSession(graph, { modelDir: m.store.dir, onWarning: (w) => warnings.push(w) });
    await again.release();
    t.is(statSync(path).mtimeMs, written);
    t.deepEqual(warnings, []);
  } finally {
    m.cleanup();
  }
});

const torn: [string, (path: string, size: number) => void][] = [
  ['an empty', (path) => truncateSync(path, 0)],
  ['a truncated', (path, size) => truncateSync(path, Math.floor(size / 2))],
  // the right size but not the right bytes: a power loss can leave blocks of zeros
  ['a zeroed', (path, size) => writeFileSync(path, new Uint8Array(size))],
];

for (const [state, damage] of torn) {
  test(`${state} graph file (a crash while writing it) is written again, with a warning naming it`, async (t) => {
    const m = await tinyModel({}, { seed: 31 });
    try {
      const graph = buildForwardGraph(m.config, m.store);
      await (await createSession(graph, { modelDir: m.store.dir })).release();
      const path = graphFile(m.store.dir);
      const good = readFileSync(path);
      damage(path, good.length);
      const warnings: string[] = [];
      const session = await createSession(graph, {
        modelDir: m.store.dir,
        onWarning: (w) => warnings.push(w),
      });
      t.true(session.inputNames.length > 0);
      await session.release();
      t.true(readFileSync(path).equals(good), 'the graph file holds the graph again');
      t.is(warnings.length, 1);
      t.true(warnings[0].includes(path));
      t.deepEqual(
        readdirSync(m.store.dir).filter((n) => n.endsWith('.tmp')),
        [],
      );
    } finally {
      m.cleanup();
    }
  });
}

test('sessions of one graph created at once share one whole graph file and leave no temporary files', async (t) => {
  const m = await tinyModel({}, { seed: 32 });
  try {
    const graph = buildForwardGraph(m.config, m.store);
    const warnings: string[] = [];
    const sessions = await Promise.all(
      [1, 2, 3].map(() =>
        createSession(graph, { modelDir: m.store.dir, onWarning: (w) => warnings.push(w) }),
      ),
    );
    for (const s of sessions) await s.release();
    const path = graphFile(m.store.dir);
    t.true(readFileSync(path).equals(serializeModel(graph)), 'the file holds exactly the graph');
    t.deepEqual(warnings, []);
    t.deepEqual(
      readdirSync(m.store.dir).filter((n) => n.endsWith('.tmp')),
      [],
    );
  } finally {
    m.cleanup();
  }
});
