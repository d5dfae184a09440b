// GnuPG 2.2's gpgsm as an S/MIME recipient's mail program, for the unit and browser tests (the
// Rust side: tests/src/gpg.rs): the recipient's key imported into a throw-away home from a
// PKCS#12 export (3DES and SHA-1, which gpgsm 2.2 reads), then `gpgsm --decrypt`.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Decrypts the DER CMS file `p7m` with the certificate and key in the PEM files `cert` and
 * `key`; returns gpgsm's `{ status, stdout, stderr }`. Throws if gpgsm imports no export. */
export function gpgsmDecrypt(cert, key, p7m) {
  const home = mkdtempSync(join(tmpdir(), 'sealpost-gpgsm-'));
  chmodSync(home, 0o700);
  try {
    const gpgsm = (args) => spawnSync('gpgsm', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase-fd', '0', ...args], { input: 'test\n', timeout: 60_000 });
    // gpgsm 2.2 refuses about one PKCS#12 export in twenty (its key-bag check misreads some
    // salts): a fresh export imports.
    let imported = false;
    for (let i = 0; i < 5 && !imported; i++) {
      const p12 = join(home, 'key.p12');
      execFileSync('openssl', ['pkcs12', '-export', '-passout', 'pass:test', '-keypbe', 'PBE-SHA1-3DES', '-certpbe', 'PBE-SHA1-3DES', '-macalg', 'sha1', '-in', cert, '-inkey', key, '-out', p12], { stdio: 'pipe' });
      imported = gpgsm(['--import', p12]).status === 0;
    }
    if (!imported) throw new Error('gpgsm refused five PKCS#12 exports of the key');
    return gpgsm(['--decrypt', p7m]);
  } finally {
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'all']);
    rmSync(home, { recursive: true, force: true });
  }
}
