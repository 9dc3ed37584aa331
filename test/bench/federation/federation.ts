// `npm run bench -- federation ...`: one real coordinator and N participants on loopback, through
// the real protocol and crypto (invites, enrolment, auth, adapter download, signed envelopes,
// sealed chunks, commit, streaming aggregation, the signed round log). Updates are adapter-sized
// (the preset's LoRA shapes, random values near the global adapter); nothing is trained and no
// model is loaded by the participants: this measures the federation's plumbing, not training.
//
// The coordinator runs in its own process (coordinator-worker.ts) so its peak RSS and CPU time are
// its own; the participants share one or a few processes (participant-worker.ts); child.ts runs
// them and reads their JSON lines, round-stats.ts turns each round's lines into numbers. Prints one
// JSON line (--json) or a short report. With --secure, each participant count runs twice, plain
// and with secureAggregation (the participants run the app's secure round: secure-participant.ts),
// and the two are printed side by side (secure-compare.ts).

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  PRESETS,
  loraTensorSpecs,
  randomLlamaTensors,
  writeHfCheckpoint,
  type LoraTarget,
} from '@fedit/kernels';
import { DEFAULT_CHUNK_BYTES, chunkCountFor, serializeSafetensors, tensorFromF32 } from '@fedit/shared';
import { createInvite } from '@fedit/coordinator';
import { initFederationFromModel } from '@fedit/client/operator';
import { Child } from './child.ts';
import type { CoordinatorLine, ParticipantJob, ParticipantLine } from './messages.ts';
import { mb, roundResult, sum } from './round-stats.ts';
import {
  COMPARED_AGGREGATION,
  compare,
  formatComparisons,
  runSummary,
  secureSection,
  type Comparison,
} from './secure-compare.ts';
// Type-only: puts the two worker scripts (run as child processes) under the type check.
import type * as _coordinatorWorker from './coordinator-worker.ts';
import type * as _participantWorker from './participant-worker.ts';

// ---- the base model: only its identity and LoRA shapes matter; written once, cached ---------------

async function baseModel(cache: string, preset: string): Promise<string> {
  const dir = join(cache, `${preset}-hf-random0`);
  // writeHfCheckpoint writes config.json last: its presence means the folder is complete.
  if (!existsSync(join(dir, 'config.json'))) {
    rmSync(dir, { recursive: true, force: true });
    await writeHfCheckpoint(dir, PRESETS[preset], randomLlamaTensors(PRESETS[preset], 0), 'BF16');
  }
  return dir;
}

// ---- the benchmark ------------------------------------------------------------------------------

/** The benchmark's command line, checked, and the update it implies. */
function benchOptions(argv: string[]) {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      // a comma-separated list runs each count in turn
      participants: { type: 'string', default: '200' },
      // run each count twice, plain then with secureAggregation (SecAgg+), and compare
      secure: { type: 'boolean', default: false },
      rank: { type: 'string', default: '16' },
      alpha: { type: 'string' },
      targets: { type: 'string', default: 'q_proj,v_proj' },
      preset: { type: 'string', default: 'smollm2-135m' },
      rounds: { type: 'string', default: '1' },
      procs: { type: 'string', default: String(Math.max(1, availableParallelism() - 1)) },
      'chunk-bytes': { type: 'string', default: String(DEFAULT_CHUNK_BYTES) },
      'enrol-concurrency': { type: 'string', default: '8' },
      // participants yield the CPU to the coordinator, whose work is what is measured
      'participant-nice': { type: 'string', default: '10' },
      // run the coordinator without its hot-path timers (to see what they cost)
      'no-profile': { type: 'boolean', default: false },
      // write a V8 CPU profile of the coordinator process into this folder
      'cpu-prof': { type: 'string' },
      delta: { type: 'string', default: '0.001' },
      cache: { type: 'string', default: join(tmpdir(), 'fedit-bench') },
      keep: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const cfg = PRESETS[a.preset!];
  if (!cfg) throw new Error(`unknown preset ${a.preset}; presets: ${Object.keys(PRESETS).join(', ')}`);
  const counts = a.participants!.split(',').map(Number);
  const n = counts[0];
  const rounds = Number(a.rounds);
  const procs = Math.min(n, Number(a.procs));
  const rank = Number(a.rank);
  const alpha = a.alpha ? Number(a.alpha) : 2 * rank;
  const targets = a.targets!.split(',');
  const chunkBytes = Number(a['chunk-bytes']);
  if (!(counts.every((c) => Number.isSafeInteger(c) && c >= 1) && rounds >= 1 && procs >= 1))
    throw new Error('--participants (whole numbers, comma-separated), --rounds and --procs must be >= 1');
  const specs = loraTensorSpecs(cfg, { rank, alpha, dropout: 0, targets: targets as LoraTarget[] });
  const params = sum(specs.map((s) => s.shape[0] * s.shape[1]));
  // The serialised update's size (what buildUpdate makes: F32 safetensors of these tensors).
  const updateBytes = serializeSafetensors(
    new Map(specs.map((s) => [s.name, tensorFromF32(s.shape, new Float32Array(s.shape[0] * s.shape[1]))])),
  ).byteLength;
  return { a, counts, n, rounds, procs, rank, alpha, targets, chunkBytes, specs, params, updateBytes };
}

