/*
 * herald.d.mts -- the types of herald.mjs, for `import` (package.json "exports"): the same names
 * as herald.d.ts, which has them all, with Herald as the default export, as herald.mjs has it.
 */
export * from './herald.js';
export { Herald as default } from './herald.js';
