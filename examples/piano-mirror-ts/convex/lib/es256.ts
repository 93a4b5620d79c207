// ES256 (ECDSA on P-256 with SHA-256, RFC 7518 §3.4) in plain TypeScript with BigInt, for the dev
// sign-in's tokens: key generation, public keys as JWKs, and signatures whose nonce is derived from the
// key and the message (RFC 6979), so signing needs no randomness. Not constant-time: fine for a demo's
// sign-in key, not for keys an attacker can time.
import { base64url, fromBase64url } from "./base64url";
import { concat, hmacSha256, sha256 } from "./sha256";

// The curve y² = x³ - 3x + b over GF(P) and its base point G of prime order N (FIPS 186-4 D.1.2.3).
const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const G = {
  x: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
  y: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
};
const SCALAR_BYTES = 32;

type Affine = { x: bigint; y: bigint };
/** Jacobian coordinates (x/z², y/z³); z = 0 is the point at infinity. */
type Jacobian = { x: bigint; y: bigint; z: bigint };

const mod = (a: bigint, m: bigint) => {
  const r = a % m;
  return r < 0n ? r + m : r;
};

function powMod(base: bigint, exponent: bigint, m: bigint): bigint {
  let result = 1n;
  let b = mod(base, m);
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
  }
  return result;
}

/** The inverse modulo a prime (Fermat). */
const invert = (a: bigint, prime: bigint) => powMod(a, prime - 2n, prime);

// dbl-2001-b (a = -3).
function double({ x, y, z }: Jacobian): Jacobian {
  if (z === 0n || y === 0n) return { x: 0n, y: 1n, z: 0n };
  const delta = (z * z) % P;
  const gamma = (y * y) % P;
  const beta = (x * gamma) % P;
  const alpha = mod(3n * (x - delta) * (x + delta), P);
  const x3 = mod(alpha * alpha - 8n * beta, P);
  const z3 = mod((y + z) * (y + z) - gamma - delta, P);
  const y3 = mod(alpha * (4n * beta - x3) - 8n * gamma * gamma, P);
  return { x: x3, y: y3, z: z3 };
}

// madd-2007-bl: a Jacobian point plus an affine one.
function addAffine(p: Jacobian, q: Affine): Jacobian {
  if (p.z === 0n) return { x: q.x, y: q.y, z: 1n };
  const z1z1 = (p.z * p.z) % P;
  const u2 = (q.x * z1z1) % P;
  const s2 = (q.y * p.z * z1z1) % P;
  const h = mod(u2 - p.x, P);
  const r = mod(2n * (s2 - p.y), P);
  if (h === 0n) return r === 0n ? double(p) : { x: 0n, y: 1n, z: 0n };
  const hh = (h * h) % P;
  const i = 4n * hh;
  const j = (h * i) % P;
  const v = (p.x * i) % P;
  const x3 = mod(r * r - j - 2n * v, P);
  const y3 = mod(r * (v - x3) - 2n * p.y * j, P);
  const z3 = mod((p.z + h) * (p.z + h) - z1z1 - hh, P);
  return { x: x3, y: y3, z: z3 };
}

/** k·G, for 0 < k < N. */
function multiplyBase(k: bigint): Affine {
  let acc: Jacobian = { x: 0n, y: 1n, z: 0n };
  for (let bit = BigInt(k.toString(2).length - 1); bit >= 0n; bit--) {
    acc = double(acc);
    if ((k >> bit) & 1n) acc = addAffine(acc, G);
  }
  const zInv = invert(acc.z, P);
  const zInv2 = (zInv * zInv) % P;
  return { x: (acc.x * zInv2) % P, y: (acc.y * zInv2 * zInv) % P };
}

export function bytesToBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

export function bigIntToBytes(value: bigint, length = SCALAR_BYTES): Uint8Array {
  const bytes = new Uint8Array(length);
  let rest = value;
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  if (rest !== 0n) throw new Error(`${value} does not fit in ${length} bytes`);
  return bytes;
}

/** A signing key: the private scalar and its public point, each coordinate as base64url bytes. */
export type SigningKey = { d: string; x: string; y: string };

/** The key with private scalar `secret` (32 bytes, as drawn from a CSPRNG); null when it is not in [1, N). */
export function signingKeyFrom(secret: Uint8Array): SigningKey | null {
  const d = bytesToBigInt(secret);
  if (secret.length !== SCALAR_BYTES || d === 0n || d >= N) return null;
  const { x, y } = multiplyBase(d);
  return { d: base64url(secret), x: base64url(bigIntToBytes(x)), y: base64url(bigIntToBytes(y)) };
}

/** A fresh key from `crypto.getRandomValues`. */
export function generateSigningKey(): SigningKey {
  for (;;) {
    const key = signingKeyFrom(crypto.getRandomValues(new Uint8Array(SCALAR_BYTES)));
    // Out of range with probability about 2⁻³²: draw again.
    if (key !== null) return key;
  }
}

/** The nonce of RFC 6979 §3.2 for SHA-256 and P-256 (qlen = hlen = 256). */
function deterministicNonce(d: bigint, digest: Uint8Array, isValid: (k: bigint) => boolean): bigint {
  const x = bigIntToBytes(d);
  const h = bigIntToBytes(mod(bytesToBigInt(digest), N));
  let v = new Uint8Array(32).fill(1);
  let k = new Uint8Array(32);
  k = hmacSha256(k, concat(v, Uint8Array.of(0), x, h));
  v = hmacSha256(k, v);
  k = hmacSha256(k, concat(v, Uint8Array.of(1), x, h));
  v = hmacSha256(k, v);
  for (;;) {
    v = hmacSha256(k, v);
    const candidate = bytesToBigInt(v);
    if (candidate > 0n && candidate < N && isValid(candidate)) return candidate;
    k = hmacSha256(k, concat(v, Uint8Array.of(0)));
    v = hmacSha256(k, v);
  }
}

/** The signature of `message` as JWS writes it: r and s, 32 bytes each. */
export function sign(key: SigningKey, message: Uint8Array): Uint8Array {
  const d = bytesToBigInt(fromBase64url(key.d));
  const digest = sha256(message);
  const z = bytesToBigInt(digest);
  let r = 0n;
  let s = 0n;
  deterministicNonce(d, digest, (k) => {
    r = multiplyBase(k).x % N;
    s = mod(invert(k, N) * (z + r * d), N);
    return r !== 0n && s !== 0n;
  });
  return concat(bigIntToBytes(r), bigIntToBytes(s));
}

/** The public key as a JWK, with its RFC 7638 thumbprint as key id. */
export function publicJwk(key: SigningKey) {
  // The thumbprint hashes exactly these members, in this order, without whitespace.
  const members = { crv: "P-256", kty: "EC", x: key.x, y: key.y };
  const kid = base64url(sha256(new TextEncoder().encode(JSON.stringify(members))));
  return { ...members, kid, alg: "ES256", use: "sig" };
}

/** A compact JWS (a JWT) of `claims`, signed with `key`. */
export function signJwt(key: SigningKey, claims: Record<string, unknown>): string {
  const encode = (part: unknown) => base64url(new TextEncoder().encode(JSON.stringify(part)));
  const signingInput = `${encode({ alg: "ES256", typ: "JWT", kid: publicJwk(key).kid })}.${encode(claims)}`;
  return `${signingInput}.${base64url(sign(key, new TextEncoder().encode(signingInput)))}`;
}