type BenchOptions = ReturnType<typeof benchOptions>;

/** The participant processes, each with its share of the invites (they enrol, then take part). */
function startParticipants(
  o: BenchOptions,
  work: string,
  invites: string[],
  secure: boolean,
): Child<ParticipantLine>[] {
  const { a, n, procs, rank, alpha, targets, rounds, chunkBytes } = o;
  const participants: Child<ParticipantLine>[] = [];
  for (let p = 0; p < procs; p++) {
    const first = Math.floor((p * n) / procs);
    const last = Math.floor(((p + 1) * n) / procs);
    const job: ParticipantJob = {
      preset: a.preset!,
      rank,
      alpha,
      targets,
      rounds,
      invites: invites.slice(first, last),
      firstIndex: first,
      homes: join(work, 'homes'),
      chunkBytes,
      enrolConcurrency: Number(a['enrol-concurrency']),
      deltaScale: Number(a.delta),
      secure,
    };
    const jobFile = join(work, `job-${p}.json`);
    writeFileSync(jobFile, JSON.stringify(job));
    const child = new Child<ParticipantLine>(
      `participants ${p}`,
      'participant-worker.ts',
      ['--job', jobFile],
      process.env,
      Number(a['participant-nice']),
    );
    participants.push(child);
  }
  return participants;
}

/** The benchmark's result: settings, machine, update size, each round, the coordinator's totals. */
function benchResult(
  o: BenchOptions,
  setup: { model_and_init: number; enrol: number; connect: number },
  coordinatorLines: CoordinatorLine[],
  coordinator: {
    listening: Extract<CoordinatorLine, { type: 'listening' }>;
    done: Extract<CoordinatorLine, { type: 'done' }>;
  },
  results: Extract<ParticipantLine, { type: 'result' }>[],
) {
  const { a, n, rounds, procs, rank, alpha, targets, chunkBytes, specs, params, updateBytes } = o;
  const { listening, done } = coordinator;
  const ours = results.flatMap((r) => r.rounds);
  const refusedLines = coordinatorLines.filter((l) => l.type === 'refused');
  const roundLines = coordinatorLines.filter((l) => l.type === 'round');
  const perRound = roundLines.map((c) =>
    roundResult(
      c,
      ours.filter((r) => r.round === c.round),
      refusedLines.filter((l) => l.round === c.round).length,
    ),
  );
  const errors = results.flatMap((r) => r.errors);
  const machine = cpus();
  return {
    bench: 'federation',
    preset: a.preset,
    rank,
    alpha,
    targets,
    participants: n,
    rounds,
    participant_processes: procs,
    participant_nice: Number(a['participant-nice']),
    machine: {
      cpus: machine.length,
      cpu: machine[0]?.model,
      memory_gb: totalmem() / 2 ** 30,
      node: process.version,
    },
    adapter: {
      tensors: specs.length,
      params,
      update_bytes: updateBytes,
      chunk_bytes: chunkBytes,
      chunks_per_update: chunkCountFor(updateBytes, chunkBytes),
    },
    setup_s: setup,
    round_results: perRound,
    coordinator: {
      peak_rss_mb: done.resourceUsage.maxRSS / 1024,
      rss_listening_mb: mb(listening.rss),
      sampled_peak_rss_mb: mb(done.peaks.rss),
      peak_heap_mb: mb(done.peaks.heapUsed),
      peak_array_buffers_mb: mb(done.peaks.arrayBuffers),
      cpu_s: (done.cpuUser + done.cpuSystem) / 1e6,
      gc_s: done.gcMs / 1000,
    },
    participant_side: {
      cpu_s: sum(results.map((r) => (r.cpuUser + r.cpuSystem) / 1e6)),
      peak_rss_mb: Math.max(...results.map((r) => r.maxRssKb / 1024)),
    },
    error_count: errors.length,
    errors: errors.slice(0, 10),
  };
}

