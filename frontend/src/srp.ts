// Cognito's SRP-6a sign-in (AuthFlow USER_SRP_AUTH, then the PASSWORD_VERIFIER challenge): the page
// proves it knows the password without sending it. Hashes, HMAC and HKDF come from @noble/hashes
// (pure JavaScript), the modular arithmetic from BigInt: crypto.subtle is missing on plain-HTTP
// pages (an S3 website, *.localhost), crypto.getRandomValues is not.
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, concatBytes, randomBytes, utf8ToBytes } from "@noble/hashes/utils.js";

// The 3072-bit prime of RFC 5054 (appendix A) with generator 2, as Cognito and its SDKs use it.
const N = BigInt(
  "0xFFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C" +
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);
const G = 2n;
const INFO = utf8ToBytes("Caldera Derived Key");
const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** A value Cognito would not sign in with (a malicious or broken SRP_B). */
export class SrpError extends Error {}

/** Big-endian bytes of a non-negative number, with a leading zero byte when the high bit is set
 *  (a positive two's-complement number, as the SDKs and Cognito pad every value they hash). */
export function pad(value: bigint): Uint8Array {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = "0" + hex;
  else if (parseInt(hex[0], 16) >= 8) hex = "00" + hex;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function toBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt("0x" + bytesToHex(bytes));
}

function hashInt(...parts: Uint8Array[]): bigint {
  return toBigInt(sha256(concatBytes(...parts)));
}

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  base = ((base % modulus) + modulus) % modulus;
  while (exponent > 0n) {
    if (exponent & 1n) result = (result * base) % modulus;
    base = (base * base) % modulus;
    exponent >>= 1n;
  }
  return result;
}

function parseHex(hex: string, what: string): bigint {
  if (!/^[0-9a-fA-F]+$/.test(hex)) throw new SrpError(`${what} is not hexadecimal`);
  return BigInt("0x" + hex);
}

function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function bytesToBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

const K = hashInt(pad(N), pad(G));

/** The client's ephemeral secret a and its public value A (SRP_A, hex). */
export interface SrpEphemeral {
  a: bigint;
  srpA: string;
}

/** A fresh ephemeral: a from 128 random bytes (as the SDKs), A = g^a mod N. `random` is for tests. */
export function srpEphemeral(random: Uint8Array = randomBytes(128)): SrpEphemeral {
  const a = toBigInt(random) % N;
  if (a === 0n) throw new SrpError("the random secret is zero");
  return { a, srpA: modPow(G, a, N).toString(16) };
}

/** Cognito's PASSWORD_VERIFIER ChallengeParameters (strings as it sends them). */
export interface PasswordVerifierParameters {
  SALT: string;
  SRP_B: string;
  SECRET_BLOCK: string;
  USER_ID_FOR_SRP: string;
}

/** `EEE MMM d HH:mm:ss UTC yyyy` in English, the day not padded: the TIMESTAMP Cognito checks the
 *  signature over. */
export function cognitoTimestamp(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${WEEKDAYS[date.getUTCDay()]} ${MONTHS[date.getUTCMonth()]} ${date.getUTCDate()} ` +
    `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} UTC ${date.getUTCFullYear()}`;
}

/** The ChallengeResponses answering PASSWORD_VERIFIER: a signature with the key both sides derive
 *  from the password's verifier, over the pool name, user id, secret block and timestamp. */
export function passwordVerifierResponses(
  userPoolId: string,
  password: string,
  ephemeral: SrpEphemeral,
  challenge: PasswordVerifierParameters,
  now: Date = new Date(),
): Record<string, string> {
  const poolName = userPoolId.slice(userPoolId.indexOf("_") + 1);
  const userId = challenge.USER_ID_FOR_SRP;
  const B = parseHex(challenge.SRP_B, "SRP_B");
  if (B % N === 0n) throw new SrpError("SRP_B is zero modulo N");
  const A = BigInt("0x" + ephemeral.srpA);
  const u = hashInt(pad(A), pad(B));
  if (u === 0n) throw new SrpError("the scrambling parameter u is zero");
  const salt = parseHex(challenge.SALT, "SALT");
  const x = hashInt(pad(salt), sha256(utf8ToBytes(`${poolName}${userId}:${password}`)));
  // S = (B - k g^x)^(a + u x) mod N
  const S = modPow(B - K * modPow(G, x, N), ephemeral.a + u * x, N);
  const key = hkdf(sha256, pad(S), pad(u), INFO, 16);
  const timestamp = cognitoTimestamp(now);
  const message = concatBytes(utf8ToBytes(poolName + userId), base64ToBytes(challenge.SECRET_BLOCK), utf8ToBytes(timestamp));
  return {
    USERNAME: userId,
    TIMESTAMP: timestamp,
    PASSWORD_CLAIM_SECRET_BLOCK: challenge.SECRET_BLOCK,
    PASSWORD_CLAIM_SIGNATURE: bytesToBase64(hmac(sha256, key, message)),
  };
}
