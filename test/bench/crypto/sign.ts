// `npm run bench -- sign [--count N] [--json]`: Ed25519 over domain-tagged digests (crypto/sign.ts).
// Times verifyDigest (node:crypto's native Ed25519, with its key cache warm and cold) beside the
// tweetnacl verify it replaced (S < L check, then nacl.sign.detached.verify), and signDigest
// (native since) beside tweetnacl's signing of the same message, after checking that the two sign
// byte-identically (Ed25519 is deterministic).
import { parseArgs } from 'node:util';
import nacl from 'tweetnacl';
import { DOMAINS, sha256, signDigest, verifyDigest } from '@fedit/shared';

const GROUP_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;

function tweetnaclVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]);
  return s < GROUP_ORDER && nacl.sign.detached.verify(message, signature, publicKey);
}

/** Microseconds per call of `work(i)` over `count` calls. */
function perCall(count: number, work: (i: number) => unknown): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) work(i);
  return Number(process.hrtime.bigint() - t0) / 1000 / count;
}

export async function benchSign(argv: string[]): Promise<void> {
  const { values: a } = parseArgs({
    args: argv,
    options: { count: { type: 'string', default: '300' }, json: { type: 'boolean', default: false } },
  });
  const count = Number(a.count);
  if (!(count >= 1)) throw new Error('--count must be >= 1');
  const domain = DOMAINS.secaggAdvert;
  const tag = Buffer.from(domain, 'ascii');
  const cases = Array.from({ length: count }, (_, i) => {
    const seed = sha256(Uint8Array.of(i & 0xff, i >> 8));
    const keys = nacl.sign.keyPair.fromSeed(seed);
    const digest = sha256(seed, seed);
    const message = sha256(Uint8Array.of(tag.byteLength), tag, digest);
    return { keys, digest, message, signature: signDigest(keys.secretKey, domain, digest) };
  });
  for (const c of cases)
    if (!Buffer.from(nacl.sign.detached(c.message, c.keys.secretKey)).equals(c.signature))
      throw new Error('native Ed25519 signing is not byte-identical to tweetnacl');
  const all = (f: (c: (typeof cases)[number]) => boolean) => cases.every(f);
  if (!all((c) => verifyDigest(c.keys.publicKey, domain, c.digest, c.signature)))
    throw new Error('verifyDigest refused an honest signature');
  const result = {
    bench: 'sign',
    count,
    node: process.version,
    openssl: process.versions.openssl,
    // the keys were imported (cached) by the check above: the steady state of a round's verifications
    verify_native_us: perCall(count, (i) =>
      verifyDigest(cases[i].keys.publicKey, domain, cases[i].digest, cases[i].signature),
    ),
    verify_tweetnacl_us: perCall(count, (i) =>
      tweetnaclVerify(cases[i].keys.publicKey, cases[i].message, cases[i].signature),
    ),
    sign_native_us: perCall(count, (i) => signDigest(cases[i].keys.secretKey, domain, cases[i].digest)),
    sign_tweetnacl_us: perCall(count, (i) => nacl.sign.detached(cases[i].message, cases[i].keys.secretKey)),
    signatures_byte_identical: true,
  };
  if (a.json) return void process.stdout.write(JSON.stringify(result) + '\n');
  const f = (x: number) => x.toFixed(1);
  process.stdout.write(
    `Ed25519, ${count} keys (node ${result.node}, OpenSSL ${result.openssl}):\n` +
      `  verify: native ${f(result.verify_native_us)} µs, tweetnacl ${f(result.verify_tweetnacl_us)} µs (${f(result.verify_tweetnacl_us / result.verify_native_us)}x)\n` +
      `  sign:   native ${f(result.sign_native_us)} µs, tweetnacl ${f(result.sign_tweetnacl_us)} µs (${f(result.sign_tweetnacl_us / result.sign_native_us)}x), byte-identical\n`,
  );
}