type BenchResult = ReturnType<typeof benchResult>;

/** The result for people: one block per round, then the totals. */
function formatBench(result: BenchResult, o: BenchOptions): string {
  const { round_results: perRound, errors } = result;
  const { a, n, procs, rank, rounds, targets, specs, updateBytes } = o;
  const { model_and_init: prepareS, enrol: enrolS, connect: connectS } = result.setup_s;
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
  const lines = [
    `federation plumbing, ${a.preset} LoRA r${rank} on ${targets.join(',')}: ${specs.length} tensors, ${f(mb(updateBytes), 2)} MB per update, ${n} participants in ${procs} process(es), ${rounds} round(s)`,
    `  setup: model + init ${f(prepareS)} s, enrolment ${f(enrolS)} s, all connected after ${f(connectS)} s`,
  ];
  for (const r of perRound) {
    lines.push(
      `  round ${r.round}: ${r.outcome}, ${r.updates} updates, wall ${f(r.wall_s, 2)} s (receive ${f(r.receive_s, 2)} s, close ${f(r.close_s, 2)} s)`,
      `    upload ${f(mb(r.upload_bytes))} MB, ${f(r.upload_mb_s)} MB/s over the upload window (${f(r.upload_window_s, 2)} s), ${f(r.upload_mb_s_over_round)} MB/s over the round`,
      `    participant open->committed p50 ${f(r.participant_latency_s.p50, 2)} s, p95 ${f(r.participant_latency_s.p95, 2)} s; phase p50: download ${f(r.participant_phase_p50_s.download, 2)} s, build ${f(r.participant_phase_p50_s.build, 2)} s, upload ${f(r.participant_phase_p50_s.upload, 2)} s`,
      `    coordinator CPU ${f(r.coordinator_cpu_s, 2)} s (${f(100 * r.coordinator_cpu_utilisation, 0)} % of a core); event loop busy ${f(r.loop_busy_s, 2)} s (${f(100 * r.coordinator_event_loop_utilisation, 0)} %): ` +
        Object.entries(r.loop_s)
          .map(([k, v]) => `${k} ${f(v, 2)}`)
          .join(', '),
      `    coordinator RSS at open ${f(r.coordinator_rss_at_open_mb, 0)} MB, peak ${f(r.coordinator_peak_rss_mb, 0)} MB`,
    );
  }
  lines.push(
    `  coordinator peak RSS ${f(result.coordinator.peak_rss_mb, 0)} MB (listening: ${f(result.coordinator.rss_listening_mb, 0)} MB), CPU ${f(result.coordinator.cpu_s, 1)} s in all`,
    `  participant processes: CPU ${f(result.participant_side.cpu_s, 1)} s, peak RSS ${f(result.participant_side.peak_rss_mb, 0)} MB`,
    `  errors: ${result.error_count}${errors.length ? ` (first: ${errors[0]})` : ''}`,
  );
  return lines.join('\n');
}

