// Channel binding to a PostgreSQL whose certificate has a given signature algorithm: the tests
// of one such cluster, shared by the files that each start one (one cluster per file).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createTestPki, startPostgres, type IssuedCertificate, type PostgresServer } from '@tenantgate/testing';
import { tlsServerEndPoint } from '@tenantgate/wire';
import { login, type LoginOptions } from './pg-login.ts';

export interface BackendCertificate {
  /** PEM of the root the client trusts. */
  readonly caPem: string;
  /** Must name `localhost`. */
  readonly server: IssuedCertificate;
  /** The hash RFC 5929 §4.1 assigns to its signature algorithm (node:crypto name). */
  readonly endPointHash: 'sha256' | 'sha384' | 'sha512';
  /** Its signature algorithm, so a generator that signs otherwise cannot pass unnoticed. */
  readonly signatureAlgorithmOid: string;
}

const PASSWORD = 'binding-test-password';

export function channelBindingTests(certificateName: string, makeCertificate: () => Promise<BackendCertificate>): void {
  describe(`channel binding to PostgreSQL with ${certificateName} certificate`, () => {
    let certificate: BackendCertificate;
    let db: PostgresServer;
    let options: LoginOptions;

    before(async () => {
      certificate = await makeCertificate();
      db = await startPostgres({
        serverCert: certificate.server.chainPem,
        serverKey: certificate.server.keyPem,
        hba: ['hostssl all all 127.0.0.1/32 scram-sha-256'],
        roles: [{ name: 'carol', password: PASSWORD }],
      });
      options = {
        host: db.host,
        port: db.port,
        servername: 'localhost',
        ca: certificate.caPem,
        user: 'carol',
        credentials: { password: PASSWORD },
        channelBinding: 'require',
      };
    });
    after(() => db?.stop());

    test('tls-server-end-point is the hash of the signature algorithm over the DER', () => {
      const { server, endPointHash, signatureAlgorithmOid } = certificate;
      assert.equal(server.cert.signatureAlgorithmOid, signatureAlgorithmOid);
      const expected = createHash(endPointHash).update(server.cert.raw).digest();
      assert.deepEqual(tlsServerEndPoint(server.cert), expected);
      assert.deepEqual(tlsServerEndPoint(Buffer.from(server.certPem)), expected, 'PEM input');
    });

    test('our client logs in with channel binding required', async (t) => {
      const session = await login(options);
      t.after(() => session.close());
      assert.equal(session.mechanism, 'SCRAM-SHA-256-PLUS');
      assert.equal(session.serverVerified, true);
      const result = await session.query('SELECT current_user');
      assert.deepEqual(result.rows, [['carol']]);
    });

    test('PostgreSQL refuses binding data computed over a different certificate', async () => {
      const pki = await createTestPki();
      const attempt = login({ ...options, bindingCertificate: pki.backend.cert });
      await assert.rejects(attempt, { name: 'PgServerError', code: '28000', message: 'SCRAM channel binding check failed' });
    });
  });
}
