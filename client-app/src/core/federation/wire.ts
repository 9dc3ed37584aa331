// What a participant makes of what the coordinator sends: the 'auth:hello' checked against the
// invite (protocol version, federation), every acknowledgement validated, and refusals and
// failed requests turned into FederationErrors that say what to do. Pure: the connection
// (connection.ts) owns the socket.
import {
  PROTOCOL_VERSION,
  SERVER_PAYLOAD_VALIDATORS,
  validateAck,
  type AckPayload,
  type AuthHello,
  type ClientEventName,
  type WireError,
} from '@fedit/shared';
import { FederationError } from './errors.ts';

/** A successful acknowledgement of `E`, without its `ok`. */
export type OkAck<E extends ClientEventName> = Omit<Extract<AckPayload<E>, { ok: true }>, 'ok'>;

/** The hello, when it is well-formed and announces this fedit's protocol and the invite's federation. */
export function checkHello(payload: unknown, expect: { url: string; federation: string }): AuthHello {
  let hello: AuthHello;
  try {
    hello = SERVER_PAYLOAD_VALIDATORS['auth:hello'](payload);
  } catch (cause) {
    throw new FederationError(
      'FEDERATION_PROTOCOL',
      `the server at ${expect.url} sent a malformed auth:hello (${(cause as Error).message}); is it a fedit coordinator of a compatible version?`,
      { cause },
    );
  }
  if (hello.protocol !== PROTOCOL_VERSION) {
    throw new FederationError(
      'FEDERATION_MISMATCH',
      `the coordinator speaks protocol version ${hello.protocol}, this fedit speaks version ${PROTOCOL_VERSION}; update fedit (or ask the operator which version to use)`,
    );
  }
  if (hello.federation !== expect.federation) {
    throw new FederationError(
      'FEDERATION_MISMATCH',
      `the coordinator at ${expect.url} serves federation ${JSON.stringify(hello.federation)}, but this membership or invite is for ${JSON.stringify(expect.federation)}; check the invite with the operator`,
    );
  }
  return hello;
}

/** The acknowledgement `raw` of `event`, validated; a refusal is thrown with the coordinator's code. */
export function ackResult<E extends ClientEventName>(event: E, raw: unknown): OkAck<E> {
  let ack: AckPayload<E>;
  try {
    ack = validateAck(event, raw);
  } catch (cause) {
    throw new FederationError(
      'FEDERATION_PROTOCOL',
      `the coordinator answered ${event} with a malformed acknowledgement: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (!ack.ok) {
    const { code, message, field } = (ack as { ok: false; error: WireError }).error;
    throw new FederationError(code, `the coordinator refused ${event}: ${message}`, {
      field,
      remote: true,
    });
  }
  const { ok: _ok, ...result } = ack as { ok: true } & Record<string, unknown>;
  return result as OkAck<E>;
}

/** Why a request got no answer: the connection dropped, or the answer did not come in time (transient). */
export function requestFailure(event: ClientEventName, cause: unknown, timeoutMs: number): FederationError {
  const message = (cause as Error)?.message ?? String(cause);
  const timedOut = /timed out/.test(message);
  return new FederationError(
    timedOut ? 'FEDERATION_UNREACHABLE' : 'FEDERATION_DISCONNECTED',
    timedOut
      ? `the coordinator did not answer ${event} within ${Math.round(timeoutMs / 1000)} s`
      : `the connection to the coordinator dropped while waiting for the answer to ${event}`,
    { cause, transient: true },
  );
}

/** The coordinator did not get as far as `seen` says within `timeoutMs` (transient). */
export function unreachableError(
  url: string,
  timeoutMs: number,
  seen: { connected: boolean; lastError?: string },
): FederationError {
  const why = seen.lastError ? `: ${seen.lastError}` : '';
  return new FederationError(
    'FEDERATION_UNREACHABLE',
    `the coordinator at ${url} did not ${seen.connected ? 'complete the handshake' : 'answer'} within ${Math.round(timeoutMs / 1000)} s${why}; check the address and your network, or try again later`,
    { transient: true },
  );
}
