// Validators of every wire payload (protocol/validate.ts): each malformed case names its field.
import test, { type ExecutionContext } from 'ava';
import {
  ackError,
  CLIENT_EVENTS,
  CLIENT_PAYLOAD_VALIDATORS,
  CryptoError,
  checkChunkAgainstEnvelope,
  FeditError,
  generateIdentity,
  MAX_CHUNK_BYTES,
  ProtocolError,
  SERVER_EVENTS,
  SERVER_PAYLOAD_VALIDATORS,
  sha256,
  sha256Hash,
  signEnvelope,
  toWireError,
  validateAck,
  validateAdapterGet,
  validateAuthHello,
  validateAuthProve,
  validateClientPayload,
  validateEnrolRequest,
  validateRoundClosed,
  validateRoundOpen,
  validateUpdateBegin,
  validateUpdateChunk,
  validateUpdateCommit,
  validateWireError,
  type ClientEventName,
  type UpdateEnvelope,
} from '@fedit/shared';

const identity = generateIdentity(new Uint8Array(32).fill(4));
const HASH = sha256Hash(new Uint8Array(1));
const UPLOAD = sha256Hash(new Uint8Array(2));

function makeEnvelope(): UpdateEnvelope {
  return {
    version: 1,
    federation: 'support-tickets',
    round: 3,
    participant: identity.sign.publicKey,
    globalAdapterHash: HASH,
    exampleCount: 1200,
    tensorSchema: [
      {
        name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
        shape: [8, 576],
        dtype: 'F32',
      },
      {
        name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
        shape: [576, 8],
        dtype: 'F32',
      },
    ],
    payloadHash: HASH,
    // 3 MiB + 5 bytes in 1 MiB chunks: 4 chunks, the last of 5 bytes.
    payloadBytes: 3 * 1024 * 1024 + 5,
    chunkBytes: 1024 * 1024,
    chunkCount: 4,
    createdAt: Date.UTC(2026, 2, 1),
  };
}

type Validator = (payload: unknown) => unknown;

/** Each case: a change to a valid payload, the field path expected in the error, and its code. */
type Case = [string, (valid: Record<string, unknown>) => unknown, string, string];

function checkCases(
  t: ExecutionContext,
  validate: Validator,
  valid: Record<string, unknown>,
  cases: Case[],
): void {
  t.notThrows(() => validate(structuredClone(valid)), 'the valid payload passes');
  for (const [what, mutate, field, code] of cases) {
    const error = t.throws(
      () => validate(mutate(structuredClone(valid))),
      { instanceOf: ProtocolError },
      what,
    );
    if (!error) continue;
    t.is(error.field, field, what);
    t.is<string, string>(error.code, code, `${what}: ${error.message}`);
    t.true(error.message.startsWith(field), `${what}: message names the field: ${error.message}`);
  }
}

const set = (path: string, value: unknown) => (payload: Record<string, unknown>) => {
  const keys = path.split('.');
  let target = payload as Record<string, unknown>;
  for (const key of keys.slice(0, -1)) target = target[key] as Record<string, unknown>;
  if (value === undefined) delete target[keys[keys.length - 1]];
  else target[keys[keys.length - 1]] = value;
  return payload;
};

test('auth:prove', (t) => {
  checkCases(t, validateAuthProve, { participant: new Uint8Array(32), signature: new Uint8Array(64) }, [
    ['missing participant', set('participant', undefined), 'payload.participant', 'PROTOCOL_MISSING'],
    ['short key', set('participant', new Uint8Array(31)), 'payload.participant', 'PROTOCOL_RANGE'],
    ['key as text', set('participant', 'AAAA'), 'payload.participant', 'PROTOCOL_TYPE'],
    ['long signature', set('signature', new Uint8Array(65)), 'payload.signature', 'PROTOCOL_RANGE'],
    ['extra field', set('admin', true), 'payload.admin', 'PROTOCOL_UNKNOWN_FIELD'],
    ['not a map', () => [1], 'payload', 'PROTOCOL_TYPE'],
    ['nothing', () => undefined, 'payload', 'PROTOCOL_MISSING'],
  ]);
});

