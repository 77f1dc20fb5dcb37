// The CRDs' JSON schemas as kubeconform and the datreeio/CRDs-catalog read them:
// schemas/<group>/<kind>_<version>.json, rendered from the same CRD objects as crds/.
//
// The transformation is the one kubeconform's scripts/openapi2jsonschema.py applies to a CRD's
// openAPIV3Schema, so a user pointing kubeconform at this directory (or at the catalog, which runs
// that script) gets the same verdicts:
//   - every object with `properties` and no `additionalProperties` gets `additionalProperties: false`
//     (kubectl's client-side validation), except the root (DENY_ROOT_ADDITIONAL_PROPERTIES unset);
//   - `format: int-or-string` becomes oneOf string/integer (our schemas use
//     x-kubernetes-int-or-string with anyOf instead, so nothing changes here);
//   - everything else, x-kubernetes-* extensions and CEL rules included, is kept as is: JSON Schema
//     validators ignore keywords they do not know, so CEL rules are not checked by kubeconform.
import { join } from 'node:path';
import { CRD_DEFINITIONS, renderCrd } from '../src/apis/crd.js';
import type { CrdDefinition } from '../src/apis/schema.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * openapi2jsonschema's additional_properties(): deny unknown fields below the root. Like the script
 * it does not descend into lists (anyOf, oneOf branches keep what they say).
 */
function denyAdditionalProperties(node: Json, isRoot: boolean): Json {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return node;
  const out: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(node)) out[k] = denyAdditionalProperties(v, false);
  if ('properties' in node && !isRoot && !('additionalProperties' in node)) out.additionalProperties = false;
  return out;
}

/** openapi2jsonschema's replace_int_or_string(). */
function replaceIntOrString(node: Json): Json {
  if (Array.isArray(node)) return node.map(replaceIntOrString);
  if (node === null || typeof node !== 'object') return node;
  const out: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(node)) {
    const isIntOrString = v !== null && typeof v === 'object' && !Array.isArray(v) && v.format === 'int-or-string';
    out[k] = isIntOrString ? { oneOf: [{ type: 'string' }, { type: 'integer' }] } : replaceIntOrString(v);
  }
  return out;
}

export interface JsonSchemaFile {
  /** Relative to the repository: schemas/<group>/<kind>_<version>.json (lower case, like the catalog). */
  path: string;
  schema: Json;
}

/** One file per served version of one CRD. */
export function crdJsonSchemas(def: CrdDefinition): JsonSchemaFile[] {
  const crd = renderCrd(def) as { spec: { group: string; names: { kind: string }; versions: Array<{ name: string; schema: { openAPIV3Schema: unknown } }> } };
  return crd.spec.versions.map((v) => ({
    path: join('schemas', crd.spec.group, `${crd.spec.names.kind}_${v.name}.json`.toLowerCase()),
    // Through JSON first: the schema objects are shared `as const` values, never mutated here.
    schema: replaceIntOrString(denyAdditionalProperties(JSON.parse(JSON.stringify(v.schema.openAPIV3Schema)) as Json, true)),
  }));
}

export function allCrdJsonSchemas(): JsonSchemaFile[] {
  return CRD_DEFINITIONS.flatMap(crdJsonSchemas);
}

/** The file text: two-space JSON like openapi2jsonschema's json.dumps(indent=2), and a newline. */
export function renderJsonSchema(file: JsonSchemaFile): string {
  return `${JSON.stringify(file.schema, null, 2)}\n`;
}
