// Types of senders.mjs, for the tests that import it (tsc does not check hack/*.mjs).
export declare const sendersPlaceholder: string;
export declare function oidcServiceAccountName(name: string, kind: string): string;
export declare function triggerSender(namespace: string, trigger: string): string;
