// node-forge's modules one by one (smime.ts imports only what CMS encryption needs, not the
// TLS, SSH and PKCS#12 code of the package's index): each adds itself to the one `forge`
// object, typed by @types/node-forge.
declare module 'node-forge/lib/forge' {
  import forge from 'node-forge';
  export default forge;
}
declare module 'node-forge/lib/asn1';
declare module 'node-forge/lib/pem';
declare module 'node-forge/lib/x509';
declare module 'node-forge/lib/pkcs7';
declare module 'node-forge/lib/aes';
declare module 'node-forge/lib/random';
