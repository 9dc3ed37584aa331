// `npm run bench -- hostile-frames`: what unauthenticated frames of millions of empty MessagePack
// containers cost a coordinator (issue 12's adversarial finding). An in-process coordinator on
// loopback; an enrolled participant sends `participant:ready` every 5 ms and records each answer's
// latency; then four unauthenticated connections each send one frame at the frame limit (about
// 5.7 MB of 0x90 bytes under an array32 header). Reports the event loop's worst delay, the RSS
// before and after, and the participant's latency percentiles. Client and coordinator share the
// process, so the numbers include the client's own writes.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { MAX_FRAME_BYTES, parseInvite, publicIdentity } from '@fedit/shared';
import { createInvite, openFederationDir, startCoordinator } from '../src/index.ts';
import { FAST_SETTINGS, initInProcess, type Target } from '../test/helpers/federation.ts';
import { Peer } from '../test/helpers/peer.ts';

const FRAMES = 4;

function emptyContainers(count: number): Uint8Array {
  const frame = new Uint8Array(5 + count).fill(0x90);
  frame[0] = 0xdd;
  new DataView(frame.buffer).setUint32(1, count);
  return frame;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

export async function benchHostileFrames(argv: string[]): Promise<void> {
  const root = join(mkdtempSync(join(tmpdir(), 'fedit-bench-edge-')), 'federation');
  try {
    await initInProcess(root, FAST_SETTINGS);
    const coordinator = await startCoordinator({ dir: root, host: '127.0.0.1', port: 0, noRounds: true });
    const { identity, config } = openFederationDir(root);
    const target: Target = {
      url: coordinator.url,
      federation: config.id,
      coordinator: publicIdentity(identity),
      config,
    };
    const honest = await (
      await Peer.connect(target)
    ).join(parseInvite(createInvite(root, { url: coordinator.url })).token, 'honest');
    const attackers = await Promise.all(Array.from({ length: FRAMES }, () => Peer.connect(target)));
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const latencies: number[] = [];
    let running = true;
    const ping = (async () => {
      while (running) {
        const started = performance.now();
        await honest.ready(true);
        latencies.push(performance.now() - started);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 300)); // a baseline of answers first
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const frame = emptyContainers(MAX_FRAME_BYTES - 64);
    for (const peer of attackers)
      (peer.socket.io.engine as unknown as { write(d: Uint8Array): void }).write(frame);
    await Promise.all(attackers.map((p) => p.disconnected));
    await new Promise((r) => setTimeout(r, 300));
    lag.disable();
    const rssAfter = process.memoryUsage().rss;
    running = false;
    await ping;
    honest.close();
    await coordinator.close();
    const sorted = [...latencies].sort((a, b) => a - b);
    const result = {
      frames: FRAMES,
      frameBytes: frame.byteLength,
      worstEventLoopDelayMs: Math.round(lag.max / 1e6),
      rssBeforeMiB: Math.round(rssBefore / 2 ** 20),
      rssAfterMiB: Math.round(rssAfter / 2 ** 20),
      honestRequests: sorted.length,
      honestP50Ms: Math.round(percentile(sorted, 0.5)),
      honestP99Ms: Math.round(percentile(sorted, 0.99)),
      honestMaxMs: Math.round(sorted.at(-1) ?? 0),
    };
    process.stdout.write(
      argv.includes('--json') ? JSON.stringify(result) + '\n' : `${JSON.stringify(result, null, 2)}\n`,
    );
  } finally {
    rmSync(join(root, '..'), { recursive: true, force: true });
  }
}
