/**
 * The JSON schema of drop's policy document (its shape; policy.ts adds what a schema cannot
 * say). Keys are camelCase like Kubernetes manifests, with Falco's and Talon's words.
 */
const namespaceName = { type: 'string', pattern: '^[a-z0-9*?]([-a-z0-9*?]*[a-z0-9*?])?$', maxLength: 63 } as const;
const stringList = { type: 'array', items: { type: 'string', minLength: 1 } } as const;

const fieldCondition = {
  type: 'object',
  additionalProperties: false,
  required: ['field'],
  minProperties: 2,
  maxProperties: 2,
  properties: {
    field: { type: 'string', minLength: 1 },
    equals: { type: ['string', 'number', 'boolean'] },
    notEquals: { type: ['string', 'number', 'boolean'] },
    oneOf: { type: 'array', minItems: 1, items: { type: ['string', 'number', 'boolean'] } },
    prefix: { type: 'string' },
  },
} as const;

export const policySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['rules'],
  $defs: {
    match: {
      type: 'object',
      additionalProperties: false,
      properties: {
        rules: stringList,
        priority: { type: 'string' },
        tags: {
          type: 'object',
          additionalProperties: false,
          properties: { anyOf: stringList, allOf: stringList },
        },
        source: { anyOf: [{ type: 'string', minLength: 1 }, stringList] },
        outputFields: { type: 'array', items: fieldCondition },
        namespaces: {
          type: 'object',
          additionalProperties: false,
          properties: { include: { type: 'array', items: namespaceName }, exclude: { type: 'array', items: namespaceName } },
        },
        anyOf: { type: 'array', minItems: 1, items: { $ref: '#/$defs/match' } },
      },
    },
  },
  properties: {
    protectedNamespaces: { type: 'array', items: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 } },
    guards: {
      type: 'object',
      additionalProperties: false,
      properties: {
        // Bounded on both sides: a policy can tune a guard rail, never switch it off.
        cooldownSeconds: { type: 'integer', minimum: 1, maximum: 86_400 },
        destructivePerMinute: { type: 'integer', minimum: 1, maximum: 600 },
        maxAlertAgeSeconds: { type: 'integer', minimum: 10, maximum: 86_400 },
      },
    },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'match', 'actions'],
        properties: {
          name: { type: 'string', minLength: 1 },
          description: { type: 'string' },
          match: { $ref: '#/$defs/match' },
          actions: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['action'],
              properties: {
                action: { type: 'string' },
                parameters: { type: 'object' },
                continueOnError: { type: 'boolean' },
              },
            },
          },
          dryRun: { type: 'boolean' },
          continue: { type: 'boolean' },
          cooldownSeconds: { type: 'integer', minimum: 1, maximum: 86_400 },
        },
      },
    },
  },
} as const;

/**
 * How drop's schemas are compiled: every error at once, strict, and without checking the
 * schemas themselves against JSON Schema's meta-schema at startup (ajv would compile the
 * meta-schema for it: about 7 MiB and a tenth of the start's CPU). drop's schemas are constants:
 * test/unit/schemas.test.ts checks each against the meta-schema instead.
 */
export const ajvOptions = { allErrors: true, strict: true, allowUnionTypes: true, validateSchema: false } as const;
