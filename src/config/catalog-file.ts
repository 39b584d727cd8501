import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { CatalogError, parseCatalog, type Catalog } from '../domain/catalog.js';

/** Reads and validates the catalog file (YAML or JSON; JSON is valid YAML). Throws CatalogError. */
export function loadCatalogFile(path: string): Catalog {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CatalogError(`catalog ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new CatalogError(`catalog ${path}: not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseCatalog(doc, `catalog ${path}`);
}
