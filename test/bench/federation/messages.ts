// What the federation benchmark's child processes print: one JSON object per stdout line. Shared
// by the driver (federation.ts) and the two workers so the three agree on the shapes.

/** Nanoseconds and call counts per profile category (coordinator/src/server/profile.ts). */
export interface ProfileCounters {
  ns: Record<string, number>;
  calls: Record<string, number>;
}

/** Peaks of process.memoryUsage() seen by the coordinator's sampler, in bytes. */
export interface MemoryPeaks {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export type CoordinatorLine =
  | { type: 'listening'; url: string; rss: number }
  | { type: 'round-open'; round: number; at: number; selected: number; rss: number }
  | { type: 'refused'; round: number; participant: string; reason: string }
  | {
      type: 'round';
      round: number;
      outcome: 'aggregated' | 'aborted';
      reason?: string;
      updates: number;
      dropped: number;
      openAt: number;
      lastCountedAt: number;
      closedAt: number;
      /** process.cpuUsage() difference over the round, microseconds. */
      cpuUser: number;
      cpuSystem: number;
      /** Main-thread GC pauses during the round, ms. */
      gcMs: number;
      /** performance.eventLoopUtilization() over the round: the fraction of time the loop was busy. */
      elu: number;
      profile: ProfileCounters;
      rssAtOpen: number;
      peaks: MemoryPeaks;
    }
  | {
      type: 'done';
      /** process.resourceUsage() at the end (maxRSS in KiB, times in microseconds). */
      resourceUsage: NodeJS.ResourceUsage;
      cpuUser: number;
      cpuSystem: number;
      gcMs: number;
      profile: ProfileCounters;
      peaks: MemoryPeaks;
    };

/** One participant's round, as its process saw it (epoch ms from performance.timeOrigin + now()). */
export interface ParticipantRound {
  round: number;
  /** 'round:open' arrived. */
  openAt: number;
  downloadedAt: number;
  builtAt: number;
  /** update:begin sent. */
  uploadStartAt: number;
  /** update:commit acknowledged. */
  committedAt: number;
  downloadBytes: number;
  /** Sealed chunk bytes sent (ciphertext + tags). */
  uploadBytes: number;
  /** Everything the participant's requests sent in the round (secure phases too): binary + JSON text. */
  sentBytes?: number;
  /** A secure round's reveal came after the coordinator had closed the phase (the update counted). */
  lateReveal?: boolean;
  chunks: number;
  error?: string;
}

export type ParticipantLine =
  | { type: 'joined'; participants: number; enrolMs: number }
  | {
      type: 'result';
      rounds: ParticipantRound[];
      errors: string[];
      cpuUser: number;
      cpuSystem: number;
      /** process.cpuUsage() from the first 'round:open' this process saw to its last round's end, µs. */
      roundsCpuUs: number;
      maxRssKb: number;
    };

/** The job file the driver writes for each participant process. */
export interface ParticipantJob {
  preset: string;
  rank: number;
  alpha: number;
  targets: string[];
  rounds: number;
  invites: string[];
  /** Index of the first invite's participant, for names and seeds. */
  firstIndex: number;
  homes: string;
  chunkBytes: number;
  enrolConcurrency: number;
  /** Half-width of the uniform noise added to the global adapter (keeps the update norm small). */
  deltaScale: number;
  /** The federation has secureAggregation: take part through the app's secure round. */
  secure: boolean;
}

/** Epoch milliseconds with sub-millisecond precision, comparable across processes. */
export const epochMs = (): number => performance.timeOrigin + performance.now();
