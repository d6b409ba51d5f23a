// Times are the lowest layer (src/time.ts): the reports, the engine and the storage's messages share them.
export * from '../time.js';
