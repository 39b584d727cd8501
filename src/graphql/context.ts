import type { Principal } from '../auth/authenticator.js';
import type { Services } from '../services/container.js';

export interface GraphQLContext {
  services: Services;
  principal: Principal;
  requestId: string;
  /** The request's clock reading: every resolver of one request sees the same `now`. */
  now: Date;
}