test('enrol', (t) => {
  const valid = {
    token: new Uint8Array(32),
    identity: { sign: new Uint8Array(32), box: new Uint8Array(32) },
    displayName: 'Clinic Nord',
    signature: new Uint8Array(64),
  };
  checkCases(t, validateEnrolRequest, valid, [
    ['short token', set('token', new Uint8Array(16)), 'payload.token', 'PROTOCOL_RANGE'],
    ['no identity', set('identity', undefined), 'payload.identity', 'PROTOCOL_MISSING'],
    ['short box key', set('identity.box', new Uint8Array(3)), 'payload.identity.box', 'PROTOCOL_RANGE'],
    [
      'identity extra',
      set('identity.ed', new Uint8Array(32)),
      'payload.identity.ed',
      'PROTOCOL_UNKNOWN_FIELD',
    ],
    ['empty name', set('displayName', ''), 'payload.displayName', 'PROTOCOL_RANGE'],
    ['long name', set('displayName', 'x'.repeat(65)), 'payload.displayName', 'PROTOCOL_RANGE'],
    ['control char', set('displayName', 'a\nb'), 'payload.displayName', 'PROTOCOL_FORMAT'],
    ['padded name', set('displayName', ' a '), 'payload.displayName', 'PROTOCOL_FORMAT'],
    ['lone surrogate', set('displayName', 'a\uD800'), 'payload.displayName', 'PROTOCOL_FORMAT'],
    ['name as number', set('displayName', 5), 'payload.displayName', 'PROTOCOL_TYPE'],
    ['no signature', set('signature', undefined), 'payload.signature', 'PROTOCOL_MISSING'],
  ]);
});

test('adapter:get', (t) => {
  checkCases(t, validateAdapterGet, { hash: HASH, index: 0 }, [
    ['uppercase hash', set('hash', HASH.toUpperCase()), 'payload.hash', 'PROTOCOL_FORMAT'],
    ['bare hex hash', set('hash', HASH.slice(7)), 'payload.hash', 'PROTOCOL_FORMAT'],
    ['negative index', set('index', -1), 'payload.index', 'PROTOCOL_RANGE'],
    ['fractional index', set('index', 0.5), 'payload.index', 'PROTOCOL_TYPE'],
    ['index as text', set('index', '0'), 'payload.index', 'PROTOCOL_TYPE'],
    ['huge index', set('index', 2 ** 40), 'payload.index', 'PROTOCOL_RANGE'],
  ]);
});

