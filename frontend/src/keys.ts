// A random UUID v4 for Idempotency-Key. crypto.randomUUID exists only in secure contexts, and an
// S3 website is served over plain http, so the UUID is built from getRandomValues.
export function newIdempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// The cart's secret (Cart-Token): 32 random bytes in base64url, made once per browser and kept in
// localStorage. The API stores only its hash with each hold; only this browser can release or check
// out its holds.
const CART_TOKEN_KEY = "inventory.cartToken";

export function cartToken(): string {
  const kept = localStorage.getItem(CART_TOKEN_KEY);
  if (kept && /^[A-Za-z0-9_-]{43}$/.test(kept)) return kept;
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const token = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  localStorage.setItem(CART_TOKEN_KEY, token);
  return token;
}
