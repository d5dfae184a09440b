// One bundle for the mail tests: the MIME entity and OpenPGP.js from the same build.
export * as mime from '../../src/mime';
export * as pgp from '../../src/pgp';
