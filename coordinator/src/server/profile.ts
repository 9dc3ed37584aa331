// Optional, cheap timers on the coordinator's hot paths, for `npm run bench -- federation`. Off
// unless FEDIT_PROFILE=1 is set or startCoordinator is given `profile: true`; when off, a timed call
// costs one boolean test, and when on, two hrtime reads. Per category: cumulative time in
// `profile.ns` (nanoseconds of the event loop's thread inside the timed calls: its CPU time, unless
// other processes take the core away meanwhile) and the number of timed calls in `profile.calls`.
// (process.cpuUsage() around each call was tried and dropped: at ~100 µs a call under load, it
// cost more than some of what it measured.)
//
// Categories (what the coordinator does, on its main thread):
//   codec.decode    MessagePack decoding of every incoming frame (socket.io parser)
//   codec.encode    MessagePack encoding of every outgoing frame (acks, adapter chunks, broadcasts)
//   validate        validateClientPayload of every request
//   crypto.verify   Ed25519 verification: auth proofs, enrolments, envelopes
//   crypto.hash     the check of every sealed chunk against its envelope (size, SHA-256 in transit)
//   crypto.open     AES-256-GCM opening of sealed chunks (openChunk)
//   upload.disk     writing opened chunks to the upload folder, reading them back at commit
//   update.check    the admission rules at commit: the payload's one SHA-256, parsing the
//                   safetensors and checking its layout, float32 conversion, finiteness, update norm
//   update.store    BlobStore.put of each counted update (hash + serialise; the fsync wait is not CPU
//                   and is left out: only the synchronous part of the call is timed)
//   aggregate       aggregateContributions at round close (includes aggregate.load)
//   aggregate.load  loading each counted update back from the blob store (read, parse, hash check)
//   aggregate.store BlobStore.put of the new global adapter (synchronous part)
//   adapter.serve   'adapter:get': reading the requested chunk of the adapter file

import { msgpackParser, type Packet } from '@fedit/shared';

export interface CoordinatorProfile {
  enabled: boolean;
  ns: Record<string, number>;
  calls: Record<string, number>;
}

export const profile: CoordinatorProfile = {
  enabled: process.env.FEDIT_PROFILE === '1',
  ns: {},
  calls: {},
};

type Start = bigint;

const begin = (): Start => process.hrtime.bigint();

function add(category: string, start: Start): void {
  profile.ns[category] = (profile.ns[category] ?? 0) + Number(process.hrtime.bigint() - start);
  profile.calls[category] = (profile.calls[category] ?? 0) + 1;
}

/** Runs `fn`, adding its time to `category` when profiling is on. */
export function timed<T>(category: string, fn: () => T): T {
  if (!profile.enabled) return fn();
  const start = begin();
  try {
    return fn();
  } finally {
    add(category, start);
  }
}

/** Starts timing `category`; the returned function stops it (a no-op when profiling is off). */
export function startTimer(category: string): () => void {
  if (!profile.enabled) return () => {};
  const start = begin();
  return () => add(category, start);
}

/** A copy of the counters, for differences between two moments. */
export function profileSnapshot(): Omit<CoordinatorProfile, 'enabled'> {
  return { ns: { ...profile.ns }, calls: { ...profile.calls } };
}

class ProfiledEncoder extends msgpackParser.Encoder {
  override encode(packet: Packet): Uint8Array[] {
    return timed('codec.encode', () => super.encode(packet));
  }
}

class ProfiledDecoder extends msgpackParser.Decoder {
  #start: Start | undefined;

  override add(frame: unknown): void {
    this.#start = begin();
    try {
      super.add(frame);
    } finally {
      this.#start = undefined;
    }
  }

  // add() emits 'decoded' synchronously and socket.io runs the event's handler inside that emit:
  // stop the clock there, so only the decoding is counted.
  override emit(event: 'decoded', packet: Packet): boolean {
    if (this.#start !== undefined) {
      add('codec.decode', this.#start);
      this.#start = undefined;
    }
    return super.emit(event, packet);
  }
}

/** The socket.io parser with both halves timed (same wire format as msgpackParser). */
export const profiledParser = { ...msgpackParser, Encoder: ProfiledEncoder, Decoder: ProfiledDecoder };
