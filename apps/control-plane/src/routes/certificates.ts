// Client certificates for a tenant's roles (admin tokens only): POST .../roles/:role/certificates
// signs the client's CSR with the issuing CA for a lifetime up to the tenant's maximum; POST
// .../certificates/revoke moves the tenant's "not before" instant to now, so every certificate
// issued earlier is refused at its next connection, on every gateway (the write invalidates the
// route like any other).
import type { FastifyPluginAsync } from 'fastify';
import type { Tenant } from '@tenantgate/tenancy';
import type { CertificateIssuer } from '../certificate-issuer.ts';
import { CsrError } from '../certificate-issuer.ts';
import { etagOf } from '../etag.ts';
import { IssuingNotConfiguredError, tenantNotFound, validationError } from '../errors.ts';
import { certificateRequest, errorResponses, issuedCertificate, revokedCertificates, roleParams, tenantIdParams } from '../schemas.ts';

/** A tenant's longest certificate lifetime when it sets none. */
export const DEFAULT_MAX_TTL_SECONDS = 3600;

export interface CertificateRoutesOptions {
  /** Absent: the endpoints answer 501. */
  readonly issuer: CertificateIssuer | undefined;
}

const certificates: FastifyPluginAsync<CertificateRoutesOptions> = async (app, options) => {
  const tags = ['certificates'];
  const issuerOrFail = (): CertificateIssuer => {
    if (options.issuer === undefined) throw new IssuingNotConfiguredError();
    return options.issuer;
  };

  app.post<{ Params: { id: string; role: string }; Body: { csr: string; ttlSeconds: number } }>(
    '/v1/tenants/:id/roles/:role/certificates',
    {
      schema: {
        tags,
        summary: "Sign a client certificate for a tenant's role from a CSR",
        params: roleParams,
        body: certificateRequest,
        response: { 201: issuedCertificate, ...errorResponses(400, 401, 403, 404, 413, 415, 501) },
      },
    },
    async (request, reply) => {
      const issuer = issuerOrFail();
      const { id, role } = request.params;
      const stored = await app.store.get(id, { secrets: false });
      if (stored === undefined) throw tenantNotFound(id);
      const maxTtl = stored.tenant.clientCertificates?.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
      if (request.body.ttlSeconds > maxTtl) {
        throw validationError('body', [
          { path: '/ttlSeconds', message: `must be at most ${maxTtl}, the tenant's clientCertificates.maxTtlSeconds` },
        ]);
      }
      let issued;
      try {
        issued = await issuer.issue(request.body.csr, id, role, request.body.ttlSeconds, notBeforeFloor(stored.tenant));
      } catch (error) {
        if (error instanceof CsrError) throw validationError('body', [{ path: '/csr', message: error.message }]);
        throw error;
      }
      app.metrics.certificatesIssued.inc();
      request.log.info(
        { tenant: id, role, serialNumber: issued.serialNumber, notAfter: issued.notAfter.toISOString() },
        'client certificate issued',
      );
      return reply
        .code(201)
        .send({ certificate: issued.certificate, serialNumber: issued.serialNumber, notAfter: issued.notAfter.toISOString() });
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/tenants/:id/certificates/revoke',
    {
      schema: {
        tags,
        summary: 'Refuse every client certificate of the tenant issued until now',
        params: tenantIdParams,
        response: { 200: revokedCertificates, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const notBefore = new Date().toISOString();
      const stored = await app.store.update(request.params.id, (current) => ({
        ...current,
        clientCertificates: { ...current.clientCertificates, notBefore },
      }));
      await app.invalidations.publish();
      request.log.info({ tenant: request.params.id, notBefore }, 'client certificates revoked');
      void reply.header('etag', etagOf(stored.version));
      return { notBefore };
    },
  );
};

/**
 * When the certificate starts: now, in whole seconds as certificates hold them, but never before
 * the tenant's "not before" (a revoke in this very second), or it would be refused at once.
 */
function notBeforeFloor(tenant: Tenant): Date {
  const floor = tenant.clientCertificates?.notBefore === undefined ? 0 : Date.parse(tenant.clientCertificates.notBefore);
  return new Date(Math.max(Date.now(), Math.ceil(floor / 1000) * 1000));
}

export default certificates;
