// What the per-run CA (lib/secrets/ca.ts) uses of the X.509 library, reflect-metadata loaded
// before it (tsyringe needs the polyfill). scripts/bundle.js bundles this file from the library's
// ES modules into dist/lib/x509.js, where esbuild drops what these names do not reach (RSA, CMS
// and attribute schemas: 376 KB instead of 574, ~17 ms to evaluate instead of ~33 on the
// development VM); lib/bundles.ts loads it.
import 'reflect-metadata';

export {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  cryptoProvider,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from '@peculiar/x509';
