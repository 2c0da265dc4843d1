import { labelValuePattern, metadataAction } from './metadata-patch.ts';

/** Sets or removes (null) labels on the pod, e.g. to mark it for other tools or NetworkPolicies. */
export const labelAction = metadataAction({
  name: 'label',
  field: 'labels',
  description: 'Set labels on the pod (JSON merge patch; a null value removes the label).',
  value: { type: 'string', maxLength: 63, pattern: labelValuePattern },
  past: 'labelled',
});
