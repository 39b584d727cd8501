// Bounds every string and list a caller can send, for every field, variable value and operation: one check
// before execution instead of a validator per argument, so a new argument is bounded the day it is added.
// NUL characters and lone surrogates are refused anywhere (PostgreSQL cannot store them faithfully), and each string is held to the
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
  Kind,
  type ArgumentNode,
  type ASTNode,
  type FragmentDefinitionNode,
  type DocumentNode,
  type GraphQLInputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { MAX_ID_CHARS, unstorableText } from '../domain/text-rules.js';

/** Characters any string input may have unless its place is listed below (ids, names, keys, cursors). */
export const DEFAULT_MAX_STRING = MAX_ID_CHARS;
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
  // Kept proofs are keyed by "token:" + the token in a varchar(600); Play's tokens are about 150 characters.
  'GoogleProofInput.purchaseToken': 512,
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

/** What one operation of a document needs checked on each request. */
interface Plan {
  sites: ArgumentSite[];
  /** Refused whatever the variables (a literal over its bound): the same answer every time. */
  refusal: InputBoundsError | null;
  /**
   * Every variable is a built-in scalar used directly as an argument (the apps' queries): each value is checked
   * where it stands, without coercing the variables twice (execution coerces them).
   */
  direct: { variable: string; place: string; defaultValue: unknown }[] | null;
}

const BUILT_IN_SCALARS = new Set(['String', 'ID', 'Int', 'Float', 'Boolean']);

export class InputBoundsError extends GraphQLError {
  constructor(problems: string[]) {
    super(`invalid input: ${problems.join('; ')}`, { extensions: { code: 'BAD_USER_INPUT', problems, http: { status: 400 } } });
  }
}

/** Checks one request's input against the bounds; throws InputBoundsError listing what is wrong. */
export class InputBounds {
  private readonly plans = new WeakMap<DocumentNode, Map<string, Plan>>();

  constructor(private readonly schema: GraphQLSchema) {}

  check(document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> | undefined): void {
    const values = variables ?? {};
    const problems: string[] = [];
    // Raw values first: a NUL or an oversized string is refused whatever type it was sent for (and before the
    // coercion below copies it).
    scanRaw(values, '$', problems);
    if (problems.length > 0) throw new InputBoundsError(problems.slice(0, 10));
    const plan = this.planOf(document, operation);
    if (plan.refusal) throw plan.refusal;
    if (!operation.variableDefinitions?.length) return;
    if (plan.direct) {
      for (const { variable, place, defaultValue } of plan.direct) {
        const value = variable in values ? values[variable] : defaultValue;
        if (typeof value === 'string') checkString(value, place, problems);
      }
      if (problems.length > 0) throw new InputBoundsError(problems.slice(0, 10));
      return;
    }
    // Coerced as execution will coerce them, so each value is checked at the type of the place it is used in.
    const coerced = getVariableValues(this.schema, operation.variableDefinitions, values, { maxErrors: 10 });
    if (coerced.errors) throw new InputBoundsError(coerced.errors.map((e) => e.message));
    for (const site of plan.sites) {
      if (!site.usesVariables) continue;
      const value = valueFromAST(site.node.value, site.type, coerced.coerced);
      // No value: an optional argument whose variable was left out, or a nullable variable sent as null where its
      // argument or input field needs a value (graphql-jit does not check that inside input literals, and nothing
      // below it could be bounded).
      const omitted = site.node.value.kind === Kind.VARIABLE && coerced.coerced[site.node.value.name.value] === undefined;
      if (value === undefined && !omitted) problems.push(`${site.place}: a variable's value does not fit here (null where a value is required)`);
      else checkValue(value, site.type, site.place, problems);
    }
    if (problems.length > 0) throw new InputBoundsError(problems.slice(0, 10));
  }

  private planOf(document: DocumentNode, operation: OperationDefinitionNode): Plan {
    let byOperation = this.plans.get(document);
    if (!byOperation) this.plans.set(document, (byOperation = new Map()));
    const key = operation.name?.value ?? '';
    let plan = byOperation.get(key);
    if (!plan) byOperation.set(key, (plan = this.makePlan(document, operation)));
    return plan;
  }

