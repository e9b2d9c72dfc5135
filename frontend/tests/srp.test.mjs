// The pages' SRP helper (src/srp.ts) on its own, no stack needed: known answers from the local AWS's
// SRP code, a round trip against a server side written here with node:crypto, and the refusals.
// Run alone with `npm run test:unit`.
import assert from "node:assert/strict";
import { createHash, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { build } from "vite";

const here = new URL(".", import.meta.url).pathname;
const { vectors } = JSON.parse(readFileSync(join(here, "srp-vectors.json"), "utf8"));
let srp;
let outDir;

// src/srp.ts is TypeScript with a bare import (@noble/hashes): Vite bundles it into one ES module.
before(async () => {
  outDir = mkdtempSync(join(tmpdir(), "srp-test-"));
  await build({
    configFile: false,
    logLevel: "silent",
    build: {
      outDir,
      emptyOutDir: true,
      minify: false,
      lib: { entry: join(here, "../src/srp.ts"), formats: ["es"], fileName: () => "srp.mjs" },
    },
  });
  srp = await import(join(outDir, "srp.mjs"));
});
after(() => outDir && rmSync(outDir, { recursive: true, force: true }));

const ephemeralOf = (hex) => srp.srpEphemeral(Uint8Array.from(Buffer.from(hex, "hex")));

test("answers PASSWORD_VERIFIER exactly as the local AWS's SRP code computes it", () => {
  for (const v of vectors) {
    const ephemeral = ephemeralOf(v.random);
    assert.equal(ephemeral.srpA, v.srpA, v.case);
    const challenge = { SALT: v.salt, SRP_B: v.srpB, SECRET_BLOCK: v.secretBlock, USER_ID_FOR_SRP: v.userId };
    const [year, month, day, h, m, s] = [2024, 0, 5, 3, 4, 5]; // the vectors' "Fri Jan 5 03:04:05 UTC 2024"
    const answer = srp.passwordVerifierResponses(v.poolId, v.password, ephemeral, challenge,
      new Date(Date.UTC(year, month, day, h, m, s)));
    assert.deepEqual(answer, {
      USERNAME: v.userId,
      TIMESTAMP: v.timestamp,
      PASSWORD_CLAIM_SECRET_BLOCK: v.secretBlock,
      PASSWORD_CLAIM_SIGNATURE: v.signature,
    }, v.case);
    // Any other password gives another signature.
    const wrong = srp.passwordVerifierResponses(v.poolId, v.password + "x", ephemeral, challenge,
      new Date(Date.UTC(year, month, day, h, m, s)));
    assert.notEqual(wrong.PASSWORD_CLAIM_SIGNATURE, v.signature);
  }
});

// --- A server side of the protocol, written apart from src/srp.ts (node:crypto, SRP-6a as RFC 5054).
const N = BigInt("0x" + "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
  "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
  "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
  "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
  "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
  "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C" +
  "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF");
// As Python's n.to_bytes(n.bit_length() // 8 + 1): room for a sign bit.
const toBytes = (n) => Buffer.from(n.toString(16).padStart(2 * (Math.floor(n.toString(2).length / 8) + 1), "0"), "hex");
const sha = (...parts) => createHash("sha256").update(Buffer.concat(parts)).digest();
const int = (bytes) => BigInt("0x" + bytes.toString("hex"));
function power(base, exponent) {
  let result = 1n;
  for (base %= N; exponent > 0n; exponent >>= 1n, base = (base * base) % N) if (exponent & 1n) result = (result * base) % N;
  return result;
}

function server(poolId, userId, password) {
  const poolName = poolId.split("_")[1];
  const salt = randomBytes(16).toString("hex");
  const x = int(sha(toBytes(BigInt("0x" + salt)), sha(Buffer.from(`${poolName}${userId}:${password}`))));
  const v = power(2n, x);
  const k = int(sha(toBytes(N), toBytes(2n)));
  const b = int(randomBytes(64));
  const B = (k * v + power(2n, b)) % N;
  const secretBlock = randomBytes(96).toString("base64");
  return {
    challenge: { SALT: salt, SRP_B: B.toString(16), SECRET_BLOCK: secretBlock, USER_ID_FOR_SRP: userId },
    verify(srpA, responses) {
      const A = BigInt("0x" + srpA);
      const u = int(sha(toBytes(A), toBytes(B)));
      const S = power(A * power(v, u), b);
      const key = Buffer.from(hkdfSync("sha256", toBytes(S), toBytes(u), "Caldera Derived Key", 16));
      const expected = createHmac("sha256", key).update(Buffer.concat([Buffer.from(poolName + userId),
        Buffer.from(responses.PASSWORD_CLAIM_SECRET_BLOCK, "base64"), Buffer.from(responses.TIMESTAMP)])).digest("base64");
      return responses.PASSWORD_CLAIM_SECRET_BLOCK === secretBlock && responses.USERNAME === userId
        && responses.PASSWORD_CLAIM_SIGNATURE === expected;
    },
  };
}

test("a server that knows only the password's verifier accepts the proof, and refuses a wrong password", () => {
  for (const password of ["Demo-Abcdefgh1234a1A", "pässwörd mit Leerzeichen ✓ 9A", "1"]) {
    const side = server("eu-west-1_AbCdEfGh", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6", password);
    const ephemeral = srp.srpEphemeral(); // random, from crypto.getRandomValues
    assert.match(ephemeral.srpA, /^[0-9a-f]+$/);
    const responses = srp.passwordVerifierResponses("eu-west-1_AbCdEfGh", password, ephemeral, side.challenge);
    assert.ok(side.verify(ephemeral.srpA, responses), password);
    if (password.length > 8) assert.ok(!JSON.stringify(responses).includes(password));
    const wrong = srp.passwordVerifierResponses("eu-west-1_AbCdEfGh", password + "!", ephemeral, side.challenge);
    assert.ok(!side.verify(ephemeral.srpA, wrong));
  }
});

test("each sign-in uses a new secret", () => {
  assert.notEqual(srp.srpEphemeral().srpA, srp.srpEphemeral().srpA);
});

test("TIMESTAMP is EEE MMM d HH:mm:ss UTC yyyy in English, the day unpadded, the time in UTC", () => {
  assert.equal(srp.cognitoTimestamp(new Date(Date.UTC(2024, 0, 5, 3, 4, 5))), "Fri Jan 5 03:04:05 UTC 2024");
  assert.equal(srp.cognitoTimestamp(new Date(Date.UTC(2031, 11, 28, 23, 59, 9))), "Sun Dec 28 23:59:09 UTC 2031");
  assert.equal(srp.cognitoTimestamp(new Date("2026-02-28T23:30:00-05:00")), "Sun Mar 1 04:30:00 UTC 2026");
});

test("values are padded as Cognito hashes them", () => {
  const hex = (n) => Buffer.from(srp.pad(n)).toString("hex");
  assert.equal(hex(0n), "00");
  assert.equal(hex(0x7fn), "7f");
  assert.equal(hex(0x80n), "0080");
  assert.equal(hex(0xabcn), "0abc");
  assert.equal(hex(0x8abcn), "008abc");
});

test("a challenge a server must never send is refused, not answered", () => {
  const ephemeral = srp.srpEphemeral();
  const base = { SALT: "ab12", SECRET_BLOCK: "AAAA", USER_ID_FOR_SRP: "someone" };
  for (const srpB of ["0", N.toString(16), (2n * N).toString(16), "not-hex", ""]) {
    assert.throws(() => srp.passwordVerifierResponses("us-east-1_Pool", "pw", ephemeral, { ...base, SRP_B: srpB }),
      srp.SrpError, srpB);
  }
  assert.throws(() => srp.passwordVerifierResponses("us-east-1_Pool", "pw", ephemeral, { ...base, SRP_B: "05", SALT: "zz" }),
    srp.SrpError);
});
