// A seeded generator of GraphQL requests for the fuzz test: documents built from the schema (aliases, directives,
// fragments, several operations, wrong operation names, introspection, invalid syntax, parser bombs), variable
// values (valid ones, wrong types, huge and NUL-bearing strings, deep objects, huge lists), and HTTP envelopes
// (GET, wrong content types, persisted-query extensions, batches, bodies over the size limit).
// Request i of a phase is a pure function of (seed, phase, i): a failure reproduces with FUZZ_SEED.
import { createHash, randomUUID } from 'node:crypto';
import {
  getNamedType,
  GraphQLNonNull,
  type GraphQLScalarType,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  Kind,
  parse,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';

// ---------------------------------------------------------------------------------------------------------------
// PRNG

/** mulberry32: a tiny, fast, seedable 32-bit generator. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit seed derived from several parts (the run's seed, the phase, the request index, a stream name). */
export function deriveSeed(...parts: (string | number)[]): number {
  return createHash('sha256').update(parts.join('/')).digest().readUInt32LE(0);
}

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  /** One of the keys, by weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((s, [, w]) => s + w, 0);
    let r = this.next() * total;
    for (const [k, w] of entries) {
      if ((r -= w) < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }
  sample<T>(items: readonly T[], n: number): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy.slice(0, n);
  }
  word(min = 1, max = 12, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'): string {
    let s = '';
    const n = this.int(min, max);
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.next() * alphabet.length)];
    return s;
  }
  hex(n: number): string {
    return this.word(n, n, '0123456789abcdef');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Requests

/** Credentials a request carries. Kinds other than `server-key` and `user:<sub>` are invalid credentials. */
export type CredentialKind =
  | 'none'
  | 'wrong-key-header'
  | 'wrong-key-bearer'
  | 'garbage-bearer'
  | 'basic-auth'
  | 'expired-token'
  | 'wrong-secret-token'
  | 'unsigned-token'
  | 'token-without-exp'
  | 'server-key'
  | `user:${string}`;

export interface VarSpec {
  name: string;
  type: GraphQLInputType | null;
  /** The argument or input field it feeds, for realistic values. */
  hint: string;
}

export interface FuzzRequest {
  phase: number;
  index: number;
  method: string;
  /** null: no content-type header. */
  contentType: string | null;
  credential: CredentialKind;
  /** Extra headers (e.g. apollo-require-preflight). */
  headers: Record<string, string>;
  /** The GraphQL request fields; `undefined` ones are left out of the body. */
  query?: unknown;
  variables?: unknown;
  operationName?: unknown;
  extensions?: unknown;
  /** A body sent as is instead of the JSON of the fields above (invalid JSON, a batch, an oversized body). */
  rawBody?: string;
  /** What the generator put in, for the summary and for grouping failures. */
  features: string[];
  varSpecs: VarSpec[];
}

export interface FuzzEnv {
  schema: GraphQLSchema;
  seed: number;
  phase: number;
  /** Credential kinds and their weights for this phase. */
  credentials: Record<string, number>;
  /** appUserId values to use. */
  appUserIds: string[];
  /** Strings never to generate (the subjects of this phase's user tokens, so no caller acts on itself). */
  forbiddenStrings: Set<string>;
  orderIds: string[];
  /** Probability that a request carries one huge value (1 to 5 MB) or an oversized body. */
  hugeChance: number;
}

const PRODUCT_IDS = ['com.example.app.pro.monthly', 'com.example.app.pro.yearly', 'pro_monthly', 'com.example.app.no_ads', 'no_ads', 'com.example.app.season_pass', 'com.example.app.coins100', 'coins_100'];
const WEIRD_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\u0000alice',
  'alice\u0000',
  '\ud800',
  '\udfff\ud800',
  '💥🧨',
  '\u202e\u2066evil',
  '%00',
  "'; drop table customer; --",
  '${jndi:ldap://x}',
  '../../etc/passwd',
  '\\',
  '"',
  '\r\n\t',
  'null',
  'undefined',
  '__proto__',
  'constructor',
  '0',
  '-1',
  'NaN',
  'x'.repeat(10_000),
  'é'.repeat(3000),
];
const WEIRD_NUMBERS = [0, -1, -0, 0.5, 2147483647, 2147483648, -2147483648, -2147483649, 9007199254740993, 1e21, 1e308, -1e308, 4.2e-300];
const WEIRD_DATES = ['', 'now', '2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z', '2026-01-01', '2026-01-01T00:00:00', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59.999999999Z', '+275760-09-13T00:00:00Z', '1970-01-01T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T00:00:00+99:99', '2026-01-01T00:00:00Z\u0000'];
const SIMPLE_NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;

/**
 * Random text that does not compress: a random block longer than the compressors' windows (pglz 4 KB, LZ4 64 KB),
 * repeated. A repetitive string would be compressed by PostgreSQL before it reaches an index's size limit.
 */
function incompressible(rng: Rng, size: number): string {
  const block = rng.word(Math.min(size, 131_072), Math.min(size, 131_072), 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.');
  return block.repeat(Math.ceil(size / block.length)).slice(0, size);
}

/** A huge string of 1 to 4 MB: repetitive or random, sometimes with NULs. */
function hugeString(rng: Rng): string {
  const size = rng.int(1, 4) * 1024 * 1024 - rng.int(0, 1000);
  const nul = rng.chance(0.3);
  const head = rng.word(5, 20) + (nul ? '\u0000' : '');
  const body = rng.chance(0.5) ? rng.pick(['a', 'Z', '9', 'é', ' ']).repeat(size) : incompressible(rng, size);
  return head + body + (nul ? '\u0000' : '') + rng.word(8, 8);
}

/** Builds one document: its operations, fragments and variables. */
class DocumentGenerator {
  readonly features = new Set<string>();
  readonly varSpecs: VarSpec[] = [];
  readonly variables: Record<string, unknown> = {};
  private readonly fragments: string[] = [];
  private opVars: { name: string; decl: string }[] = [];
  private varCounter = 0;
  private lastFrom: number | null = null;
  private aliasCounter = 0;
  /** Fields selected under their own name so far, with their arguments. */
  private readonly unaliased = new Map<string, string>();
  private fragmentCounter = 0;
  private hugeLeft: number;

  constructor(
    private readonly rng: Rng,
    private readonly env: FuzzEnv,
    /** Probability that any one value is mutated into something odd. */
    private readonly mutate: number,
    private maxDepth: number,
    allowHuge: boolean,
    /** A broken document carries structural faults (unknown fields, bad fragments, undeclared variables, ...). */
    private readonly broken = false,
  ) {
    this.hugeLeft = allowHuge ? 1 : 0;
  }

  hugeUnused(): boolean {
    return this.hugeLeft > 0;
  }

  /** A structural fault, only in broken documents. */
  private fault(p: number): boolean {
    return this.broken && this.rng.chance(Math.min(1, p * 5));
  }

  document(kind: 'query' | 'mutation' | 'subscription'): { query: string; operationNames: (string | null)[] } {
    const rng = this.rng;
    const count = rng.chance(0.15) ? rng.int(2, 3) : 1;
    const ops: string[] = [];
    const names: (string | null)[] = [];
    if (count > 1) this.features.add('several-operations');
    for (let i = 0; i < count; i++) {
      const opKind = i === 0 ? kind : rng.pick(['query', 'query', 'mutation'] as const);
      let name: string | null = (count === 1 ? rng.chance(0.3) : this.fault(0.02)) ? null : rng.pick(['Op', 'Q', 'Fetch', 'M', 'Do', '_x', 'Query', 'mutation']) + i;
      if (count > 1 && name && names.includes(name) === false && this.fault(0.02)) name = names.find((n) => n) ?? name; // duplicate names
      names.push(name);
      ops.push(this.operation(opKind, name));
    }
    return { query: [...ops, ...this.fragments].join('\n'), operationNames: names };
  }

  private operation(kind: 'query' | 'mutation' | 'subscription', name: string | null): string {
    const rng = this.rng;
    const schema = this.env.schema;
    this.opVars = [];
    if (kind === 'subscription') this.features.add('subscription');
    if (kind === 'mutation') this.features.add('mutation');
    const root = kind === 'mutation' ? schema.getMutationType()! : schema.getQueryType()!;
    const fields = Object.values(root.getFields());
    const selections: string[] = [];
    if (rng.chance(0.05)) {
      // An alias bomb: one field copied many times, with the same or with distinct arguments.
      const field = rng.pick(fields);
      const n = rng.weighted({ few: 50, many: 35, hundreds: 15 }) === 'few' ? rng.int(2, 20) : rng.chance(0.7) ? rng.int(50, 200) : rng.int(300, 700);
      this.features.add(n >= 50 ? 'alias-bomb' : 'aliases');
      const sameArgs = rng.chance(0.5);
      const args = sameArgs ? this.args(field) : '';
      const sub = this.subSelection(field, 1);
      for (let i = 0; i < n; i++) selections.push(`a${i}: ${field.name}${sameArgs ? args : this.args(field)}${sub}`);
    } else {
      const count = rng.chance(0.7) ? 1 : rng.int(2, 4);
      for (let i = 0; i < count; i++) {
        if (kind !== 'mutation' && rng.chance(0.05)) {
          selections.push(this.metaRoot());
          continue;
        }
        selections.push(this.field(root, rng.pick(fields), 1));
      }
    }
    if (rng.chance(0.03)) {
      this.features.add('root-inline-fragment');
      selections.push(`... on ${root.name} { __typename }`);
    }
    const directives = this.fault(0.02) ? ` @${rng.pick(['include(if: true)', 'skip(if: false)', 'bogus', 'deprecated'])}` : '';
    const decls = this.opVars.length > 0 ? `(${this.opVars.map((v) => v.decl).join(', ')})` : '';
    if (!name && (decls || directives)) return `${kind}${decls}${directives} { ${selections.join(' ')} }`;
    if (!name && kind === 'query' && this.rng.chance(0.5)) return `{ ${selections.join(' ')} }`;
    return `${kind}${name ? ` ${name}` : ''}${decls}${directives} { ${selections.join(' ')} }`;
  }

  /** __typename, __schema { ... } or __type(name:) { ... }: introspection, which the depth limit does not count. */
  private metaRoot(): string {
    const rng = this.rng;
    this.features.add('introspection');
    const schema = this.env.schema;
    const choice = rng.weighted({ typename: 3, schema: 4, type: 3 });
    if (choice === 'typename') return `${rng.chance(0.3) ? 'tn: ' : ''}__typename`;
    const saved = this.maxDepth;
    this.maxDepth = rng.int(2, 14);
    try {
      if (choice === 'schema') return `__schema ${this.selectionSet(schema.getType('__Schema') as GraphQLObjectType, 1)}`;
      const name = rng.chance(0.8) ? rng.pick(Object.keys(schema.getTypeMap())) : rng.word();
      return `__type(name: ${JSON.stringify(name)}) ${this.selectionSet(schema.getType('__Type') as GraphQLObjectType, 1)}`;
    } finally {
      this.maxDepth = saved;
    }
  }

  private field(parent: GraphQLObjectType, field: GraphQLField<unknown, unknown>, depth: number): string {
    const rng = this.rng;
    let name = field.name;
    if (this.fault(0.01)) {
      this.features.add('unknown-field');
      name = 'bogusField';
    }
    const args = this.args(field);
    // Two selections of one field with different arguments conflict unless aliased: in a sound document, only the
    // first unaliased use of a field with arguments keeps its name.
    const key = `${parent.name}.${name}`;
    const needsAlias = !this.broken && this.unaliased.has(key) && this.unaliased.get(key) !== args;
    const alias = needsAlias || rng.chance(0.12) ? `${rng.pick(['x', 'alias', 'A', '_'])}${this.aliasCounter++}: ` : '';
    if (alias) this.features.add('aliases');
    else this.unaliased.set(key, args);
    const directives = this.directives();
    return `${alias}${name}${args}${directives}${this.subSelection(field, depth)}`;
  }

  private subSelection(field: GraphQLField<unknown, unknown>, depth: number): string {
    const rng = this.rng;
    const named = getNamedType(field.type);
    if (isLeafType(named)) {
      if (this.fault(0.01)) {
        this.features.add('selection-on-leaf');
        return ' { x }';
      }
      return '';
    }
    if (this.fault(0.01)) {
      this.features.add('missing-selection');
      return '';
    }
    return ` ${this.selectionSet(named as GraphQLObjectType, depth + 1)}`;
  }

  private selectionSet(type: GraphQLObjectType, depth: number): string {
    const rng = this.rng;
    const maxDepth = this.maxDepth;
    const all = Object.values(type.getFields());
    const leaves = all.filter((f) => isLeafType(getNamedType(f.type)));
    const pool = depth >= maxDepth ? leaves : all;
    const parts: string[] = [];
    if (pool.length === 0) {
      parts.push('__typename');
    } else {
      const n = rng.chance(0.15) ? pool.length : rng.int(1, Math.min(4, pool.length));
      for (const f of rng.sample(pool, n)) parts.push(this.field(type, f, depth));
    }
    if (rng.chance(0.08)) parts.push('__typename');
    if (rng.chance(0.06)) {
      this.features.add('inline-fragment');
      const on = !this.fault(0.1) ? type.name : rng.pick(Object.keys(this.env.schema.getTypeMap()));
      if (on !== type.name) this.features.add('fragment-wrong-type');
      parts.push(`... ${rng.chance(0.3) ? '' : `on ${on} `}${this.directives()}${this.selectionSet(type, depth)}`);
    }
    if (rng.chance(0.06)) {
      this.features.add('fragment');
      const name = `F${this.fragmentCounter++}`;
      const broken = this.fault(0.05);
      if (broken) this.features.add('broken-fragment');
      parts.push(`...${name}${this.directives()}`);
      if (!broken || rng.chance(0.5)) {
        const spreadsItself = broken && rng.chance(0.5);
        this.fragments.push(`fragment ${name} on ${type.name} ${spreadsItself ? `{ ...${name} __typename }` : this.selectionSet(type, depth)}`);
      }
    }
    return `{ ${parts.join(' ')} }`;
  }

  private directives(): string {
    const rng = this.rng;
    if (!rng.chance(0.1)) return '';
    this.features.add('include-skip');
    const which = rng.pick(['include', 'skip']);
    const r = rng.float();
    if (r < 0.6) {
      const name = this.newVar({ type: null, hint: 'if' }, 'Boolean!');
      const v = rng.float();
      this.variables[name] = this.mutate === 0 || v < 0.9 ? rng.chance(0.5) : v < 0.94 ? undefined : v < 0.97 ? 'yes' : null;
      return ` @${which}(if: $${name})`;
    }
    if (r < 0.9 || !this.fault(0.5)) return ` @${which}(if: ${rng.chance(0.5)})`;
    this.features.add('odd-directive');
    return ` ${rng.pick(['@bogus', '@deprecated', '@include', '@include(if: true) @include(if: false)', '@skip(if: "no")', '@specifiedBy(url: "x")'])}`;
  }

  private newVar(spec: Omit<VarSpec, 'name'>, decl: string): string {
    const name = `v${this.varCounter++}`;
    this.varSpecs.push({ name, ...spec });
    this.opVars.push({ name, decl: `$${name}: ${decl}` });
    return name;
  }

  private args(field: GraphQLField<unknown, unknown>): string {
    const rng = this.rng;
    const parts: string[] = [];
    // purchaseLookup takes exactly one of its (optional) arguments.
    const exactlyOne = field.name === 'purchaseLookup' && !this.broken ? rng.pick(field.args).name : null;
    for (const arg of field.args) {
      if (exactlyOne !== null) {
        if (arg.name === exactlyOne) parts.push(`${arg.name}: ${this.argValue(arg.type, arg.name)}`);
        continue;
      }
      const required = isNonNullType(arg.type) && arg.defaultValue === undefined;
      if (required ? this.fault(0.03) : !rng.chance(0.35)) {
        if (required) this.features.add('missing-argument');
        continue;
      }
      parts.push(`${arg.name}: ${this.argValue(arg.type, arg.name)}`);
    }
    if (this.fault(0.01)) {
      this.features.add('unknown-argument');
      parts.push('bogus: 1');
    }
    return parts.length > 0 ? `(${parts.join(', ')})` : '';
  }

  /** A variable (declared with the argument's type, or sometimes another) or an inline literal. */
  private argValue(type: GraphQLInputType, hint: string): string {
    const rng = this.rng;
    if (rng.chance(0.5)) {
      let decl = String(type);
      if (this.fault(0.04)) {
        this.features.add('variable-type-mismatch');
        decl = rng.pick([decl.replace(/!$/, ''), 'String', 'Int!', '[String]', 'Boolean', 'Bogus', `${decl}!`.replace(/!!$/, '!')]);
      }
      let defaultValue = '';
      if (!isNonNullType(type) && rng.chance(0.05)) {
        this.features.add('variable-default');
        defaultValue = ` = ${this.literal(type, hint)}`;
      }
      const name = this.newVar({ type, hint }, decl + defaultValue);
      if (isNonNullType(type) && this.mutate > 0 && rng.chance(0.03)) this.features.add('variable-missing');
      else this.variables[name] = this.value(type, hint, 0);
      if (this.fault(0.01)) {
        this.features.add('undeclared-variable');
        return '$undeclared';
      }
      return `$${name}`;
    }
    return this.literal(type, hint);
  }

  /** A JS value for a variable of this type: mostly valid, sometimes odd. */
  value(type: GraphQLInputType, hint: string, depth: number): unknown {
    const rng = this.rng;
    if (depth < 6 && rng.chance(this.mutate)) return this.oddValue(type, hint);
    if (isNonNullType(type)) return this.value(type.ofType, hint, depth + 1);
    if (isListType(type)) return Array.from({ length: rng.int(0, 3) }, () => this.value(type.ofType, hint, depth + 1));
    if (isInputObjectType(type)) {
      const out: Record<string, unknown> = {};
      for (const f of Object.values(type.getFields())) {
        const required = isNonNullType(f.type) && f.defaultValue === undefined;
        if (required ? !(this.mutate > 0 && rng.chance(0.02)) : rng.chance(0.4)) out[f.name] = this.value(f.type, f.name, depth + 1);
      }
      if (this.mutate > 0 && rng.chance(0.02)) out[rng.pick(['bogus', '__proto__', 'constructor', 'appUserID'])] = 'x';
      return out;
    }
    if (isEnumType(type)) return rng.pick(type.getValues()).name;
    return this.scalar(isScalarType(type) ? type.name : 'String', hint);
  }

  private string(s: string): string {
    return this.env.forbiddenStrings.has(s) ? `${s}_` : s;
  }

  private scalar(typeName: string, hint: string): unknown {
    const rng = this.rng;
    switch (typeName) {
      case 'Int':
        if (hint === 'limit') return rng.pick([1, 10, 50, 100, 200, 201, 0, -1]);
        if (hint === 'periods') return rng.pick([1, 12, 60, 0, 61]);
        if (hint === 'amount') return rng.pick([1, 5, 10, 100, 0, -5]);
        return rng.int(0, 100);
      case 'Float':
        return rng.float() * 100;
      case 'Boolean':
        return rng.chance(0.5);
      case 'ID':
        if (/order/i.test(hint)) return rng.pick([...this.env.orderIds, ...this.env.orderIds, randomUUID(), 'not-a-uuid']);
        // Webhook delivery and event ids are database serials.
        return rng.chance(0.8) ? String(rng.int(1, 50)) : rng.pick([randomUUID(), 'evt_1']);
      case 'DateTime': {
        // Instants in the past (an analytics `at` in the future is refused), `to` after the `from` just made.
        const DAY = 86_400_000;
        const t = hint === 'to' && this.lastFrom !== null ? this.lastFrom + rng.int(1, 120) * DAY : Date.now() - rng.float() * 2 * 365 * DAY;
        if (hint === 'from') this.lastFrom = t;
        const iso = new Date(Math.floor(t / 1000) * 1000).toISOString();
        return rng.chance(0.1) ? iso.replace('Z', '+00:00') : iso;
      }
      case 'String':
      default:
        return this.string(this.namedString(hint));
    }
  }

  private namedString(hint: string): string {
    const rng = this.rng;
    switch (hint) {
      case 'appUserId':
        return rng.chance(0.85) ? rng.pick(this.env.appUserIds) : `user-${rng.word(1, 8)}`;
      case 'productId':
        return rng.chance(0.85) ? rng.pick(PRODUCT_IDS) : rng.word(1, 30, 'abcdefghijklmnopqrstuvwxyz._');
      case 'entitlement':
        return rng.pick(['pro', 'no_ads', 'pro', 'unknown_entitlement']);
      case 'currency':
        return rng.pick(['coins', 'coins', 'gems']);
      case 'idempotencyKey':
        return `key-${rng.word(4, 16)}`;
      case 'reason':
        return rng.pick(['goodwill', 'ticket 812', 'fuzz', rng.word(1, 200, 'abc def')]);
      case 'orderId':
        return rng.pick([...this.env.orderIds, randomUUID(), 'not-a-uuid']);
      case 'signedTransaction':
        return `${rng.pick(['eyJhbGciOiJFUzI1NiIsIng1YyI6W119', 'eyJhbGciOiJub25lIn0', rng.word(10, 40)])}.${rng.word(10, 200, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_')}.${rng.word(0, 80)}`;
      case 'appReceipt':
        return Buffer.from(rng.word(10, 3000)).toString('base64');
      case 'originalJson':
        return rng.chance(0.8)
          ? JSON.stringify({ orderId: `GPA.${rng.int(1000, 9999)}-${rng.int(1000, 9999)}`, packageName: 'com.example.app', productId: rng.pick(PRODUCT_IDS), purchaseTime: Date.now(), purchaseState: 0, purchaseToken: rng.word(10, 40) })
          : rng.pick(['{', '[]', 'null', '{"a":', rng.word()]);
      case 'signature':
        return Buffer.from(rng.word(10, 300)).toString('base64');
      case 'packageName':
        return rng.pick(['com.example.app', 'com.other.app', rng.word()]);
      case 'purchaseToken':
        return rng.word(5, 120, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-_');
      case 'transactionId':
      case 'storeTransactionId':
        return String(rng.int(1, 9_999_999_999));
      case 'googleOrderId':
        return `GPA.${rng.int(1000, 9999)}-${rng.int(1000, 9999)}-${rng.int(1000, 9999)}-${rng.int(10000, 99999)}`;
      case 'appleOrderId':
        return rng.word(10, 10, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789');
      case 'before':
        return rng.chance(0.8) ? String(rng.int(1, 100)) : rng.pick([`evt_${rng.int(1, 100)}`, randomUUID(), rng.word()]);
      case 'eventId':
        return rng.chance(0.8) ? `evt_${rng.int(1, 100)}` : rng.pick([String(rng.int(1, 100)), randomUUID(), rng.word()]);
      case 'name':
        return rng.chance(0.8) ? rng.pick(Object.keys(this.env.schema.getTypeMap())) : rng.word();
      default:
        return rng.word();
    }
  }

  /** The odd values: null, wrong types, huge and NUL-bearing strings, deep objects, huge lists. */
  private oddValue(type: GraphQLInputType, hint: string): unknown {
    const rng = this.rng;
    const named = getNamedType(type);
    const options: Record<string, number> = { null: 2, wrongType: 3, weirdString: 4, nul: 4, long: 2, deep: 1, hugeList: isListType(isNonNullType(type) ? type.ofType : type) ? 2 : 0.3, special: 2 };
    if (this.hugeLeft > 0) options.huge = 3;
    const choice = rng.weighted(options);
    switch (choice) {
      case 'null':
        this.features.add('null-value');
        return null;
      case 'wrongType':
        this.features.add('wrong-type');
        return rng.pick<unknown>([rng.int(-5, 5), true, {}, [], 'string', 1.5, [1, 2], { a: 1 }]);
      case 'weirdString':
        this.features.add('weird-string');
        return this.string(rng.pick(WEIRD_STRINGS));
      case 'nul':
        this.features.add('nul');
        return rng.pick([`${this.namedString(hint)}\u0000`, `\u0000${rng.word()}`, '\u0000', `${rng.word()}\u0000${rng.word()}`]);
      case 'long':
        // Long, but far from the body limit: over an index's row size (about 2.7 kB), over typical column sizes.
        this.features.add('long-string');
        return incompressible(rng, rng.pick([300, 3000, 9000, 70_000]));
      case 'deep': {
        this.features.add('deep-value');
        const depth = rng.int(100, 3000);
        let v: unknown = rng.chance(0.5) ? 'leaf' : {};
        for (let i = 0; i < depth; i++) v = rng.chance(0.5) ? { a: v } : [v];
        return v;
      }
      case 'hugeList': {
        this.features.add('huge-list');
        const inner = isListType(isNonNullType(type) ? type.ofType : type) ? ((isNonNullType(type) ? type.ofType : type) as { ofType: GraphQLInputType }).ofType : type;
        const n = this.hugeLeft > 0 && rng.chance(0.5) ? (this.hugeLeft--, rng.pick([10_000, 50_000])) : rng.pick([100, 1000]);
        const item = this.value(inner, hint, 6);
        return Array.from({ length: n }, () => item);
      }
      case 'huge':
        this.hugeLeft--;
        this.features.add('huge-string');
        return hugeString(rng);
      case 'special':
      default:
        this.features.add('special-value');
        if (named.name === 'DateTime') return rng.pick(WEIRD_DATES);
        if (isEnumType(named)) return rng.pick([named.getValues()[0]!.name.toLowerCase(), 'BOGUS', 0, '']);
        if (named.name === 'Int' || named.name === 'Float') return rng.pick(WEIRD_NUMBERS);
        return this.string(rng.pick([...WEIRD_STRINGS, ...this.env.appUserIds]));
    }
  }

  /** An inline GraphQL literal for the type (printed from a value as above). */
  literal(type: GraphQLInputType, hint: string): string {
    const value = this.value(type, hint, this.rng.chance(0.5) ? 0 : 6);
    return printLiteral(value, type, this.rng);
  }
}

/** Prints a JS value as a GraphQL literal, with enum values bare where the type is an enum. */
function printLiteral(value: unknown, type: GraphQLInputType | null, rng: Rng, depth = 0): string {
  const inner = type && isNonNullType(type) ? type.ofType : type;
  if (value === null || value === undefined || depth > 600) return 'null';
  if (Array.isArray(value)) {
    const item = inner && isListType(inner) ? inner.ofType : null;
    return `[${value.map((v) => printLiteral(v, item, rng, depth + 1)).join(', ')}]`;
  }
  if (typeof value === 'object') {
    const fields = inner && isInputObjectType(inner) ? inner.getFields() : {};
    return `{${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${SIMPLE_NAME.test(k) ? k : 'bad_key'}: ${printLiteral(v, fields[k]?.type ?? null, rng, depth + 1)}`)
      .join(', ')}}`;
  }
  if (typeof value === 'string') {
    if (inner && isEnumType(inner) && SIMPLE_NAME.test(value)) return value;
    if (!/["\\\u0000-\u001f]/.test(value) && value.length < 200 && rng.chance(0.05)) return `"""${value}"""`;
    return JSON.stringify(value);
  }
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '0';
  return String(value);
}

/** Corrupts a document's text: truncation, a stray character, a NUL, a lone token. */
function corrupt(rng: Rng, text: string): string {
  const at = rng.int(0, text.length);
  switch (rng.int(0, 8)) {
    case 0:
      return text.slice(0, at);
    case 1:
      return text.slice(0, at) + rng.pick(['{', '}', '(', ')', '[', ']', '$', '@', '!', ':', '.', '"', '\\', '#', '...', '|', '&', '=']) + text.slice(at);
    case 2:
      return text.slice(0, at) + text.slice(at + rng.int(1, 10));
    case 3:
      return text.slice(0, at) + '\u0000' + text.slice(at);
    case 4:
      return rng.pick(['', ' ', '{', '}', 'query', 'mutation', 'subscription', '{ }', 'query {}', '"', '"""', '#', 'fragment', '{ ... }', '{ __typename', '\ufeff{ __typename }']);
    case 5:
      return text.replace(/\{/g, () => (rng.chance(0.1) ? '(' : '{'));
    case 6:
      return text + rng.pick([' }', ' garbage', ' {', ' query', '\u0000']);
    case 7:
      return text.slice(0, at) + '\ud83d' + text.slice(at);
    default:
      return `${text} ${text}`;
  }
}

/** Documents that stress the parser and validation rather than the resolvers. */
function parserBomb(rng: Rng): { query: string; feature: string } {
  const n = rng.pick([100, 1000, 5000, 15_000]);
  switch (rng.int(0, 8)) {
    case 0:
      return { query: `query { ${'a { '.repeat(n)}b${' }'.repeat(n)} }`, feature: 'deep-selection-nesting' };
    case 1:
      return { query: `{ __type(name: ${'['.repeat(n)}"x"${']'.repeat(n)}) { name } }`, feature: 'deep-list-literal' };
    case 2:
      return { query: `{ __type(name: ${'{a: '.repeat(Math.min(n, 12_000))}1${'}'.repeat(Math.min(n, 12_000))}) { name } }`, feature: 'deep-object-literal' };
    case 3:
      return { query: `{ ${Array.from({ length: Math.min(n, 9000) }, (_, i) => `t${i}: __typename`).join(' ')} }`, feature: 'typename-alias-bomb' };
    case 4:
      return { query: `{ __typename ${'@skip(if: false) '.repeat(Math.min(n, 5000))}}`, feature: 'many-directives' };
    case 5: {
      const k = Math.min(n, 3000);
      const vars = Array.from({ length: k }, (_, i) => `$v${i}: String`).join(', ');
      return { query: `query Q(${vars}) { __typename }`, feature: 'many-variables' };
    }
    case 6: {
      const k = Math.min(n, 2000);
      const frags = Array.from({ length: k }, (_, i) => `fragment F${i} on Query { ${i + 1 < k ? `...F${i + 1}` : '__typename'} }`).join('\n');
      return { query: `{ ...F0 }\n${frags}`, feature: 'fragment-chain' };
    }
    case 7: {
      const k = Math.min(n, 1500);
      const frags = Array.from({ length: k }, (_, i) => `fragment F${i} on Query { __typename ...F${(i + 1) % k} }`).join('\n');
      return { query: `{ ...F0 }\n${frags}`, feature: 'fragment-cycle' };
    }
    default:
      return { query: `{ products { ${'productId '.repeat(Math.min(n, 9000))}} }`, feature: 'repeated-field' };
  }
}

function pickCredential(rng: Rng, env: FuzzEnv): CredentialKind {
  return rng.weighted(env.credentials) as CredentialKind;
}

/** The request at `index` of a phase, as a pure function of the seed, the phase and the index. */
export function generateRequest(env: FuzzEnv, index: number): FuzzRequest {
  const meta = new Rng(deriveSeed(env.seed, env.phase, index, 'meta'));
  const replay = index > 0 && meta.chance(0.12);
  let baseIndex = index;
  if (replay) {
    // Mostly replay a recent cost toggle (its cost depends on a variable), else any recent document.
    const toggles: number[] = [];
    for (let j = index - 1; j >= Math.max(0, index - 20); j--) if (isCostToggle(env, j)) toggles.push(j);
    baseIndex = toggles.length > 0 && meta.chance(0.7) ? meta.pick(toggles) : Math.max(0, index - 1 - meta.int(0, 20));
  }
  const req = baseRequest(env, baseIndex);
  const rng = new Rng(deriveSeed(env.seed, env.phase, index, 'envelope'));
  req.index = index;
  if (replay) {
    // The same document text again with fresh variable values: limits verdicts cached per document must hold
    // for every value (@include/@skip conditions change the cost).
    req.features = [...req.features, 'replay'];
    if (req.varSpecs.length > 0 && req.variables && typeof req.variables === 'object' && !Array.isArray(req.variables)) {
      const gen = new DocumentGenerator(rng, env, 0.1, 4, false);
      const vars: Record<string, unknown> = {};
      for (const spec of req.varSpecs) {
        vars[spec.name] = spec.type ? gen.value(spec.type, spec.hint, 0) : rng.chance(0.5);
      }
      req.variables = vars;
    }
    req.credential = pickCredential(rng, env);
  }
  return req;
}

/** Whether request `index` is a cost toggle: an expensive selection behind @include/@skip on a variable. */
function isCostToggle(env: FuzzEnv, index: number): boolean {
  return new Rng(deriveSeed(env.seed, env.phase, index, 'toggle')).chance(0.04);
}

/** Every leaf and, down to `depth`, every object field without required arguments: the most a selection can hold. */
function fullSelection(type: GraphQLObjectType, depth: number): string {
  const parts: string[] = [];
  for (const f of Object.values(type.getFields())) {
    if (f.args.some((a) => isNonNullType(a.type) && a.defaultValue === undefined)) continue;
    const named = getNamedType(f.type);
    if (isLeafType(named)) parts.push(f.name);
    else if (depth > 1 && isObjectType(named)) parts.push(`${f.name} ${fullSelection(named, depth - 1)}`);
  }
  return `{ ${parts.join(' ')} }`;
}

function costToggle(env: FuzzEnv, rng: Rng, index: number): FuzzRequest {
  const customer = env.schema.getType('Customer') as GraphQLObjectType;
  const selection = fullSelection(customer, 2);
  const n = rng.int(20, 120);
  const directive = rng.pick(['include', 'skip']);
  const copies = Array.from({ length: n }, (_, i) => `a${i}: customer(appUserId: $u) ${selection}`).join(' ');
  const perField = rng.chance(0.5);
  const body = perField ? copies.replace(/customer\(appUserId: \$u\)/g, `customer(appUserId: $u) @${directive}(if: $c)`) : `... @${directive}(if: $c) { ${copies} }`;
  const query = `query Toggle($c: Boolean!, $u: String!) { products { productId } ${body} }`;
  const stringType = new GraphQLNonNull(env.schema.getType('String') as GraphQLScalarType);
  return {
    phase: env.phase,
    index,
    method: 'POST',
    contentType: 'application/json',
    credential: rng.chance(0.7) ? (Object.keys(env.credentials).includes('server-key') ? 'server-key' : pickCredential(rng, env)) : pickCredential(rng, env),
    headers: {},
    query,
    variables: { c: rng.chance(0.5), u: rng.pick(env.appUserIds) },
    operationName: rng.chance(0.5) ? 'Toggle' : undefined,
    features: ['cost-toggle', 'include-skip', 'alias-bomb'],
    varSpecs: [
      { name: 'c', type: null, hint: 'if' },
      { name: 'u', type: stringType, hint: 'appUserId' },
    ],
  };
}

function baseRequest(env: FuzzEnv, index: number): FuzzRequest {
  const rng = new Rng(deriveSeed(env.seed, env.phase, index, 'base'));
  if (isCostToggle(env, index)) return costToggle(env, rng, index);
  const features = new Set<string>();
  const allowHuge = rng.chance(env.hugeChance);
  const docKind = rng.weighted({ query: 55, mutation: 32, subscription: 2, invalid: 4, bomb: 3, introspection: 4 });
  const mutate = rng.chance(0.75) ? 0 : rng.pick([0.05, 0.15, 0.3]);
  const broken = rng.chance(0.15);
  const gen = new DocumentGenerator(rng, env, mutate, rng.int(2, 12), allowHuge, broken);
  let query: string;
  let operationNames: (string | null)[] = [];
  if (docKind === 'bomb') {
    const b = parserBomb(rng);
    query = b.query;
    features.add(b.feature);
  } else if (docKind === 'introspection') {
    features.add('introspection');
    const depth = rng.int(3, 14);
    const gen2 = new DocumentGenerator(rng, env, 0, depth, false);
    const d = gen2.document('query');
    query = d.query.replace(/^(query[^{]*|)\{/, (m) => `${m} __schema { types { name kind fields { name type { name kind ofType { name kind ofType { name } } } } } } `);
    operationNames = d.operationNames;
    for (const f of gen2.features) features.add(f);
    Object.assign(gen.variables, gen2.variables);
    gen.varSpecs.push(...gen2.varSpecs);
  } else {
    const d = gen.document(docKind === 'invalid' ? rng.pick(['query', 'mutation'] as const) : docKind);
    query = d.query;
    operationNames = d.operationNames;
    if (docKind === 'invalid') {
      features.add('invalid-syntax');
      query = corrupt(rng, query);
    }
  }
  if (allowHuge && gen.hugeUnused() && docKind !== 'bomb' && docKind !== 'invalid') {
    // Make sure the huge value lands somewhere: in a string variable, typically an appUserId or a proof.
    const strings = gen.varSpecs.filter((v) => v.type && ['String', 'ID'].includes(getNamedType(v.type).name) && !isListType(isNonNullType(v.type) ? v.type.ofType : v.type) && v.name in gen.variables);
    if (strings.length > 0) {
      gen.variables[rng.pick(strings).name] = hugeString(rng);
      features.add('huge-string');
    }
  }
  for (const f of gen.features) features.add(f);
  if (mutate > 0) features.add('odd-values');
  if (broken) features.add('broken-document');

  let operationName: unknown;
  const named = operationNames.filter((n): n is string => !!n);
  const r = rng.float();
  if (operationNames.length > 1) {
    if (r < 0.7) operationName = rng.pick(named.length > 0 ? named : ['Op0']);
    else if (r < 0.8) operationName = `${rng.pick(named.length > 0 ? named : ['Op'])}Wrong`;
    else operationName = undefined;
  } else if (named.length === 1) {
    operationName = r < 0.6 ? named[0] : r < 0.95 ? undefined : rng.pick([`${named[0]}X`, 'Other', '']);
  } else {
    operationName = r < 0.95 ? undefined : rng.pick(['Op', 'Query', '']);
  }
  if (rng.chance(0.01)) operationName = rng.pick<unknown>([123, {}, ['Op'], true]);
  if (operationName !== undefined && !(typeof operationName === 'string' && named.includes(operationName))) features.add('wrong-operation-name');
  if (operationName === undefined && operationNames.length > 1) features.add('missing-operation-name');

  const req: FuzzRequest = {
    phase: env.phase,
    index,
    method: 'POST',
    contentType: 'application/json',
    credential: pickCredential(rng, env),
    headers: {},
    query,
    variables: Object.keys(gen.variables).length > 0 ? gen.variables : rng.chance(0.1) ? {} : undefined,
    operationName,
    features: [],
    varSpecs: gen.varSpecs,
  };
  envelope(rng, req, features, allowHuge);
  req.features = [...features].sort();
  return req;
}

/** The HTTP around the GraphQL request: method, content type, body shape, extensions. */
function envelope(rng: Rng, req: FuzzRequest, features: Set<string>, allowHuge: boolean): void {
  if (rng.chance(0.03)) {
    features.add('persisted-query');
    const right = createHash('sha256').update(String(req.query)).digest('hex');
    const hash = rng.weighted({ wrong: 5, right: 2, garbage: 1 });
    req.extensions = { persistedQuery: { version: rng.chance(0.9) ? 1 : 2, sha256Hash: hash === 'right' ? right : hash === 'wrong' ? createHash('sha256').update(`x${rng.word()}`).digest('hex') : rng.word() } };
    if (rng.chance(0.4)) {
      features.add('persisted-query-without-query');
      req.query = undefined;
    }
  } else if (rng.chance(0.01)) {
    features.add('odd-extensions');
    req.extensions = rng.pick<unknown>(['x', [], { persistedQuery: null }, { persistedQuery: 'x' }]);
  }
  const shape = rng.weighted({ json: 82, get: 6, contentType: 3, badJson: 2, batch: 1.5, oversize: allowHuge ? 15 : 0, method: 1, fields: 2.5 });
  switch (shape) {
    case 'get': {
      features.add('GET');
      const text = typeof req.query === 'string' ? req.query : '';
      if (text.length > 12_000) break; // long URLs are another test; Node refuses headers over 16 KB
      req.method = 'GET';
      req.contentType = rng.chance(0.5) ? 'application/json' : null;
      if (rng.chance(0.5)) req.headers['apollo-require-preflight'] = 'true';
      if (JSON.stringify(req.variables ?? {}).length > 8000) req.variables = undefined;
      break;
    }
    case 'contentType':
      features.add('wrong-content-type');
      req.contentType = rng.pick([null, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/graphql', 'application/json; charset=latin1', 'application/xml', '*/*']);
      break;
    case 'badJson': {
      features.add('invalid-json');
      const body = JSON.stringify({ query: req.query, variables: req.variables });
      req.rawBody = rng.pick([body.slice(0, rng.int(0, body.length - 1)), `${body}}`, "{'query': '{ __typename }'}", '', 'null', '"query"', '{"query": "{ __typename }", "query": 1}', '\u0000', `{"query": "${'['.repeat(100_000)}"}`, `${'['.repeat(200_000)}${']'.repeat(200_000)}`]);
      break;
    }
    case 'batch':
      features.add('batch');
      req.rawBody = JSON.stringify([{ query: req.query, variables: req.variables, operationName: req.operationName }, { query: '{ __typename }' }]);
      break;
    case 'oversize': {
      features.add('oversized-body');
      const size = 6 * 1024 * 1024 + rng.int(1, 1024 * 1024);
      req.rawBody = JSON.stringify({ query: '{ __typename }', variables: { padding: 'p'.repeat(size) } });
      break;
    }
    case 'method':
      features.add('other-method');
      req.method = rng.pick(['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']);
      if (req.method === 'HEAD' || req.method === 'OPTIONS') req.rawBody = undefined;
      break;
    case 'fields': {
      features.add('odd-body-fields');
      const which = rng.int(0, 5);
      if (which === 0) req.variables = JSON.stringify(req.variables ?? {});
      else if (which === 1) req.variables = [req.variables];
      else if (which === 2) req.query = { kind: 'Document' };
      else if (which === 3) req.query = 42;
      else if (which === 4) req.query = undefined;
      else req.variables = 'not json';
      break;
    }
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Looking at documents

/** The operation a request runs: the one named, or the only one. */
export function selectedOperation(doc: DocumentNode, operationName: unknown): OperationDefinitionNode | null {
  const ops = doc.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  if (typeof operationName === 'string' && operationName !== '') return ops.find((o) => o.name?.value === operationName) ?? null;
  return ops.length === 1 ? ops[0]! : null;
}

export function tryParse(query: unknown): DocumentNode | null {
  if (typeof query !== 'string') return null;
  try {
    return parse(query);
  } catch {
    return null;
  }
}

/** Response key -> root field name of the operation run, following fragments at the root. */
export function rootFields(doc: DocumentNode, operationName: unknown): Map<string, string> {
  const out = new Map<string, string>();
  const op = selectedOperation(doc, operationName);
  if (!op) return out;
  const fragments = new Map(doc.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]));
  const walk = (set: SelectionSetNode, seen: Set<string>) => {
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) out.set(s.alias?.value ?? s.name.value, s.name.value);
      else if (s.kind === Kind.INLINE_FRAGMENT) walk(s.selectionSet, seen);
      else if (!seen.has(s.name.value) && fragments.has(s.name.value)) walk(fragments.get(s.name.value)!.selectionSet, new Set([...seen, s.name.value]));
    }
  };
  walk(op.selectionSet, new Set());
  return out;
}

/** Depth of the deepest field of the operation, not counting introspection (as GRAPHQL_MAX_DEPTH is documented). */
export function operationDepth(doc: DocumentNode, op: OperationDefinitionNode): number {
  const fragments = new Map(doc.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]));
  const depthOf = (set: SelectionSetNode | undefined, depth: number, seen: Set<string>): number => {
    if (!set) return depth;
    let max = depth;
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) {
        if (!s.name.value.startsWith('__')) max = Math.max(max, depthOf(s.selectionSet, depth + 1, seen));
      } else if (s.kind === Kind.INLINE_FRAGMENT) max = Math.max(max, depthOf(s.selectionSet, depth, seen));
      else if (!seen.has(s.name.value) && fragments.has(s.name.value)) max = Math.max(max, depthOf(fragments.get(s.name.value)!.selectionSet, depth, new Set([...seen, s.name.value])));
    }
    return max;
  };
  return depthOf(op.selectionSet, 0, new Set());
}

/** A short, readable stand-in for a value: huge strings and deep or long structures are summarized. */
export function summarize(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') {
    if (value.length <= 120) return value;
    const nul = value.indexOf('\u0000');
    return `<string of ${value.length} chars: ${JSON.stringify(value.slice(0, 40))}…${nul >= 0 ? `, NUL at ${nul}` : ''}>`;
  }
  if (Array.isArray(value)) {
    if (depth > 4) return `<nested ${nestingDepth(value)} levels deep>`;
    if (value.length > 5) return [...value.slice(0, 3).map((v) => summarize(v, depth + 1)), `<… ${value.length} items in all>`];
    return value.map((v) => summarize(v, depth + 1));
  }
  if (value && typeof value === 'object') {
    if (depth > 4) return `<nested ${nestingDepth(value)} levels deep>`;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, summarize(v, depth + 1)]));
  }
  return value;
}

function nestingDepth(value: unknown): number {
  let d = 0;
  let v = value;
  while (v && typeof v === 'object') {
    d++;
    v = Array.isArray(v) ? v[0] : Object.values(v)[0];
  }
  return d;
}

/** Everything the caller can know about a request, for a failure message. */
export function describeRequest(req: FuzzRequest, maxQuery = 1500): Record<string, unknown> {
  const q = typeof req.query === 'string' ? req.query : req.query;
  return {
    phase: req.phase,
    index: req.index,
    credential: req.credential,
    method: req.method,
    contentType: req.contentType,
    ...(Object.keys(req.headers).length > 0 ? { headers: req.headers } : {}),
    query: typeof q === 'string' && q.length > maxQuery ? `${q.slice(0, maxQuery)}… <${q.length} chars in all>` : q,
    ...(req.variables !== undefined ? { variables: summarize(req.variables) } : {}),
    ...(req.operationName !== undefined ? { operationName: req.operationName } : {}),
    ...(req.extensions !== undefined ? { extensions: req.extensions } : {}),
    ...(req.rawBody !== undefined ? { rawBody: summarize(req.rawBody) } : {}),
    features: req.features,
  };
}