  private makePlan(document: DocumentNode, operation: OperationDefinitionNode): Plan {
    const sites: ArgumentSite[] = [];
    const typeInfo = new TypeInfo(this.schema);
    for (const definition of [operation, ...spreadFragments(document, operation)]) {
      visit(
        definition,
        visitWithTypeInfo(typeInfo, {
          Argument(node) {
            const arg = typeInfo.getArgument();
            const directive = typeInfo.getDirective();
            const field = typeInfo.getFieldDef();
            const parent = typeInfo.getParentType();
            if (!arg) return;
            const where = directive ? `@${directive.name}` : field && parent ? `${parent.name}.${field.name}` : null;
            if (!where) return;
            let usesVariables = false;
            visit(node.value, { Variable: () => void (usesVariables = true) });
            sites.push({ place: `${where}.${arg.name}`, type: arg.type, node, usesVariables });
          },
        }),
      );
    }
    const literalProblems: string[] = [];
    for (const site of sites) if (!site.usesVariables) checkValue(valueFromAST(site.node.value, site.type, {}), site.type, site.place, literalProblems);
    const refusal = literalProblems.length > 0 ? new InputBoundsError(literalProblems.slice(0, 10)) : null;
    return { sites, refusal, direct: directUses(operation, sites) };
  }
}

/** The fragments an operation spreads, directly or through other fragments. */
function spreadFragments(document: DocumentNode, operation: OperationDefinitionNode): FragmentDefinitionNode[] {
  const byName = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) byName.set(d.name.value, d);
  const found = new Map<string, FragmentDefinitionNode>();
  const pending: ASTNode[] = [operation];
  while (pending.length > 0) {
    visit(pending.pop()!, {
      FragmentSpread(node) {
        const fragment = byName.get(node.name.value);
        if (fragment && !found.has(node.name.value)) {
          found.set(node.name.value, fragment);
          pending.push(fragment);
        }
      },
    });
  }
  return [...found.values()];
}

/** Where each variable stands, when every variable is a built-in scalar used directly as an argument; else null. */
function directUses(operation: OperationDefinitionNode, sites: ArgumentSite[]): Plan['direct'] {
  const definitions = operation.variableDefinitions ?? [];
  for (const d of definitions) {
    const type = d.type.kind === Kind.NON_NULL_TYPE ? d.type.type : d.type;
    if (type.kind !== Kind.NAMED_TYPE || !BUILT_IN_SCALARS.has(type.name.value)) return null;
  }
  const uses: NonNullable<Plan['direct']> = [];
  for (const site of sites) {
    if (!site.usesVariables) continue;
    if (site.node.value.kind !== Kind.VARIABLE) return null;
    const name = site.node.value.name.value;
    const definition = definitions.find((d) => d.variable.name.value === name);
    if (!definition) return null;
    const defaultValue = definition.defaultValue?.kind === Kind.STRING ? definition.defaultValue.value : undefined;
    uses.push({ variable: name, place: site.place, defaultValue });
  }
  return uses;
}

function checkString(value: string, place: string, problems: string[]): void {
  const max = STRING_LIMITS[place] ?? DEFAULT_MAX_STRING;
  if (value.length > max) problems.push(`${place}: at most ${max} characters (got ${value.length})`);
  const unstorable = unstorableText(value);
  if (unstorable) problems.push(`${place}: ${unstorable}`);
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
    if (typeof value !== 'object' || Array.isArray(value)) return;
    const fields = nullable.getFields();
    for (const [name, fieldValue] of Object.entries(value as Record<string, unknown>)) {
      const field = fields[name];
      if (field) checkValue(fieldValue, field.type, `${nullable.name}.${name}`, problems);
    }
    return;
  }
  const named = getNamedType(nullable);
  if (isScalarType(named) && typeof value === 'string') checkString(value, place, problems);
}

/** NUL characters and strings longer than any place accepts, anywhere in the raw variables (keys too). */
function scanRaw(value: unknown, path: string, problems: string[], depth = 0): void {
  if (problems.length >= 10) return;
  if (typeof value === 'string') {
    const unstorable = unstorableText(value);
    if (unstorable) problems.push(`${path}: ${unstorable}`);
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
    if (unstorableText(key)) problems.push(`${path}: a key ${unstorableText(key)}`);
    scanRaw(item, `${path}.${key}`, problems, depth + 1);
  }
}