test('update:begin validates every envelope field', (t) => {
  const signed = signEnvelope(makeEnvelope(), identity) as unknown as Record<string, unknown>;
  const name = (i: number) => `envelope.tensorSchema[${i}]`;
  checkCases(t, validateUpdateBegin, { envelope: signed }, [
    ['no envelope', () => ({}), 'envelope', 'PROTOCOL_MISSING'],
    ['version 2', set('envelope.version', 2), 'envelope.version', 'PROTOCOL_RANGE'],
    ['no version', set('envelope.version', undefined), 'envelope.version', 'PROTOCOL_MISSING'],
    ['bad federation', set('envelope.federation', 'a b'), 'envelope.federation', 'PROTOCOL_FORMAT'],
    ['negative round', set('envelope.round', -1), 'envelope.round', 'PROTOCOL_RANGE'],
    ['float round', set('envelope.round', 1.5), 'envelope.round', 'PROTOCOL_TYPE'],
    [
      'short participant',
      set('envelope.participant', new Uint8Array(16)),
      'envelope.participant',
      'PROTOCOL_RANGE',
    ],
    [
      'bad adapter hash',
      set('envelope.globalAdapterHash', 'sha256:xyz'),
      'envelope.globalAdapterHash',
      'PROTOCOL_FORMAT',
    ],
    ['zero examples', set('envelope.exampleCount', 0), 'envelope.exampleCount', 'PROTOCOL_RANGE'],
    ['too many examples', set('envelope.exampleCount', 1e9 + 1), 'envelope.exampleCount', 'PROTOCOL_RANGE'],
    ['fractional examples', set('envelope.exampleCount', 10.5), 'envelope.exampleCount', 'PROTOCOL_TYPE'],
    ['NaN examples', set('envelope.exampleCount', Number.NaN), 'envelope.exampleCount', 'PROTOCOL_TYPE'],
    ['empty schema', set('envelope.tensorSchema', []), 'envelope.tensorSchema', 'PROTOCOL_RANGE'],
    ['schema not a list', set('envelope.tensorSchema', {}), 'envelope.tensorSchema', 'PROTOCOL_TYPE'],
    [
      'unsorted names',
      (p) => {
        const e = p.envelope as { tensorSchema: unknown[] };
        e.tensorSchema.reverse();
        return p;
      },
      `${name(1)}.name`,
      'PROTOCOL_INCONSISTENT',
    ],
    [
      'duplicate names',
      (p) => {
        const e = p.envelope as { tensorSchema: unknown[] };
        e.tensorSchema[1] = e.tensorSchema[0];
        return p;
      },
      `${name(1)}.name`,
      'PROTOCOL_INCONSISTENT',
    ],
    ['empty name', set('envelope.tensorSchema.0.name', ''), `${name(0)}.name`, 'PROTOCOL_RANGE'],
    ['zero dim', set('envelope.tensorSchema.0.shape', [8, 0]), `${name(0)}.shape[1]`, 'PROTOCOL_RANGE'],
    [
      'rank 9',
      set('envelope.tensorSchema.0.shape', new Array(9).fill(1)),
      `${name(0)}.shape`,
      'PROTOCOL_RANGE',
    ],
    ['I64 dtype', set('envelope.tensorSchema.1.dtype', 'I64'), `${name(1)}.dtype`, 'PROTOCOL_FORMAT'],
    ['no dtype', set('envelope.tensorSchema.1.dtype', undefined), `${name(1)}.dtype`, 'PROTOCOL_MISSING'],
    [
      'tensor extra',
      set('envelope.tensorSchema.1.values', []),
      `${name(1)}.values`,
      'PROTOCOL_UNKNOWN_FIELD',
    ],
    ['bad payload hash', set('envelope.payloadHash', 7), 'envelope.payloadHash', 'PROTOCOL_TYPE'],
    ['zero payload', set('envelope.payloadBytes', 0), 'envelope.payloadBytes', 'PROTOCOL_RANGE'],
    ['huge chunks', set('envelope.chunkBytes', MAX_CHUNK_BYTES + 1), 'envelope.chunkBytes', 'PROTOCOL_RANGE'],
    ['tiny chunks', set('envelope.chunkBytes', 16), 'envelope.chunkBytes', 'PROTOCOL_RANGE'],
    ['wrong count', set('envelope.chunkCount', 3), 'envelope.chunkCount', 'PROTOCOL_INCONSISTENT'],
    ['zero count', set('envelope.chunkCount', 0), 'envelope.chunkCount', 'PROTOCOL_RANGE'],
    ['negative time', set('envelope.createdAt', -5), 'envelope.createdAt', 'PROTOCOL_RANGE'],
    [
      'short signature',
      set('envelope.signature', new Uint8Array(63)),
      'envelope.signature',
      'PROTOCOL_RANGE',
    ],
    ['extra field', set('envelope.weights', 1), 'envelope.weights', 'PROTOCOL_UNKNOWN_FIELD'],
    ['payload extra', set('resume', true), 'payload.resume', 'PROTOCOL_UNKNOWN_FIELD'],
  ]);
});

