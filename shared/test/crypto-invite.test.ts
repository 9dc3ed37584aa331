// One-time enrolment invites (crypto/invite.ts).
import { createHash } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { Packr } from 'msgpackr';
import {
  createInviteToken,
  formatInvite,
  generateIdentity,
  InviteError,
  parseInvite,
  publicIdentity,
  type Invite,
} from '@fedit/shared';

const coordinator = publicIdentity(generateIdentity(new Uint8Array(32).fill(5)));
const invite: Invite = {
  url: 'https://fedit.example.org:8443/',
  federation: 'support-tickets',
  coordinator,
  token: createInviteToken(),
  expiresAt: Date.UTC(2030, 0, 1),
};
const NOW = Date.UTC(2026, 0, 1);

/** An invite string around an arbitrary body, with a correct checksum. */
function craft(body: Record<string, unknown>): string {
  const packed = new Packr({ useRecords: false }).pack(body);
  const checksum = createHash('sha256').update('fedit/invite/v1').update(packed).digest().subarray(0, 4);
  return 'fedit-invite:' + Buffer.concat([packed, checksum]).toString('base64url');
}

function fails(t: ExecutionContext, text: string, code: string, field?: string): InviteError {
  const error = t.throws(() => parseInvite(text, { now: NOW }), { instanceOf: InviteError });
  t.is<string, string>(error.code, code);
  if (field !== undefined) t.is(error.field, field);
  return error;
}

test('an invite round-trips through its pasteable string', (t) => {
  const text = formatInvite(invite);
  t.true(text.startsWith('fedit-invite:'));
  t.regex(text, /^fedit-invite:[A-Za-z0-9_-]+$/);
  t.deepEqual(parseInvite(text, { now: NOW }), invite);
  const { expiresAt: _unused, ...forever } = invite;
  t.deepEqual(parseInvite(formatInvite(forever), { now: NOW }), forever);
});

test('spaces and line breaks from a mail client are ignored', (t) => {
  const text = formatInvite(invite);
  const wrapped = `  ${text.slice(0, 30)}\n${text.slice(30, 70)}\r\n  ${text.slice(70)}\n`;
  t.deepEqual(parseInvite(wrapped, { now: NOW }), invite);
});

test('every single-character typo is caught by the checksum or the encoding check', (t) => {
  const text = formatInvite(invite);
  for (let i = 'fedit-invite:'.length; i < text.length; i++) {
    const replacement = text[i] === 'A' ? 'B' : 'A';
    const typo = text.slice(0, i) + replacement + text.slice(i + 1);
    const error = t.throws(
      () => parseInvite(typo, { now: NOW }),
      { instanceOf: InviteError },
      `position ${i}`,
    );
    t.true(error.code === 'INVITE_CHECKSUM' || error.code === 'INVITE_ENCODING', `${error.code} at ${i}`);
  }
});

test('a typo in the spare bits of the last character is caught too', (t) => {
  // The last base64 character of this invite carries unused low bits (its byte length is not a
  // multiple of 3); a character differing only there decodes to the same bytes.
  const text = formatInvite(invite);
  const decoded = Buffer.from(text.slice('fedit-invite:'.length), 'base64url');
  t.not(decoded.byteLength % 3, 0, 'the fixture has spare bits to alter');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sameBytes = [...alphabet].filter(
    (c) =>
      c !== text.at(-1) &&
      Buffer.from(text.slice('fedit-invite:'.length, -1) + c, 'base64url').equals(decoded),
  );
  t.true(sameBytes.length > 0);
  for (const c of sameBytes) fails(t, text.slice(0, -1) + c, 'INVITE_ENCODING');
});

test('a truncated invite is reported as damaged', (t) => {
  const text = formatInvite(invite);
  const error = fails(t, text.slice(0, -5), 'INVITE_CHECKSUM');
  t.regex(error.message, /mistyped, cut short or altered; copy it again/);
  fails(t, 'fedit-invite:abc', 'INVITE_ENCODING');
});

