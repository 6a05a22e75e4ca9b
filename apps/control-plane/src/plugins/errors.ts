// One error shape for every response: the error handler translates whatever was thrown through
// the error table (errors.ts), and unknown URLs get the same shape as every other 404.
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { notFound, toErrorReply, UnauthorizedError } from '../errors.ts';

export interface ErrorsPluginOptions {
  /** The body limit, named in 413 replies. */
  readonly bodyLimit: number;
}

const errors: FastifyPluginAsync<ErrorsPluginOptions> = async (app, { bodyLimit }) => {
  app.setErrorHandler((error, request, reply) => {
    const { statusCode, body, internal } = toErrorReply(error, bodyLimit);
    // The place that decides what to do logs it: faults with their stack, client errors briefly.
    if (internal) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: body.code, statusCode }, body.message);
    if (error instanceof UnauthorizedError) void reply.header('www-authenticate', 'Bearer');
    return reply.code(statusCode).type('application/json; charset=utf-8').send(body);
  });
  app.setNotFoundHandler((request) => {
    throw notFound(`no route ${request.method} ${request.url.split('?')[0]}`);
  });
};

export default fp(errors, { name: 'errors', fastify: '5.x' });