test('update:chunk and update:commit', (t) => {
  const valid = { uploadId: UPLOAD, index: 2, data: new Uint8Array(100), sha256: new Uint8Array(32) };
  checkCases(t, validateUpdateChunk, valid, [
    ['bad upload id', set('uploadId', 'abc'), 'payload.uploadId', 'PROTOCOL_FORMAT'],
    ['negative index', set('index', -1), 'payload.index', 'PROTOCOL_RANGE'],
    ['shorter than a tag', set('data', new Uint8Array(15)), 'payload.data', 'PROTOCOL_RANGE'],
    ['too big', set('data', new Uint8Array(MAX_CHUNK_BYTES + 17)), 'payload.data', 'PROTOCOL_RANGE'],
    ['data as list', set('data', [1, 2]), 'payload.data', 'PROTOCOL_TYPE'],
    ['short checksum', set('sha256', new Uint8Array(20)), 'payload.sha256', 'PROTOCOL_RANGE'],
  ]);
  checkCases(t, validateUpdateCommit, { uploadId: UPLOAD }, [
    ['no id', () => ({}), 'payload.uploadId', 'PROTOCOL_MISSING'],
    ['extra', set('force', true), 'payload.force', 'PROTOCOL_UNKNOWN_FIELD'],
  ]);
});

test('a chunk is checked against its envelope: index, exact sealed length and checksum', (t) => {
  const envelope = makeEnvelope();
  const chunk = (index: number, length: number) => {
    const data = new Uint8Array(length);
    return { uploadId: UPLOAD, index, data, sha256: sha256(data) };
  };
  t.notThrows(() => checkChunkAgainstEnvelope(envelope, chunk(0, 1024 * 1024 + 16)));
  t.notThrows(() => checkChunkAgainstEnvelope(envelope, chunk(3, 5 + 16)));
  t.like(
    t.throws(() => checkChunkAgainstEnvelope(envelope, chunk(4, 21)), { instanceOf: ProtocolError }),
    {
      code: 'PROTOCOL_RANGE',
      field: 'payload.index',
    },
  );
  t.like(
    t.throws(() => checkChunkAgainstEnvelope(envelope, chunk(3, 1024 * 1024 + 16)), {
      instanceOf: ProtocolError,
    }),
    {
      code: 'PROTOCOL_INCONSISTENT',
      field: 'payload.data',
    },
  );
  const corrupted = { ...chunk(3, 21), sha256: new Uint8Array(32) };
  const error = t.throws(() => checkChunkAgainstEnvelope(envelope, corrupted), { instanceOf: ProtocolError });
  t.is(error.field, 'payload.sha256');
  t.regex(error.message, /corrupted in transit; send it again/);
});

test('every client event has a validator, and unknown events are refused', (t) => {
  t.deepEqual(Object.keys(CLIENT_PAYLOAD_VALIDATORS).sort(), [...CLIENT_EVENTS].sort());
  t.deepEqual(Object.keys(SERVER_PAYLOAD_VALIDATORS).sort(), [...SERVER_EVENTS].sort());
  t.deepEqual(validateClientPayload('update:commit', { uploadId: UPLOAD }), { uploadId: UPLOAD });
  for (const event of ['hack', '__proto__', 'constructor']) {
    t.like(
      t.throws(() => validateClientPayload(event as ClientEventName, {}), { instanceOf: ProtocolError }),
      {
        code: 'PROTOCOL_UNKNOWN_EVENT',
      },
    );
  }
});

test('validators return fresh objects holding only protocol fields', (t) => {
  const input = { participant: Buffer.alloc(32), signature: Buffer.alloc(64) };
  const output = validateAuthProve(input);
  t.not(output as unknown, input);
  t.is(output.participant.constructor, Uint8Array);
});

