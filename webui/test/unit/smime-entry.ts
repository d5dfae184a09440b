// One bundle for the S/MIME tests: the MIME entity and the S/MIME copy from the same build.
export * as mime from '../../src/mime';
export * as smime from '../../src/smime';
