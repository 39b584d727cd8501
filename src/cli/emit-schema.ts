// Writes schema.graphql from the resolvers; with --check, fails if the committed file differs.
import { readFileSync, writeFileSync } from 'node:fs';
import { buildAppSchema, printAppSchema } from '../graphql/schema.js';

const printed = printAppSchema(await buildAppSchema());
if (process.argv.includes('--check')) {
  let committed = '';
  try {
    committed = readFileSync('schema.graphql', 'utf8');
  } catch {
    // missing file counts as drift
  }
  if (committed !== printed) {
    console.error('schema.graphql is out of date with the resolvers: run `npm run schema` and commit the result');
    process.exit(1);
  }
  console.log('schema.graphql is up to date');
} else {
  writeFileSync('schema.graphql', printed);
  console.log('wrote schema.graphql');
}