test('server payloads: auth:hello, round:open, round:closed, error', (t) => {
  checkCases(t, validateAuthHello, { protocol: 1, federation: 'f', nonce: new Uint8Array(32) }, [
    ['short nonce', set('nonce', new Uint8Array(8)), 'payload.nonce', 'PROTOCOL_RANGE'],
    ['protocol 0', set('protocol', 0), 'payload.protocol', 'PROTOCOL_RANGE'],
  ]);
  // Round events carry a signed round record: here only an object; the log's parser and the
  // signature check read it (rounds/announcement.ts, announcement.test.ts).
  checkCases(t, validateRoundOpen, { record: { seq: 3 } }, [
    ['record as text', set('record', 'x'), 'payload.record', 'PROTOCOL_TYPE'],
    ['record as list', set('record', []), 'payload.record', 'PROTOCOL_TYPE'],
    ['no record', set('record', undefined), 'payload.record', 'PROTOCOL_TYPE'],
  ]);
  checkCases(t, validateRoundClosed, { record: { seq: 4 }, opened: { seq: 3 } }, [
    ['opened as text', set('opened', 'x'), 'payload.opened', 'PROTOCOL_TYPE'],
    ['no record', set('record', undefined), 'payload.record', 'PROTOCOL_TYPE'],
  ]);
  checkCases(t, validateWireError, { code: 'PROTOCOL_RANGE', message: 'x is wrong', field: 'x' }, [
    ['lowercase code', set('code', 'oops'), 'payload.code', 'PROTOCOL_FORMAT'],
    ['empty message', set('message', ''), 'payload.message', 'PROTOCOL_RANGE'],
  ]);
});

test('acknowledgements are validated per event, success or failure', (t) => {
  t.deepEqual(validateAck('update:begin', { ok: true, uploadId: UPLOAD, resumeFrom: 2 }), {
    ok: true,
    uploadId: UPLOAD,
    resumeFrom: 2,
  });
  t.deepEqual(validateAck('update:commit', { ok: true }), { ok: true });
  const failure = { ok: false, error: { code: 'ROUND_CLOSED', message: 'round 3 closed' } };
  t.deepEqual(validateAck('update:commit', failure), failure);
  t.like(
    t.throws(() => validateAck('adapter:get', { ok: true, data: 'x', total: 1 }), {
      instanceOf: ProtocolError,
    }),
    {
      field: 'ack.data',
    },
  );
  t.like(
    t.throws(() => validateAck('update:chunk', { received: 1 }), { instanceOf: ProtocolError }),
    {
      field: 'ack.ok',
      code: 'PROTOCOL_MISSING',
    },
  );
  t.like(
    t.throws(() => validateAck('update:chunk', { ok: false, error: { code: 'X' } }), {
      instanceOf: ProtocolError,
    }),
    {
      field: 'ack.error.message',
    },
  );
});

test('errors go to the peer with code, message and field; bugs as a generic INTERNAL error', (t) => {
  const protocol = new ProtocolError(
    'PROTOCOL_RANGE',
    'envelope.round',
    'envelope.round must be from 0 to 10, got 11',
  );
  t.deepEqual(toWireError(protocol), {
    code: 'PROTOCOL_RANGE',
    message: protocol.message,
    field: 'envelope.round',
  });
  t.deepEqual(toWireError(new CryptoError('CRYPTO_OPEN_FAILED', 'chunk 1 failed', { field: 'chunk 1' })), {
    code: 'CRYPTO_OPEN_FAILED',
    message: 'chunk 1 failed',
    field: 'chunk 1',
  });
  t.deepEqual(toWireError(new FeditError('ROUND_CLOSED', 'round 3 is closed')), {
    code: 'ROUND_CLOSED',
    message: 'round 3 is closed',
  });
  const internal = toWireError(new TypeError('cannot read properties of undefined (secret path /srv/x)'));
  t.is(internal.code, 'INTERNAL');
  t.notRegex(internal.message, /srv/);
  t.deepEqual(ackError(protocol), { ok: false, error: toWireError(protocol) });
});
