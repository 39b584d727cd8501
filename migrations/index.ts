// Every migration, in order. `npm run migration:create` appends new ones here.
// Listed explicitly (not discovered on disk) so the same list runs from TypeScript in tests and from dist/.
import type { Constructor } from '@mikro-orm/core';
import type { Migration } from '@mikro-orm/migrations';
import { Migration20261203123500_NotificationFailed } from './Migration20261203123500_NotificationFailed.js';
import { Migration20261130060707_PurchaseTokenIndex } from './Migration20261130060707_PurchaseTokenIndex.js';
import { Migration20261130051904_Revalidation } from './Migration20261130051904_Revalidation.js';
import { Migration20261130051401_AnalyticsSpans } from './Migration20261130051401_AnalyticsSpans.js';
import { Migration20261122080639_KeptProofsByCustomer } from './Migration20261122080639_KeptProofsByCustomer.js';
import { Migration20261122075907_OutboxAndPromotions } from './Migration20261122075907_OutboxAndPromotions.js';
import { Migration20261122074244_NotificationOutcome } from './Migration20261122074244_NotificationOutcome.js';
import { Migration20261122060715_StoreTaskFailed } from './Migration20261122060715_StoreTaskFailed.js';
import { Migration20261122060215_VoidedPurchases } from './Migration20261122060215_VoidedPurchases.js';
import { Migration20261122053315_GooglePlay } from './Migration20261122053315_GooglePlay.js';
import { Migration20261122051612_Initial } from './Migration20261122051612_Initial.js';

export const migrationsList: { name: string; class: Constructor<Migration> }[] = [
  { name: 'Migration20261122051612_Initial', class: Migration20261122051612_Initial },
  { name: 'Migration20261122053315_GooglePlay', class: Migration20261122053315_GooglePlay },
  { name: 'Migration20261122060215_VoidedPurchases', class: Migration20261122060215_VoidedPurchases },
  { name: 'Migration20261122060715_StoreTaskFailed', class: Migration20261122060715_StoreTaskFailed },
  { name: 'Migration20261122074244_NotificationOutcome', class: Migration20261122074244_NotificationOutcome },
  { name: 'Migration20261122075907_OutboxAndPromotions', class: Migration20261122075907_OutboxAndPromotions },
  { name: 'Migration20261122080639_KeptProofsByCustomer', class: Migration20261122080639_KeptProofsByCustomer },
  { name: 'Migration20261130051401_AnalyticsSpans', class: Migration20261130051401_AnalyticsSpans },
  { name: 'Migration20261130051904_Revalidation', class: Migration20261130051904_Revalidation },
  { name: 'Migration20261130060707_PurchaseTokenIndex', class: Migration20261130060707_PurchaseTokenIndex },
  { name: 'Migration20261203123500_NotificationFailed', class: Migration20261203123500_NotificationFailed },
];
