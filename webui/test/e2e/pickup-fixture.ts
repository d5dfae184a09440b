// What the pickup page test needs to make a message as a sender's browser would (one bundle:
// one OpenPGP.js instance for every key).
export * as pgp from '../../src/pgp';
export * as pc from '../../src/pickup-crypto';
export * as kdf from '../../src/kdf';