test('text that is not an invite says what an invite looks like', (t) => {
  const error = fails(t, 'https://fedit.example.org/join', 'INVITE_PREFIX');
  t.regex(error.message, /starts with "fedit-invite:"/);
  fails(t, 'fedit-invite:abc$def', 'INVITE_ENCODING');
  t.regex(fails(t, 'fedit-invite:ab+cd', 'INVITE_ENCODING').message, /"\+" at position 16/);
});

test('an expired invite is refused with its expiry date', (t) => {
  const text = formatInvite({ ...invite, expiresAt: Date.UTC(2025, 5, 1) });
  const error = fails(t, text, 'INVITE_EXPIRED', 'invite.expiresAt');
  t.regex(error.message, /expired on 2025-06-01T00:00:00\.000Z; ask the operator for a new one/);
});

const goodBody = () => ({
  v: 1,
  url: invite.url,
  fed: invite.federation,
  sign: coordinator.sign,
  box: coordinator.box,
  token: invite.token,
});

test('crafted invites with a valid checksum are still validated field by field', (t) => {
  t.deepEqual(parseInvite(craft(goodBody()), { now: NOW }).federation, invite.federation);
  fails(t, craft({ ...goodBody(), v: 2 }), 'INVITE_VERSION', 'invite.version');
  const cases: [Record<string, unknown>, string][] = [
    [{ ...goodBody(), url: 'ftp://x.org' }, 'invite.url'],
    [{ ...goodBody(), url: 'not a url' }, 'invite.url'],
    [{ ...goodBody(), url: 7 }, 'invite.url'],
    [{ ...goodBody(), fed: '-bad' }, 'invite.federation'],
    [{ ...goodBody(), fed: 'x'.repeat(65) }, 'invite.federation'],
    [{ ...goodBody(), sign: coordinator.sign.subarray(1) }, 'invite.coordinator.sign'],
    [{ ...goodBody(), box: 'key' }, 'invite.coordinator.box'],
    [{ ...goodBody(), token: new Uint8Array(16) }, 'invite.token'],
    [{ ...goodBody(), exp: 1.5 }, 'invite.expiresAt'],
    [{ ...goodBody(), exp: -1 }, 'invite.expiresAt'],
    [{ ...goodBody(), extra: true }, 'invite.extra'],
    [{ v: 1 }, 'invite.url'],
  ];
  for (const [body, field] of cases) {
    const error = fails(t, craft(body), 'INVITE_FIELD', field);
    t.true(error.message.startsWith(field), error.message);
  }
  fails(t, craft({ ...goodBody(), when: new Date(0) } as never), 'INVITE_FIELD', 'invite');
});

test("an invite's URL is the coordinator's root, or /<federation> on one serving several; no credentials, query or fragment", (t) => {
  for (const url of [
    'https://fedit.example.org',
    'http://127.0.0.1:7150/',
    `https://h.example:8443/${invite.federation}`,
  ])
    t.is(parseInvite(craft({ ...goodBody(), url }), { now: NOW }).url, url);
  for (const url of [
    'https://fedit.example.org/other-study',
    `https://fedit.example.org/${invite.federation}/more`,
    'https://operator:secret@fedit.example.org/',
    'https://fedit.example.org/?federation=x',
    'https://fedit.example.org/#x',
  ]) {
    const error = fails(t, craft({ ...goodBody(), url }), 'INVITE_FIELD', 'invite.url');
    t.regex(error.message, /^invite\.url must (be the coordinator's address|have no user)/, url);
  }
});

test('formatInvite refuses what parseInvite would refuse', (t) => {
  t.throws(() => formatInvite({ ...invite, token: new Uint8Array(5) }), {
    instanceOf: InviteError,
    code: 'INVITE_FIELD',
  });
  t.throws(() => formatInvite({ ...invite, url: 'file:///etc/passwd' }), {
    instanceOf: InviteError,
    code: 'INVITE_FIELD',
  });
});

test('tokens are 32 fresh random bytes', (t) => {
  const a = createInviteToken();
  t.is(a.byteLength, 32);
  t.notDeepEqual(createInviteToken(), a);
});
