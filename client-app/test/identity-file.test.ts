// The identity file sealed by the OS keychain (core/federation/identity-file.ts). Electron's
// safeStorage cannot run here, so the keychain is played by a real cipher: tweetnacl's secretbox
// (XSalsa20-Poly1305) under a key only the test holds. Sealed, the file holds no key material;
// only that protector opens it; the CLI (no protector) gets a message that says what to do; an
// app handed the opened identity (the training worker) reads it; plain files read as before.

import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { fingerprint, generateIdentity, publicIdentity, serializeIdentity } from '@fedit/shared';
import {
  decodeIdentityFile,
  encodeIdentityFile,
  inspectIdentityFile,
  unlockIdentity,
  useIdentityProtector,
  type IdentityProtector,
} from '../src/core/federation/identity-file.ts';
import { loadOrCreateIdentity, protectIdentityFile, readIdentity } from '../src/core/federation/store.ts';
import { keychainProtector, type SafeStorageLike } from '../electron/identity-keychain.ts';
import { fedit } from '../../test/fixtures/fedit-cli.ts';

/** A keychain stand-in: secretbox with a random nonce in front, under `key`. */
function secretboxProtector(key = nacl.randomBytes(32)): IdentityProtector {
  return {
    encrypt(plain) {
      const nonce = nacl.randomBytes(24);
      const box = nacl.secretbox(plain, nonce, key);
      return new Uint8Array([...nonce, ...box]);
    },
    decrypt(sealed) {
      const opened = nacl.secretbox.open(sealed.subarray(24), sealed.subarray(0, 24), key);
      if (!opened) throw new Error('the keychain cannot decrypt this');
      return opened;
    },
  };
}

const home = (t: { teardown(f: () => void): void }) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-identity-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'home');
};

test.afterEach.always(() => {
  useIdentityProtector(undefined);
  unlockIdentity(undefined);
});

test.serial(
  'a sealed identity file holds no secret, keeps the public keys, and only its protector opens it',
  (t) => {
    const identity = generateIdentity();
    const keychain = secretboxProtector();
    const text = encodeIdentityFile(identity, keychain);
    const secrets = serializeIdentity(identity);
    t.false(text.includes(secrets.sign.secretKey), 'no signing secret in the file');
    t.false(text.includes(secrets.box.secretKey), 'no box secret in the file');
    const inspected = inspectIdentityFile(text);
    t.is(inspected.protection, 'os-keychain');
    t.is(fingerprint(inspected.public), fingerprint(publicIdentity(identity)));

    const opened = decodeIdentityFile(text, 'identity.json', keychain);
    t.deepEqual(serializeIdentity(opened), secrets);
    t.throws(() => decodeIdentityFile(text, 'identity.json', secretboxProtector()), {
      code: 'FEDERATION_IDENTITY_SEALED',
      message: /cannot be opened with this computer's keychain.*another user account or computer/,
    });
    t.throws(() => decodeIdentityFile(text, 'identity.json'), {
      code: 'FEDERATION_IDENTITY_SEALED',
      message: /only the app, run by this user on this computer, can open it.*--home/s,
    });
  },
);

test.serial('a sealed file whose public keys are not the sealed identity is refused', (t) => {
  const keychain = secretboxProtector();
  const file = JSON.parse(encodeIdentityFile(generateIdentity(), keychain)) as Record<string, unknown>;
  file.public = JSON.parse(encodeIdentityFile(generateIdentity(), keychain)).public;
  t.throws(() => decodeIdentityFile(JSON.stringify(file), 'identity.json', keychain), {
    message: /not the public keys written beside them/,
  });
});

test.serial('without a keychain the file stays plain (owner-only), as fedit always wrote it', async (t) => {
  const dir = home(t);
  const { identity } = await loadOrCreateIdentity(dir);
  const text = readFileSync(join(dir, 'identity.json'), 'utf8');
  t.deepEqual(JSON.parse(text), serializeIdentity(identity));
  t.is(statSync(join(dir, 'identity.json')).mode & 0o777, 0o600);
  t.is(await protectIdentityFile(dir), 'file-permissions');
});

