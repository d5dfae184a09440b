// The modules the pickup unit test needs, bundled together (one OpenPGP.js instance).
export * from '../../src/pickup-crypto';
export * as pgp from '../../src/pgp';
export * as kdf from '../../src/kdf';
