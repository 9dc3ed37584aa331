// The coordinator side of `npm run bench -- federation`, in its own process so that its peak RSS
// and CPU time are its own: starts the real coordinator (startCoordinator, hot-path timers on) on a
// federation folder and reports on stdout, one JSON line each (messages.ts): where it listens, each
// round (wall times, CPU, timers, memory peaks) and, when the federation's last round has closed,
// process.resourceUsage(). Exits after that.

import { PerformanceObserver, performance, type EventLoopUtilization } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { profileSnapshot, startCoordinator, type CoordinatorEvent } from '@fedit/coordinator';
import { epochMs, type CoordinatorLine, type MemoryPeaks, type ProfileCounters } from './messages.ts';

const { values: a } = parseArgs({
  options: { dir: { type: 'string' }, 'no-profile': { type: 'boolean', default: false } },
});
if (!a.dir) throw new Error('coordinator-worker: --dir <federation folder> is required');

const say = (line: CoordinatorLine) => process.stdout.write(JSON.stringify(line) + '\n');

// Memory: sampled every 25 ms (process.resourceUsage().maxRSS is the kernel's peak, reported too).
const zeroPeaks = (): MemoryPeaks => ({ rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 });
const overall = zeroPeaks();
let roundPeaks = zeroPeaks();
const sample = () => {
  const m = process.memoryUsage();
  for (const peaks of [overall, roundPeaks]) {
    peaks.rss = Math.max(peaks.rss, m.rss);
    peaks.heapUsed = Math.max(peaks.heapUsed, m.heapUsed);
    peaks.external = Math.max(peaks.external, m.external);
    peaks.arrayBuffers = Math.max(peaks.arrayBuffers, m.arrayBuffers);
  }
};
const sampler = setInterval(sample, 25);

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

const diff = (after: ProfileCounters, before: ProfileCounters): ProfileCounters => {
  const out: ProfileCounters = { ns: {}, calls: {} };
  for (const k of Object.keys(after.ns)) {
    out.ns[k] = after.ns[k] - (before.ns[k] ?? 0);
    out.calls[k] = after.calls[k] - (before.calls[k] ?? 0);
  }
  return out;
};

interface RoundStart {
  at: number;
  cpu: NodeJS.CpuUsage;
  gcMs: number;
  profile: ProfileCounters;
  rss: number;
  lastCountedAt: number;
  elu: EventLoopUtilization;
}
let round: RoundStart | undefined;

const onEvent = (e: CoordinatorEvent) => {
  switch (e.type) {
    case 'round-open': {
      sample();
      const rss = process.memoryUsage.rss();
      roundPeaks = zeroPeaks();
      round = {
        at: epochMs(),
        cpu: process.cpuUsage(),
        gcMs,
        profile: profileSnapshot(),
        rss,
        lastCountedAt: 0,
        elu: performance.eventLoopUtilization(),
      };
      say({ type: 'round-open', round: e.round, at: round.at, selected: e.selected.length, rss });
      break;
    }
    case 'update-counted':
      if (round) round.lastCountedAt = epochMs();
      break;
    case 'update-refused':
      say({ type: 'refused', round: e.round, participant: e.participant, reason: e.reason });
      break;
    case 'round-closed':
    case 'round-aborted': {
      if (!round) break;
      sample();
      const closedAt = epochMs();
      const cpu = process.cpuUsage(round.cpu);
      say({
        type: 'round',
        round: e.round,
        outcome: e.type === 'round-closed' ? 'aggregated' : 'aborted',
        reason: e.type === 'round-aborted' ? e.reason : undefined,
        updates: e.type === 'round-closed' ? e.updates : 0,
        dropped: e.type === 'round-closed' ? e.dropped.length : 0,
        openAt: round.at,
        lastCountedAt: round.lastCountedAt,
        closedAt,
        cpuUser: cpu.user,
        cpuSystem: cpu.system,
        gcMs: gcMs - round.gcMs,
        elu: performance.eventLoopUtilization(round.elu).utilization,
        profile: diff(profileSnapshot(), round.profile),
        rssAtOpen: round.rss,
        peaks: { ...roundPeaks },
      });
      round = undefined;
      break;
    }
  }
};

// Every participant connects from loopback: the per-address cap (32 by default, against one host
// holding the coordinator's sockets) would keep all but 32 of them out and the round would never open.
const coordinator = await startCoordinator({
  dir: a.dir,
  profile: !a['no-profile'],
  onEvent,
  maxConnectionsPerAddress: 100_000,
});
say({ type: 'listening', url: coordinator.url, rss: process.memoryUsage.rss() });
await coordinator.finished;
sample();
clearInterval(sampler);
const cpu = process.cpuUsage();
say({
  type: 'done',
  resourceUsage: process.resourceUsage(),
  cpuUser: cpu.user,
  cpuSystem: cpu.system,
  gcMs,
  profile: profileSnapshot(),
  peaks: overall,
});
await coordinator.close();
process.exit(0);
