// make-vectors.mjs writes vectors.json: Standard Webhooks v1a (ed25519)
// signatures made by Node's built-in crypto, an implementation independent
// of Go's, for verify_ed25519_test.go to check the Verifier against.
//
//   node testdata/v1a/make-vectors.mjs > testdata/v1a/vectors.json
//
// Keys come from fixed seeds and ed25519 signatures are deterministic, so
// the output is the same on every run. CI does not run Node: the output
// is checked in.
import { createHmac, createPrivateKey, createPublicKey, sign } from "node:crypto";

// PKCS#8 DER header of an ed25519 private key; the 32-byte seed follows.
const pkcs8Prefix = Buffer.from("302e020100300506032b657004220420", "hex");

function keyPair(seedByte) {
  const seed = Buffer.alloc(32, seedByte);
  const priv = createPrivateKey({ key: Buffer.concat([pkcs8Prefix, seed]), format: "der", type: "pkcs8" });
  const pub = createPublicKey(priv).export({ format: "jwk" });
  const pubRaw = Buffer.from(pub.x, "base64url");
  return {
    priv,
    whsk: "whsk_" + Buffer.concat([seed, pubRaw]).toString("base64"),
    whpk: "whpk_" + pubRaw.toString("base64"),
  };
}

const a = keyPair(1), b = keyPair(2), c = keyPair(3);
const hmacKey = Buffer.from("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "base64");
const whsec = "whsec_" + hmacKey.toString("base64");

const id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const ts = 1614265330;
const body = '{"test": 2432232314}';
const content = (i, t, p) => Buffer.from(`${i}.${t}.${p}`);

const v1a = (kp, i = id, t = ts, p = body) => "v1a," + sign(null, content(i, t, p), kp.priv).toString("base64");
const v1 = (i = id, t = ts, p = body) => "v1," + createHmac("sha256", hmacKey).update(content(i, t, p)).digest("base64");

// S + L: the same signature with a non-canonical S, which RFC 8032 says
// to refuse; the sum of two values below 2^253 fits in 32 bytes.
function malleate(entry) {
  const sig = Buffer.from(entry.slice(4), "base64");
  const L = (1n << 252n) + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]);
  s += L;
  for (let i = 0; i < 32; i++) { sig[32 + i] = Number(s & 0xffn); s >>= 8n; }
  return "v1a," + sig.toString("base64");
}

const good = v1a(a);
const cases = [
  { name: "valid", keys: [a.whpk], signature: good, valid: true },
  { name: "valid, webhook-* headers", keys: [a.whpk], signature: good, valid: true, unbranded: true },
  { name: "tampered body", keys: [a.whpk], signature: good, body: body + " ", valid: false },
  { name: "tampered id", keys: [a.whpk], signature: good, id: id + "x", valid: false },
  { name: "tampered timestamp", keys: [a.whpk], signature: v1a(a, id, ts + 1), valid: false },
  { name: "truncated signature", keys: [a.whpk], signature: good.slice(0, -4), valid: false },
  { name: "signature without padding", keys: [a.whpk], signature: good.replace(/=+$/, ""), valid: false },
  { name: "wrong key", keys: [b.whpk], signature: good, valid: false },
  { name: "malleated signature (S + L)", keys: [a.whpk], signature: malleate(good), valid: false },
  { name: "v1a signature labelled v1", keys: [a.whpk], signature: "v1," + good.slice(4), valid: false },
  { name: "v1 signature labelled v1a, secret accepted", keys: [whsec], signature: "v1a," + v1().slice(3), valid: false },
  { name: "v1a entry, only a secret accepted", keys: [whsec], signature: good, valid: false },
  { name: "mixed header, public key accepted", keys: [a.whpk], signature: v1() + " " + good, valid: true },
  { name: "mixed header, secret accepted", keys: [whsec], signature: good + " " + v1(), valid: true },
  { name: "mixed header and keys, v1 forged", keys: [whsec, a.whpk], signature: "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " + good, valid: true },
  { name: "mixed keys, v1 only", keys: [a.whpk, whsec], signature: v1(), valid: true },
  { name: "rotation, old key still accepted", keys: [b.whpk, a.whpk], signature: good, valid: true },
  { name: "rotation, header signed with both", keys: [b.whpk], signature: good + " " + v1a(b), valid: true },
  { name: "rotation, neither key", keys: [c.whpk], signature: good + " " + v1a(b), valid: false },
  { name: "entry ends at a comma", keys: [a.whpk], signature: good + ",extra", valid: true },
  { name: "other versions skipped", keys: [a.whpk], signature: "v2,xyz v1b," + good.slice(4) + " " + good, valid: true },
].map((c) => ({ id, timestamp: ts, body, ...c }));

const out = {
  generator: `node ${process.version} crypto`,
  keyPairs: [a, b, c].map(({ whsk, whpk }) => ({ whsk, whpk })),
  signed: { key: a.whsk, id, timestamp: ts, body, signature: good },
  cases,
};
process.stdout.write(JSON.stringify(out, null, 2) + "\n");
