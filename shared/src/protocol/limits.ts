// Sizes and ranges of the wire protocol, in one place so client, coordinator and validators agree.

/** Version of the message set in messages.ts; sent in 'auth:hello'. */
export const PROTOCOL_VERSION = 1;

/** Largest plaintext chunk of an upload or adapter download (sealed chunks add 16 bytes). */
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024;
/** Smallest chunk size an envelope may declare (the last chunk may be shorter). */
export const MIN_CHUNK_BYTES = 1024;
/** Chunk size a client uses unless configured otherwise. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/**
 * The socket.io `maxHttpBufferSize` both ends must allow: the largest chunk plus room for the
 * rest of the message, grown by a third because the HTTP long-polling transport carries binary
 * frames as base64. socket.io's default (1e6 bytes) is smaller, and a frame over the limit drops
 * the connection with a bare "transport error".
 */
export const MAX_FRAME_BYTES = Math.ceil(((MAX_CHUNK_BYTES + 64 * 1024) * 4) / 3) + 1024;
/**
 * Largest frame a coordinator accepts on a connection that has not authenticated yet: auth:prove
 * and enrol (the only requests that connection can make) are a few hundred bytes.
 */
export const PRE_AUTH_MAX_FRAME_BYTES = 16 * 1024;
/** Largest serialised update an envelope may announce (16 GiB). */
export const MAX_PAYLOAD_BYTES = 16 * 1024 ** 3;
/** Most chunks one upload or download may have. */
export const MAX_CHUNK_COUNT = 1 << 20;
/** Largest example count a participant may claim for one round. */
export const MAX_EXAMPLE_COUNT = 1_000_000_000;
/** Largest round number. */
export const MAX_ROUND = 2 ** 32 - 1;
/** Most tensors an update may hold (7 LoRA targets × 2 factors × 700 layers). */
export const MAX_TENSORS = 10_000;
/** Longest tensor name, in UTF-16 code units (PEFT names run to ~80). */
export const MAX_TENSOR_NAME_LENGTH = 512;
/** Most dimensions of a tensor. */
export const MAX_TENSOR_RANK = 8;
/** Largest single dimension. */
export const MAX_TENSOR_DIM = 2 ** 31 - 1;
/** Longest participant display name, in characters. */
export const MAX_DISPLAY_NAME_LENGTH = 64;
/** Most participants a round may select. */
export const MAX_SELECTED = 100_000;
/** Longest coordinator URL in an invite. */
export const MAX_URL_LENGTH = 2048;
/** Longest error message or code carried by an 'error' event or a failed ack. */
export const MAX_ERROR_MESSAGE_LENGTH = 2000;
/**
 * Longest round deadline, in seconds (366 days). The coordinator's timers wait in steps
 * (coordinator/src/server/timers.ts), so any deadline is honoured; the bound keeps a typo
 * (a deadline in milliseconds) from leaving a round open for ever, and `now + deadline` a valid
 * date.
 */
export const MAX_ROUND_DEADLINE_SECONDS = 366 * 24 * 3600;
/** Latest timestamp accepted (ms since the epoch): the largest valid JavaScript Date. */
export const MAX_TIMESTAMP_MS = 8.64e15;

/** A federation id: 1-64 characters, letters, digits, '.', '_' and '-', starting with a letter or digit. */
export const FEDERATION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A participant id: the 32-hex-digit fingerprint of its public identity. */
export const PARTICIPANT_ID_PATTERN = /^[0-9a-f]{32}$/;
/** A content hash: `sha256:` and 64 lowercase hex digits. */
export const CONTENT_HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;
/** An upload id: the envelope id, a content hash. */
export const UPLOAD_ID_PATTERN = CONTENT_HASH_PATTERN;

/** Number of chunks `payloadBytes` bytes make in chunks of `chunkBytes` (at least one). */
export function chunkCountFor(payloadBytes: number, chunkBytes: number): number {
  return Math.max(1, Math.ceil(payloadBytes / chunkBytes));
}

/** Plaintext bytes of chunk `index`: `chunkBytes` for all but the last, the remainder for it. */
export function chunkPlaintextBytes(payloadBytes: number, chunkBytes: number, index: number): number {
  return Math.max(0, Math.min(chunkBytes, payloadBytes - index * chunkBytes));
}
/**
 * Most held-out examples one participant's figures may describe: the slice it never trains on is
 * min(10% of its examples, 32) (client-app's data preparation), so 32 bounds every honest report.
 */
export const MAX_HELD_OUT_EXAMPLES = 32;
/** Largest held-out mean loss, in micronats (100 nats: far above any language model's loss). */
export const MAX_HELD_OUT_LOSS_MICRONATS = 100_000_000;
