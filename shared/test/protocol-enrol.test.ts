// Enrolment requests (protocol/enrol.ts), and how they use the connection's challenge.
import test from 'ava';
import {
  AuthChallenge,
  createInviteToken,
  generateIdentity,
  ProtocolError,
  signEnrolment,
  validateEnrolRequest,
  verifyEnrolment,
  type AuthContext,
} from '@fedit/shared';

const coordinator = generateIdentity(new Uint8Array(32).fill(1));
const newcomer = generateIdentity(new Uint8Array(32).fill(2));
const token = createInviteToken();

function connection(): { challenge: AuthChallenge; context: AuthContext } {
  const challenge = new AuthChallenge({
    federation: 'support-tickets',
    coordinator: coordinator.sign.publicKey,
  });
  return {
    challenge,
    context: { federation: challenge.federation, coordinator: challenge.coordinator, nonce: challenge.nonce },
  };
}

test('a signed enrolment validates and verifies against the connection challenge', (t) => {
  const { challenge, context } = connection();
  const request = signEnrolment(newcomer, context, { token, displayName: 'Clinic Nord' });
  const checked = validateEnrolRequest(request);
  t.deepEqual(checked.identity, { sign: newcomer.sign.publicKey, box: newcomer.box.publicKey });
  t.notThrows(() => verifyEnrolment(challenge.consume(), checked));
});

test('an enrolment replayed on another connection fails', (t) => {
  const first = connection();
  const request = signEnrolment(newcomer, first.context, { token, displayName: 'Clinic Nord' });
  const second = connection();
  const error = t.throws(() => verifyEnrolment(second.challenge.consume(), request), {
    instanceOf: ProtocolError,
  });
  t.is(error.code, 'PROTOCOL_SIGNATURE');
  t.is(error.field, 'payload.signature');
});

test('swapping the box key, the name or the token after signing fails', (t) => {
  const { context } = connection();
  const request = signEnrolment(newcomer, context, { token, displayName: 'Clinic Nord' });
  const attacker = generateIdentity();
  for (const altered of [
    { ...request, identity: { ...request.identity, box: attacker.box.publicKey } },
    { ...request, identity: { ...request.identity, sign: attacker.sign.publicKey } },
    { ...request, displayName: 'Clinic Süd' },
    { ...request, token: createInviteToken() },
  ]) {
    t.throws(() => verifyEnrolment(context, altered), { code: 'PROTOCOL_SIGNATURE' });
  }
});
