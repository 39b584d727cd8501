// User tokens (JWTs) as an identity provider would issue them, and broken ones that must be refused.
import { SignJWT } from 'jose';
import { TEST_JWT_SECRET } from './test-app.js';

export async function userToken(sub: string, opts: { secret?: string; expiresIn?: string; exp?: boolean } = {}): Promise<string> {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setSubject(sub);
  if (opts.exp !== false) jwt.setExpirationTime(opts.expiresIn ?? '1h');
  return jwt.sign(new TextEncoder().encode(opts.secret ?? TEST_JWT_SECRET));
}

/** An unsigned token (`alg: none`) claiming to be `sub`. */
export function unsignedToken(sub: string): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
}
