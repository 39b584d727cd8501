// Bounds every string and list a caller can send, for every field, variable value and operation: one check
// before execution instead of a validator per argument, so a new argument is bounded the day it is added.
// NUL characters are refused anywhere (PostgreSQL cannot store them in text), and each string is held to the
// limit of the place it is used in: the default fits the database's varchar(255) ids, the listed places are
// the store proofs, which are larger by nature.
import {
  GraphQLError,
  getNamedType,
  getVariableValues,
  getNullableType,
  isInputObjectType,
  isListType,
  isScalarType,
  TypeInfo,
  valueFromAST,
  visit,
  visitWithTypeInfo,
  type ArgumentNode,
  type DocumentNode,
  type GraphQLInputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';

/** Characters any string input may have unless its place is listed below (ids, names, keys, cursors). */
export const DEFAULT_MAX_STRING = 255;
/** Items any list input may have unless listed below. */
export const DEFAULT_MAX_LIST = 100;

/**
 * Larger (or smaller) limits by place: `Type.field.argument` for a field argument, `InputType.field` inside an
 * input object. README "Limits" lists them.
 */
export const STRING_LIMITS: Readonly<Record<string, number>> = {
  'AppleProofInput.appReceipt': 4_000_000,
  'AppleProofInput.signedTransaction': 65_536,
  'AppleProofInput.transactionId': 64,
  'GoogleProofInput.purchaseToken': 4096,
  'GoogleProofInput.originalJson': 65_536,
  'GoogleProofInput.signature': 4096,
  'GrantPromotionalInput.reason': 500,
  'RevokePromotionalInput.reason': 500,
};
export const LIST_LIMITS: Readonly<Record<string, number>> = {};

/** The largest string any place accepts: a longer one is refused before it is looked at further. */
const LARGEST_STRING = Math.max(DEFAULT_MAX_STRING, ...Object.values(STRING_LIMITS));

/** One argument of the operation, with its type and where it stands, gathered once per document. */
interface ArgumentSite {
  place: string;
  type: GraphQLInputType;
  node: ArgumentNode;
  /** Literal arguments are checked once, when the document is first seen. */
  usesVariables: boolean;
}

export class InputBoundsError extends GraphQLError {
  constructor(problems: string[]) {
    super(`invalid input: ${problems.join('; ')}`, { extensions: { code: 'BAD_USER_INPUT', problems, http: { status: 400 } } });
  }
}

/** Checks one request's input against the bounds; throws InputBoundsError listing what is wrong. */
export class InputBounds {
  private readonly sites = new WeakMap<DocumentNode, Map<string, ArgumentSite[]>>();

  constructor(private readonly schema: GraphQLSchema) {}

  check(document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> | undefined): void {
    const problems: string[] = [];
    // Raw values first: a NUL or an oversized string is refused whatever type it was sent for (and before the
    // coercion below copies it).
    scanRaw(variables ?? {}, '$', problems);
    if (problems.length > 0) throw new InputBoundsError(problems.slice(0, 10));
    const sites = this.sitesOf(document, operation);
    if (!operation.variableDefinitions?.length) return;
    // Coerced as execution will coerce them, so each value is checked at the type of the place it is used in
    // (and the depth and cost estimates, which need coercible variables, never see values that are not).
    const coerced = getVariableValues(this.schema, operation.variableDefinitions, variables ?? {}, { maxErrors: 10 });
    if (coerced.errors) {
      throw new GraphQLError(coerced.errors.map((e) => e.message).join('; '), { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
    }
    const withVariables = sites.filter((s) => s.usesVariables);
    for (const site of withVariables) checkValue(valueFromAST(site.node.value, site.type, coerced.coerced), site.type, site.place, problems);
    if (problems.length > 0) throw new InputBoundsError(problems.slice(0, 10));
  }

  private sitesOf(document: DocumentNode, operation: OperationDefinitionNode): ArgumentSite[] {
    let byOperation = this.sites.get(document);
    if (!byOperation) this.sites.set(document, (byOperation = new Map()));
    const key = operation.name?.value ?? '';
    let sites = byOperation.get(key);
    if (sites) return sites;
    sites = [];
    const found = sites;
    const typeInfo = new TypeInfo(this.schema);
    // The whole document: fragments are part of the operation that spreads them (validation ensures each is used).
    const definitions = document.definitions.filter((d) => d === operation || d.kind === 'FragmentDefinition');
    for (const definition of definitions) {
      visit(
        definition,
        visitWithTypeInfo(typeInfo, {
          Argument(node) {
            const arg = typeInfo.getArgument();
            const field = typeInfo.getFieldDef();
            const parent = typeInfo.getParentType();
            if (!arg || !field || !parent) return;
            let usesVariables = false;
            visit(node.value, { Variable: () => void (usesVariables = true) });
            found.push({ place: `${parent.name}.${field.name}.${arg.name}`, type: arg.type, node, usesVariables });
          },
        }),
      );
    }
    const literalProblems: string[] = [];
    for (const site of sites) if (!site.usesVariables) checkValue(valueFromAST(site.node.value, site.type, {}), site.type, site.place, literalProblems);
    if (literalProblems.length > 0) {
      // Not cached: the same document always fails the same way, and is cheap to refuse again.
      throw new InputBoundsError(literalProblems.slice(0, 10));
    }
    byOperation.set(key, sites);
    return sites;
  }
}

function checkValue(value: unknown, type: GraphQLInputType, place: string, problems: string[]): void {
  if (value === null || value === undefined) return;
  const nullable = getNullableType(type) as GraphQLInputType;
  if (isListType(nullable)) {
    if (!Array.isArray(value)) return checkValue(value, nullable.ofType as GraphQLInputType, place, problems);
    const max = LIST_LIMITS[place] ?? DEFAULT_MAX_LIST;
    if (value.length > max) problems.push(`${place}: at most ${max} items (got ${value.length})`);
    else for (const item of value) checkValue(item, nullable.ofType as GraphQLInputType, place, problems);
    return;
  }
  if (isInputObjectType(nullable)) {
    const fields = nullable.getFields();
    for (const [name, fieldValue] of Object.entries(value as Record<string, unknown>)) {
      const field = fields[name];
      if (field) checkValue(fieldValue, field.type, `${nullable.name}.${name}`, problems);
    }
    return;
  }
  const named = getNamedType(nullable);
  if (isScalarType(named) && typeof value === 'string') {
    const max = STRING_LIMITS[place] ?? DEFAULT_MAX_STRING;
    if (value.length > max) problems.push(`${place}: at most ${max} characters (got ${value.length})`);
    if (value.includes('\u0000')) problems.push(`${place}: must not contain NUL characters`);
  }
}

/** NUL characters and strings longer than any place accepts, anywhere in the raw variables (keys too). */
function scanRaw(value: unknown, path: string, problems: string[], depth = 0): void {
  if (problems.length >= 10) return;
  if (typeof value === 'string') {
    if (value.includes('\u0000')) problems.push(`${path}: must not contain NUL characters`);
    else if (value.length > LARGEST_STRING) problems.push(`${path}: at most ${LARGEST_STRING} characters (got ${value.length})`);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  // Deeper than any input type of the schema nests: refuse rather than recurse without end.
  if (depth > 20) {
    problems.push(`${path}: nested too deeply`);
    return;
  }
  if (Array.isArray(value)) {
    if (value.length > 10 * DEFAULT_MAX_LIST) {
      problems.push(`${path}: at most ${10 * DEFAULT_MAX_LIST} items`);
      return;
    }
    value.forEach((item, i) => scanRaw(item, `${path}[${i}]`, problems, depth + 1));
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (key.includes('\u0000')) problems.push(`${path}: a key must not contain NUL characters`);
    scanRaw(item, `${path}.${key}`, problems, depth + 1);
  }
}
