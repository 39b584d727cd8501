// Generates a migration from the difference between the entities and a scratch PostgreSQL database
// that has every existing migration applied, writes it to migrations/ and registers it in migrations/index.ts.
// Needs DATABASE_URL pointing at a server where it may create and drop a scratch database.
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pg from 'pg';
import { migrate, openDatabase } from '../persistence/orm.js';

const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const scratch = `iap_migration_${process.pid}`;
const admin = new pg.Client({ connectionString: base });
await admin.connect();
await admin.query(`create database ${scratch}`);
const url = new URL(base);
url.pathname = `/${scratch}`;
const orm = await openDatabase({ url: url.toString(), dataDir: '' });
try {
  await migrate(orm);
  const name = process.argv[2];
  const result = await orm.migrator.create(resolve('migrations'), false, false, name);
  if (result.fileName) {
    // The BI views (analytics_*) are written by hand in their migration; the entity diff knows no views and
    // would drop them.
    const file = resolve('migrations', result.fileName);
    const text = readFileSync(file, 'utf8').replace(/ *this\.addSql\(`(?:drop|create) view (?:if exists )?"analytics_[^`]*`\);\n\n?/g, '');
    if (text.includes('this.addSql(')) {
      writeFileSync(file, text);
    } else {
      unlinkSync(file);
      result.fileName = '';
    }
  }
  if (!result.fileName) {
    console.log('no schema changes: nothing generated');
  } else {
    const className = result.fileName.replace(/\.ts$/, '');
    const indexPath = resolve('migrations/index.ts');
    let index = readFileSync(indexPath, 'utf8');
    index = index.replace(/(import type \{ Migration \} from '@mikro-orm\/migrations';\n)/, `$1import { ${className} } from './${className}.js';\n`);
    index = index.replace(/\] = \[([^\]]*)\];/, (_m, inner: string) => {
      const items = inner.trim() ? `${inner.trimEnd()}\n  { name: '${className}', class: ${className} },\n` : `\n  { name: '${className}', class: ${className} },\n`;
      return `] = [${items}];`;
    });
    writeFileSync(indexPath, index);
    console.log(`generated migrations/${result.fileName}`);
  }
} finally {
  await orm.close(true);
  await admin.query(`drop database if exists ${scratch} with (force)`);
  await admin.end();
}
