// The field types several wire messages share (messages.ts, update-messages.ts): content hashes,
// ids, keys, signatures, chunk indexes, timestamps, display names; each declared once, as a schema
// whose validator and type (Infer) both ends use.
import { SIGNATURE_BYTES, SIGN_PUBLIC_KEY_BYTES } from '../crypto/sign.ts';
import { bytes, fail, int, pattern, refine, text } from '../schema/schema.ts';
import {
  CONTENT_HASH_PATTERN,
  FEDERATION_ID_PATTERN,
  MAX_CHUNK_COUNT,
  MAX_DISPLAY_NAME_LENGTH,
  MAX_TIMESTAMP_MS,
  PARTICIPANT_ID_PATTERN,
  UPLOAD_ID_PATTERN,
} from './limits.ts';

/** `sha256:` followed by 64 lowercase hex digits. */
export type ContentHash = `sha256:${string}`;
/** A participant's id: the fingerprint of its public identity, 32 lowercase hex digits. */
export type ParticipantId = string;
/** An upload's id: its envelope id, `sha256:` + hex of the envelope digest. */
export type UploadId = ContentHash;

export const contentHash = pattern<ContentHash>(
  CONTENT_HASH_PATTERN,
  '"sha256:" followed by 64 lowercase hex digits',
);
export const uploadId = pattern<UploadId>(
  UPLOAD_ID_PATTERN,
  '"sha256:" followed by 64 lowercase hex digits (the envelope id)',
);
export const participantId = pattern<ParticipantId>(
  PARTICIPANT_ID_PATTERN,
  '32 lowercase hex digits (a participant id)',
);
export const federationId = pattern(
  FEDERATION_ID_PATTERN,
  "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
);
export const signKey = bytes(SIGN_PUBLIC_KEY_BYTES);
export const signature = bytes(SIGNATURE_BYTES);
export const chunkIndex = int(0, MAX_CHUNK_COUNT - 1);
export const timestamp = int(0, MAX_TIMESTAMP_MS);
export const displayName = refine(text(1, MAX_DISPLAY_NAME_LENGTH), (name, path) => {
  if (name.trim() !== name) fail('FORMAT', path, `${path} must not start or end with spaces`);
});
