// Signed access tokens for the auth example: `<userId>.<expiry ms>.<HMAC-SHA256>`, checked in constant time.
// A real application would get them from its login service; the check at the upgrade is the same.
import { createHmac, timingSafeEqual } from 'node:crypto';

function signature(secret, body) {
  return createHmac('sha256', secret).update(body).digest('base64url');
}

/** A token for `userId`, valid for `ttl` ms. */
export function issueToken(secret, userId, ttl = 60 * 60 * 1000) {
  const body = `${userId}.${Date.now() + ttl}`;
  return `${body}.${signature(secret, body)}`;
}

/** The user id a token was issued for, or null when it is malformed, forged or expired. */
export function verifyToken(secret, token) {
  if (typeof token !== 'string') return null;
  const [userId, expiry, given, ...rest] = token.split('.');
  if (!userId || !expiry || !given || rest.length > 0) return null;
  const expected = Buffer.from(signature(secret, `${userId}.${expiry}`));
  const actual = Buffer.from(given);
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return null;
  return Number(expiry) > Date.now() ? userId : null;
}
