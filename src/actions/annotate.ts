import { metadataAction } from './metadata-patch.ts';

/** Sets or removes (null) annotations on the pod; values are any string. */
export const annotateAction = metadataAction({
  name: 'annotate',
  field: 'annotations',
  description: 'Set annotations on the pod (JSON merge patch; a null value removes the annotation).',
  // The API server caps all annotations of an object at 256 KiB together.
  value: { type: 'string', maxLength: 262144 },
  past: 'annotated',
});
