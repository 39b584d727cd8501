// Builds the Android Publisher client from the service account, pointed at the configured API root and token
// endpoint. google-auth-library posts token requests to Google's fixed URL through the auth client's own
// transporter (a Gaxios instance); an interceptor on that transporter sends them to GOOGLE_TOKEN_URL instead.
import { google, type androidpublisher_v3 } from 'googleapis';
import type { GoogleConfig } from '../../config/config.js';

const GOOGLE_DEFAULT_TOKEN_URL = 'https://oauth2.googleapis.com/token';
const SCOPE = 'https://www.googleapis.com/auth/androidpublisher';

export function createAndroidPublisher(config: GoogleConfig): androidpublisher_v3.Androidpublisher {
  const auth = new google.auth.JWT({
    email: config.serviceAccount.client_email,
    key: config.serviceAccount.private_key,
    keyId: typeof config.serviceAccount.private_key_id === 'string' ? config.serviceAccount.private_key_id : undefined,
    scopes: [SCOPE],
  });
  if (config.tokenUrl !== GOOGLE_DEFAULT_TOKEN_URL) {
    auth.transporter.interceptors.request.add({
      resolved: async (options) => {
        if (String(options.url) === GOOGLE_DEFAULT_TOKEN_URL) options.url = new URL(config.tokenUrl);
        return options;
      },
    });
  }
  return google.androidpublisher({ version: 'v3', auth, rootUrl: config.apiRootUrl, retry: false });
}

export interface GoogleFailure {
  /** NOT_FOUND: unknown token. INVALID: Google refused the request as malformed. AUTH: credentials refused.
   *  UNAVAILABLE: 5xx, 429, timeouts, network: try again later. */
  kind: 'NOT_FOUND' | 'INVALID' | 'AUTH' | 'UNAVAILABLE';
  status: number | null;
  message: string;
}

export function describeGoogleError(err: unknown): GoogleFailure {
  const e = err as { status?: unknown; code?: unknown; response?: { status?: number; data?: unknown }; message?: string; config?: { url?: unknown } };
  const status = typeof e?.status === 'number' ? e.status : typeof e?.response?.status === 'number' ? e.response.status : typeof e?.code === 'number' ? e.code : null;
  const message = String(e?.message ?? err).slice(0, 500);
  // A refused token request (bad key, revoked service account) surfaces as an OAuth error, not an API status.
  if (/invalid_grant|invalid_client|unauthorized_client|account not found/i.test(message)) return { kind: 'AUTH', status, message };
  // Any other refusal by the token endpoint is about our credentials too, never about the purchase.
  if (status !== null && status < 500 && /\/token(\?|$)/.test(String(e?.config?.url ?? ''))) return { kind: 'AUTH', status, message };
  if (status === 404 || status === 410) return { kind: 'NOT_FOUND', status, message };
  if (status === 401 || status === 403) return { kind: 'AUTH', status, message };
  if (status === 400) return { kind: 'INVALID', status, message };
  return { kind: 'UNAVAILABLE', status, message };
}
