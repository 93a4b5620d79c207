// The dev sign-in's crypto (convex/lib/sha256.ts, es256.ts, base64url.ts) against published test
// vectors and against Node's own WebCrypto, which must accept every token signed here.
// Run: ./run-tests.sh (esbuild strips the types, `node --test` runs the result).
import assert from "node:assert/strict";
import { createHash, createHmac, webcrypto } from "node:crypto";
import { test } from "node:test";
import { base64url, fromBase64url } from "../convex/lib/base64url";
import { publicJwk, sign, signJwt, signingKeyFrom } from "../convex/lib/es256";
import { hmacSha256, sha256 } from "../convex/lib/sha256";

const utf8 = (text: string) => new TextEncoder().encode(text);
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const fromHex = (text: string) => new Uint8Array(Buffer.from(text, "hex"));

test("SHA-256 and HMAC-SHA-256 agree with Node's on every length around the block boundaries", () => {
  assert.equal(hex(sha256(utf8("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  for (let length = 0; length <= 200; length++) {
    const message = new Uint8Array(length).map((_, i) => (i * 31 + length) & 0xff);
    assert.equal(hex(sha256(message)), createHash("sha256").update(message).digest("hex"), `length ${length}`);
    // Keys shorter than, equal to and longer than a block.
    const key = message.subarray(0, length % 100);
    assert.equal(hex(hmacSha256(key, message)), createHmac("sha256", key).update(message).digest("hex"));
  }
});

test("base64url round-trips every length without padding", () => {
  for (let length = 0; length <= 40; length++) {
    const bytes = new Uint8Array(length).map((_, i) => (i * 97 + 255) & 0xff);
    const text = base64url(bytes);
    assert.equal(text, Buffer.from(bytes).toString("base64url"));
    assert.deepEqual(fromBase64url(text), bytes);
  }
  assert.throws(() => fromBase64url("a+b"), /not a base64url character/);
});

// RFC 6979 A.2.5: P-256 with SHA-256.
const RFC_KEY = fromHex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");

test("keys and deterministic signatures match RFC 6979's P-256 vectors", () => {
  const key = signingKeyFrom(RFC_KEY);
  assert.ok(key !== null);
  assert.equal(hex(fromBase64url(key.x)), "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6");
  assert.equal(hex(fromBase64url(key.y)), "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299");
  assert.equal(
    hex(sign(key, utf8("sample"))),
    "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716" +
      "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8",
  );
  assert.equal(
    hex(sign(key, utf8("test"))),
    "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367" +
      "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083",
  );
});

test("private scalars outside [1, N) are refused", () => {
  assert.equal(signingKeyFrom(new Uint8Array(32)), null);
  assert.equal(signingKeyFrom(new Uint8Array(32).fill(0xff)), null);
  assert.equal(signingKeyFrom(new Uint8Array(31).fill(1)), null);
  const n = fromHex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
  assert.equal(signingKeyFrom(n), null);
  n[31] -= 1;
  assert.ok(signingKeyFrom(n) !== null, "N - 1 is a key");
});

test("tokens signed with random keys verify with WebCrypto, and a changed claim does not", async () => {
  for (let round = 0; round < 8; round++) {
    const key = signingKeyFrom(webcrypto.getRandomValues(new Uint8Array(32)));
    if (key === null) continue;
    const jwk = publicJwk(key);
    const token = signJwt(key, { sub: `user-${round}`, iat: 1_700_000_000 + round });
    const [header, claims, signature] = token.split(".");
    assert.deepEqual(JSON.parse(Buffer.from(header, "base64url").toString()), {
      alg: "ES256",
      typ: "JWT",
      kid: jwk.kid,
    });
    const verifier = await webcrypto.subtle.importKey(
      "jwk",
      { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y },
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["verify"],
    );
    const verify = (signed: string) =>
      webcrypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, verifier, fromBase64url(signature), utf8(signed));
    assert.equal(await verify(`${header}.${claims}`), true, `round ${round}`);
    const forged = base64url(utf8(JSON.stringify({ sub: "someone else", iat: 1_700_000_000 + round })));
    assert.equal(await verify(`${header}.${forged}`), false);
  }
});

test("the key id is the RFC 7638 thumbprint", () => {
  // RFC 7638 §3.1 works an RSA example; for EC keys the members are crv, kty, x, y. Node computes it too.
  const key = signingKeyFrom(RFC_KEY);
  assert.ok(key !== null);
  const members = `{"crv":"P-256","kty":"EC","x":"${key.x}","y":"${key.y}"}`;
  assert.equal(publicJwk(key).kid, createHash("sha256").update(members).digest("base64url"));
});
