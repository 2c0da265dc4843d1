/**
 * The JSON Schema validators drop checks documents with: the policy's shape, and each action's
 * parameters. Here each is compiled by ajv on its first use. The build (hack/build.mjs) puts in
 * this module's place the same validators compiled to JavaScript ahead of time (ajv's standalone
 * code, from validatorSchemas below), so the service compiles no schema as it starts: compiling
 * them took about 65 ms of the start-up's CPU.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { actionModules } from './actions/index.ts';
import { ajvOptions, policySchema } from './policy-schema.ts';

/** Every schema drop validates against: the policy's shape, and each action's parameters by the action's name. */
export function validatorSchemas(): { readonly policy: object; readonly parameters: ReadonlyMap<string, object> } {
  return { policy: policySchema, parameters: new Map([...actionModules].map(([name, module]) => [name, module.parameters])) };
}

let ajv: Ajv | undefined;
const compiled = new Map<object, ValidateFunction>();

function compile(schema: object): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = (ajv ??= new Ajv(ajvOptions)).compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

/** The validator of a policy's shape. */
export function policyValidator(): ValidateFunction {
  return compile(policySchema);
}

/** The validator of an action's parameters; undefined for a name that is no action. */
export function parametersValidator(action: string): ValidateFunction | undefined {
  const module = actionModules.get(action);
  return module && compile(module.parameters);
}
