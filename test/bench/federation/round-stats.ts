// One round of the federation benchmark in numbers: what the coordinator reported for the round
// (wall clock, CPU, event loop, profile, memory) joined with what the participants measured (upload
// and download bytes, their latency and phases).

import type { CoordinatorLine, ParticipantRound } from './messages.ts';

/** Profile categories (the coordinator's profileSnapshot) grouped for the report. */
const GROUPS: Record<string, string[]> = {
  crypto: ['crypto.open', 'crypto.verify', 'crypto.hash'],
  codec: ['codec.decode', 'codec.encode'],
  validation: ['validate', 'update.check'],
  aggregation: ['update.store', 'aggregate', 'aggregate.store'],
  'upload disk': ['upload.disk'],
  'adapter serving': ['adapter.serve'],
};

export const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
export const mb = (bytes: number) => bytes / 1e6;

export interface RoundResult {
  round: number;
  outcome: string;
  updates: number;
  dropped: number;
  refused: number;
  participant_errors: number;
  wall_s: number;
  receive_s: number;
  close_s: number;
  upload_bytes: number;
  upload_window_s: number;
  upload_mb_s: number;
  upload_mb_s_over_round: number;
  download_bytes: number;
  participant_latency_s: { p50: number; p95: number; max: number };
  /** Medians over the participants of each phase, from 'round:open' arriving to the commit's ack. */
  participant_phase_p50_s: { download: number; build: number; upload: number };
  coordinator_cpu_s: number;
  /** Coordinator CPU per counted update, and upload megabytes per coordinator CPU-second. */
  coordinator_cpu_ms_per_update: number;
  upload_mb_per_coordinator_cpu_s: number;
  coordinator_cpu_user_s: number;
  coordinator_cpu_system_s: number;
  coordinator_cpu_utilisation: number;
  coordinator_event_loop_utilisation: number;
  coordinator_gc_s: number;
  /** Seconds the coordinator's event loop was busy in the round (utilisation × wall). */
  loop_busy_s: number;
  /** That busy time by group of profile categories; 'other' is what no timer covers. */
  loop_s: Record<string, number>;
  /** Per profile category: seconds on the event loop, and calls. */
  profile_s: Record<string, number>;
  profile_calls: Record<string, number>;
  coordinator_rss_at_open_mb: number;
  coordinator_peak_rss_mb: number;
  coordinator_peak_array_buffers_mb: number;
  coordinator_peak_heap_mb: number;
}

export function roundResult(
  c: Extract<CoordinatorLine, { type: 'round' }>,
  ours: ParticipantRound[],
  refused: number,
): RoundResult {
  const ok = ours.filter((r) => !r.error);
  const uploadBytes = sum(ours.map((r) => r.uploadBytes));
  const window =
    (Math.max(...ok.map((r) => r.committedAt)) - Math.min(...ok.map((r) => r.uploadStartAt))) / 1000;
  const wall = (c.closedAt - c.openAt) / 1000;
  const latency = ok.map((r) => (r.committedAt - r.openAt) / 1000);
  const cpu = (c.cpuUser + c.cpuSystem) / 1e6;
  const profileS = Object.fromEntries(Object.entries(c.profile.ns).map(([k, ns]) => [k, ns / 1e9]));
  const busy = c.elu * wall;
  const loopS: Record<string, number> = {};
  for (const [group, cats] of Object.entries(GROUPS)) loopS[group] = sum(cats.map((k) => profileS[k] ?? 0));
  loopS.other = busy - sum(Object.values(loopS));
  return {
    round: c.round,
    outcome: c.outcome,
    updates: c.updates,
    dropped: c.dropped,
    refused,
    participant_errors: ours.length - ok.length,
    wall_s: wall,
    receive_s: (c.lastCountedAt - c.openAt) / 1000,
    close_s: (c.closedAt - c.lastCountedAt) / 1000,
    upload_bytes: uploadBytes,
    upload_window_s: window,
    upload_mb_s: mb(uploadBytes) / window,
    upload_mb_s_over_round: mb(uploadBytes) / wall,
    download_bytes: sum(ours.map((r) => r.downloadBytes)),
    participant_latency_s: {
      p50: quantile(latency, 0.5),
      p95: quantile(latency, 0.95),
      max: Math.max(...latency),
    },
    participant_phase_p50_s: {
      download: quantile(
        ok.map((r) => (r.downloadedAt - r.openAt) / 1000),
        0.5,
      ),
      build: quantile(
        ok.map((r) => (r.builtAt - r.downloadedAt) / 1000),
        0.5,
      ),
      upload: quantile(
        ok.map((r) => (r.committedAt - r.uploadStartAt) / 1000),
        0.5,
      ),
    },
    coordinator_cpu_s: cpu,
    coordinator_cpu_ms_per_update: (1000 * cpu) / c.updates,
    upload_mb_per_coordinator_cpu_s: mb(uploadBytes) / cpu,
    coordinator_cpu_user_s: c.cpuUser / 1e6,
    coordinator_cpu_system_s: c.cpuSystem / 1e6,
    coordinator_cpu_utilisation: cpu / wall,
    coordinator_event_loop_utilisation: c.elu,
    coordinator_gc_s: c.gcMs / 1000,
    loop_busy_s: busy,
    loop_s: loopS,
    profile_s: profileS,
    profile_calls: c.profile.calls,
    coordinator_rss_at_open_mb: mb(c.rssAtOpen),
    coordinator_peak_rss_mb: mb(c.peaks.rss),
    coordinator_peak_array_buffers_mb: mb(c.peaks.arrayBuffers),
    coordinator_peak_heap_mb: mb(c.peaks.heapUsed),
  };
}
