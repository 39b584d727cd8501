// Verifies the OIDC token Pub/Sub attaches to push requests (Authorization: Bearer <JWT> signed by Google):
// signature against the configured JWKS, issuer, audience, expiry, and optionally the pushing service account.
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';

export interface PushAuthConfig {
  audience: string;
  jwksUrl: string;
  issuers: readonly string[];
  serviceAccountEmail: string;
}

export class PubSubPushVerifier {
  private readonly jwks: JWTVerifyGetKey;

  constructor(private readonly config: PushAuthConfig) {
    this.jwks = createRemoteJWKSet(new URL(config.jwksUrl), { cacheMaxAge: 60 * 60_000 });
  }

  /** Null when the push is authentic; otherwise the reason it is not. */
  async problem(authorization: string | undefined): Promise<string | null> {
    const token = authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
    if (!token) return 'missing bearer token (enable authentication on the Pub/Sub push subscription)';
    try {
      const { payload } = await jwtVerify(token, this.jwks, {
        issuer: [...this.config.issuers],
        audience: this.config.audience,
        requiredClaims: ['exp'],
      });
      if (payload.email !== this.config.serviceAccountEmail || payload.email_verified !== true) {
        return `token is for ${String(payload.email)}, not the configured push service account`;
      }
      return null;
    } catch (err) {
      return `invalid token: ${(err as Error).message}`;
    }
  }
}
