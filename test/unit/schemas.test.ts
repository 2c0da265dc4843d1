// drop compiles its schemas without checking them against JSON Schema's meta-schema at startup
// (src/policy-schema.ts, ajvOptions): this test checks each of them instead, once.
import { Ajv } from 'ajv';
import t from 'tap';
import { actionModules } from '../../src/actions/index.ts';
import { ajvOptions, policySchema } from '../../src/policy-schema.ts';

const checking = new Ajv({ ...ajvOptions, validateSchema: true });
const schemas: [string, object][] = [['the policy', policySchema], ...[...actionModules].map(([name, module]): [string, object] => [`action ${name}'s parameters`, module.parameters])];

t.test('every schema drop compiles is a valid JSON Schema, and compiles strict', async (t) => {
  t.ok(schemas.length > 6, `${schemas.length} schemas`);
  for (const [what, schema] of schemas) {
    t.equal(checking.validateSchema(schema), true, `${what}: ${checking.errorsText(checking.errors)}`);
    t.doesNotThrow(() => checking.compile(schema), `${what} compiles`);
  }
});

t.test('the check sees a schema that is not valid, which the startup options would take', async (t) => {
  const broken = { type: 'object', properties: { a: { minLength: 'three' } } };
  t.equal(checking.validateSchema(broken), false, checking.errorsText(checking.errors));
  t.equal(ajvOptions.validateSchema, false, 'startup does not check schemas against the meta-schema');
});
