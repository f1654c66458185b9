/** The JSON Schema of `--json` reports (schema/dsrctl-report.schema.json), compiled once with ajv. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020Module from 'ajv/dist/2020.js';

const Ajv2020 = (Ajv2020Module as unknown as { default?: typeof Ajv2020Module }).default ?? Ajv2020Module;
const schema = JSON.parse(readFileSync(fileURLToPath(new URL('../../schema/dsrctl-report.schema.json', import.meta.url)), 'utf8'));
const validate = new (Ajv2020 as unknown as new (o: object) => { compile(s: object): ((d: unknown) => boolean) & { errors?: unknown[] } })({ allErrors: true, strict: false }).compile(schema);

/** '' when `doc` is a valid report, else ajv's errors as text. */
export function reportSchemaErrors(doc: unknown): string {
  return validate(doc) ? '' : JSON.stringify(validate.errors, null, 2);
}
