// `npm run migrate`: apply pending migrations to the configured database and exit.
import { loadConfig } from '../config/config.js';
import { migrate, openDatabase } from '../persistence/orm.js';

const config = loadConfig();
const orm = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
try {
  const applied = await migrate(orm, config.databaseUrl);
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
} finally {
  await orm.close(true);
}