test.serial(
  'the app seals a new identity and an existing plain one; the CLI is told it cannot open it',
  async (t) => {
    const dir = home(t);
    const { identity } = await loadOrCreateIdentity(dir); // made by the CLI earlier: plain
    const keychain = secretboxProtector();
    useIdentityProtector(keychain);
    t.is(await protectIdentityFile(dir), 'os-keychain', 'sealed when the app starts');
    t.is(inspectIdentityFile(readFileSync(join(dir, 'identity.json'), 'utf8')).protection, 'os-keychain');
    t.is(statSync(join(dir, 'identity.json')).mode & 0o777, 0o600);
    t.deepEqual(serializeIdentity((await readIdentity(dir))!), serializeIdentity(identity));

    useIdentityProtector(undefined); // the CLI
    await t.throwsAsync(readIdentity(dir), {
      code: 'FEDERATION_IDENTITY_SEALED',
      message: /identity\.json is protected/,
    });

    // The training worker: handed the opened identity by the app, it reads the sealed file as it.
    unlockIdentity(identity);
    t.deepEqual(serializeIdentity((await readIdentity(dir))!), serializeIdentity(identity));
    unlockIdentity(generateIdentity());
    await t.throwsAsync(
      readIdentity(dir),
      { code: 'FEDERATION_IDENTITY_SEALED' },
      'another identity opens nothing',
    );

    const fresh = home(t);
    useIdentityProtector(keychain);
    const created = await loadOrCreateIdentity(fresh);
    t.true(created.created);
    t.is(inspectIdentityFile(readFileSync(join(fresh, 'identity.json'), 'utf8')).protection, 'os-keychain');
  },
);

/** Electron's safeStorage as the main process sees it, sealing with a real cipher. */
function fakeSafeStorage(backend: string, available = true): SafeStorageLike {
  const keychain = secretboxProtector();
  return {
    isEncryptionAvailable: () => available,
    getSelectedStorageBackend: () => backend,
    encryptString: (plain) => Buffer.from(keychain.encrypt(new TextEncoder().encode(plain))),
    decryptString: (sealed) => new TextDecoder().decode(keychain.decrypt(new Uint8Array(sealed))),
  };
}

test.serial("the app's keychain is safeStorage where it protects something, not Linux's basic_text", (t) => {
  t.is(keychainProtector(fakeSafeStorage('gnome_libsecret', false), 'linux'), undefined, 'unavailable');
  t.is(
    keychainProtector(fakeSafeStorage('basic_text'), 'linux'),
    undefined,
    'a key built into Chromium seals nothing',
  );
  const protector = keychainProtector(fakeSafeStorage('gnome_libsecret'), 'linux')!;
  t.truthy(protector);
  const identity = generateIdentity();
  const text = encodeIdentityFile(identity, protector);
  t.deepEqual(
    serializeIdentity(decodeIdentityFile(text, 'identity.json', protector)),
    serializeIdentity(identity),
  );
  t.truthy(keychainProtector(fakeSafeStorage('unknown'), 'darwin'), 'macOS: the Keychain');
});

test.serial('fedit client status names a sealed identity and says only the app can use it', async (t) => {
  const dir = home(t);
  useIdentityProtector(secretboxProtector());
  const { identity } = await loadOrCreateIdentity(dir);
  useIdentityProtector(undefined);
  const id = fingerprint(publicIdentity(identity));
  const text = await fedit('client', 'status', '--home', dir);
  t.is(text.code, 0, text.stderr);
  t.regex(
    text.stdout,
    new RegExp(`identity   ${id}\\n +sealed by the desktop app's keychain: only the app can use it`),
  );
  const json = await fedit('client', 'status', '--json', '--home', dir);
  t.like(JSON.parse(json.stdout), { participantId: id, identityProtection: 'os-keychain' });
});