/** One federation of `o.n` participants, plain or secure: its result and the participants' lines. */
async function runFederation(o: BenchOptions, secure: boolean) {
  const { a, n, rounds, procs, rank, alpha, targets } = o;
  const progress = (m: string) => {
    if (!a.json) process.stderr.write(`${m}\n`);
  };

  const t0 = performance.now();
  mkdirSync(a.cache!, { recursive: true });
  progress(`base model: ${a.preset} shapes, random weights (cached in ${a.cache})`);
  const modelDir = await baseModel(a.cache!, a.preset!);
  const work = mkdtempSync(join(tmpdir(), 'fedit-bench-federation-'));
  const children: { kill(): void; exited: Promise<number> }[] = [];
  try {
    const fedDir = join(work, 'federation');
    await initFederationFromModel(fedDir, {
      modelDir,
      modelName: `${a.preset} (random weights)`,
      seed: 1,
      settings: {
        name: 'federation benchmark',
        lora: { rank, alpha, dropout: 0, targets },
        rounds,
        // every participant in every round; a round opens once all of them are connected
        participantsPerRound: { fraction: 1, minimum: n },
        minUpdates: n,
        roundDeadlineSeconds: 3600,
        // --secure compares like with like: both runs aggregate alike (secure-compare.ts)
        ...(a.secure && { aggregation: COMPARED_AGGREGATION }),
        ...(secure && { secureAggregation: secureSection(n) }),
      },
    });
    const prepareS = (performance.now() - t0) / 1000;

    const coordinator = new Child<CoordinatorLine>(
      'coordinator',
      'coordinator-worker.ts',
      ['--dir', fedDir, ...(a['no-profile'] ? ['--no-profile'] : [])],
      { ...process.env, FEDIT_PROFILE: a['no-profile'] ? '0' : '1' },
      0,
      a['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${a['cpu-prof']}`] : [],
    );
    children.push(coordinator);
    const listening = await coordinator.next('listening');
    const invites = Array.from({ length: n }, (_, i) =>
      createInvite(fedDir, { url: listening.url, note: `bench-${i}` }),
    );

    progress(
      `${secure ? 'secure' : 'plain'} federation: enrolling ${n} participants in ${procs} process(es)`,
    );
    const t1 = performance.now();
    const participants = startParticipants(o, work, invites, secure);
    children.push(...participants);
    await Promise.all(participants.map((c) => c.next('joined')));
    const joinedAt = performance.timeOrigin + performance.now();
    const enrolS = (performance.now() - t1) / 1000;
    progress(`enrolled in ${enrolS.toFixed(1)} s; waiting for ${rounds} round(s)`);

    const firstOpen = await coordinator.next('round-open');
    const connectS = (firstOpen.at - joinedAt) / 1000;
    const done = await coordinator.next('done');
    const results = await Promise.all(participants.map((c) => c.next('result')));
    await Promise.all(children.map((c) => c.exited));

    const setup = { model_and_init: prepareS, enrol: enrolS, connect: connectS };
    const result = benchResult(o, setup, coordinator.lines, { listening, done }, results);
    return { result: { ...result, secure, total_s: (performance.now() - t0) / 1000 }, results };
  } finally {
    for (const c of children) c.kill();
    if (a.keep) process.stderr.write(`kept ${work}\n`);
    else rmSync(work, { recursive: true, force: true });
  }
}

export async function benchFederation(argv: string[]): Promise<void> {
  const base = benchOptions(argv);
  const { a } = base;
  if (!a.secure) {
    if (base.counts.length > 1) throw new Error('several --participants counts need --secure');
    const { result } = await runFederation(base, false);
    process.stdout.write(a.json ? JSON.stringify(result) + '\n' : formatBench(result, base) + '\n');
    return;
  }
  const comparisons: Comparison[] = [];
  const runs = [];
  for (const n of base.counts) {
    const o = { ...base, n, procs: Math.min(n, Number(a.procs)) };
    const plain = await runFederation(o, false);
    const secure = await runFederation(o, true);
    runs.push(plain.result, secure.result);
    const summary = (run: typeof plain) => runSummary(run.result.round_results[0], run.results, n, o.rounds);
    comparisons.push(compare(n, summary(plain), summary(secure)));
    // each count's figures as soon as they are in (a long run of several counts may be stopped)
    process.stderr.write(
      a.json
        ? JSON.stringify({ partial: comparisons.at(-1) }) + '\n'
        : formatComparisons(comparisons.slice(-1), '') + '\n',
    );
  }
  const machine = runs[0].machine;
  const named = `${machine.cpus} x ${machine.cpu}, ${machine.memory_gb.toFixed(0)} GB, node ${machine.node}`;
  if (a.json)
    process.stdout.write(JSON.stringify({ bench: 'federation-secure', machine, comparisons, runs }) + '\n');
  else process.stdout.write(formatComparisons(comparisons, named) + '\n');
}
