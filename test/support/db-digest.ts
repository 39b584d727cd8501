// A fingerprint of every table in the public schema: row count and a digest of the rows' contents, so a test can
// prove that a request wrote nothing (no insert, update or delete) anywhere.
import type { TestApp } from './test-app.js';

export interface TableDigest {
  rows: number;
  md5: string;
}
export type DatabaseDigest = Record<string, TableDigest>;

export async function publicTables(t: TestApp): Promise<string[]> {
  const rows = (await t.app.orm.em
    .fork()
    .getConnection()
    .execute(
      `select table_name as name from information_schema.tables
       where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`,
    )) as { name: string }[];
  return rows.map((r) => r.name);
}

export async function databaseDigest(t: TestApp, tables?: string[]): Promise<DatabaseDigest> {
  const names = tables ?? (await publicTables(t));
  const connection = t.app.orm.em.fork().getConnection();
  const digest: DatabaseDigest = {};
  for (const name of names) {
    const [row] = (await connection.execute(
      `select count(*)::int as rows, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as md5 from "${name}" t`,
    )) as { rows: number; md5: string }[];
    digest[name] = { rows: Number(row!.rows), md5: row!.md5 };
  }
  return digest;
}

/** Tables whose row count or contents differ between two digests, e.g. `purchase_order: 3 -> 4 rows`. */
export function digestChanges(before: DatabaseDigest, after: DatabaseDigest): string[] {
  const changes: string[] = [];
  for (const name of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = before[name];
    const b = after[name];
    if (!a || !b) changes.push(`${name}: ${a ? 'dropped' : 'appeared'}`);
    else if (a.rows !== b.rows) changes.push(`${name}: ${a.rows} -> ${b.rows} rows`);
    else if (a.md5 !== b.md5) changes.push(`${name}: ${a.rows} rows, contents changed`);
  }
  return changes;
}
