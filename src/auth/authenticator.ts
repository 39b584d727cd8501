// Who is calling: a server (API key, full access) or one app user (JWT whose `sub` is the appUserId).
import { createHash, timingSafeEqual } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { AuthConfig } from '../config/config.js';
import { AppError } from '../domain/errors.js';
import { MAX_ID_CHARS, unstorableText } from '../domain/text-rules.js';

export type Principal = { kind: 'server' } | { kind: 'user'; appUserId: string };

export class Authenticator {
  private readonly keyDigests: Buffer[];
  private readonly secret: Uint8Array | null;
  private readonly jwks: JWTVerifyGetKey | null;
  /** Only configured keys ever get in here, so it holds at most API_KEYS' count. */
  private readonly matchedKeys = new Set<string>();

  constructor(
    private readonly config: AuthConfig,
    private readonly devMode: boolean,
  ) {
    this.keyDigests = config.apiKeys.map(digest);
    this.secret = config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : null;
    this.jwks = config.jwksUrl ? createRemoteJWKSet(new URL(config.jwksUrl), { cacheMaxAge: 10 * 60_000 }) : null;
  }

  /** Resolves the caller from the Authorization header (`Bearer <api key or JWT>`) or `x-api-key`. */
  async authenticate(authorization: string | undefined, apiKeyHeader: string | undefined): Promise<Principal> {
    if (this.devMode) return { kind: 'server' };
    const bearer = authorization?.match(/^Bearer\s+(.+)$/i)?.[1]?.trim();
    const credential = apiKeyHeader?.trim() || bearer;
    if (!credential) throw new AppError('UNAUTHENTICATED', 'missing credentials: send "Authorization: Bearer <API key or user token>"');
    if (this.isApiKey(credential)) return { kind: 'server' };
    if (apiKeyHeader) throw new AppError('UNAUTHENTICATED', 'invalid API key');
    return { kind: 'user', appUserId: await this.verifyUserToken(credential) };
  }

  private isApiKey(candidate: string): boolean {
    // Keys that already matched skip the hashing: the hot path sees the same server key on every request.
    if (this.matchedKeys.has(candidate)) return true;
    const d = digest(candidate);
    // Compare digests in constant time, and all of them, so timing tells nothing about which key matched.
    let match = false;
    for (const k of this.keyDigests) match = timingSafeEqual(k, d) || match;
    if (match) this.matchedKeys.add(candidate);
    return match;
  }

  private async verifyUserToken(token: string): Promise<string> {
    if (!this.secret && !this.jwks) throw new AppError('UNAUTHENTICATED', 'invalid API key (user tokens are not enabled)');
    const options = {
      issuer: this.config.jwtIssuer ?? undefined,
      audience: this.config.jwtAudience ?? undefined,
      // Tokens must expire: a leaked one is then good for a bounded time only.
      requiredClaims: ['exp', 'sub'],
    };
    try {
      const { payload } = this.secret
        ? await jwtVerify(token, this.secret, { ...options, algorithms: ['HS256'] })
        : await jwtVerify(token, this.jwks!, { ...options, algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'] });
      if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw new Error('token has no sub');
      // The subject is the appUserId: held to the same rules as one sent as an argument.
      const problem = payload.sub.length > MAX_ID_CHARS ? `is longer than ${MAX_ID_CHARS} characters` : unstorableText(payload.sub);
      if (problem) throw new Error(`"sub" is not a valid appUserId: it ${problem}`);
      return payload.sub;
    } catch (err) {
      throw new AppError('UNAUTHENTICATED', `invalid token: ${(err as Error).message}`);
    }
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** A user may only act on their own customer; the server on any. */
export function assertCanAccess(principal: Principal, appUserId: string): void {
  if (principal.kind === 'user' && principal.appUserId !== appUserId) {
    throw new AppError('FORBIDDEN', 'this token may only access its own customer');
  }
}

export function assertServer(principal: Principal): void {
  if (principal.kind !== 'server') throw new AppError('FORBIDDEN', 'this operation needs a server API key');
}
