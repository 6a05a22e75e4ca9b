// The admin port's session endpoints with several workers: the primary serves the admin port,
// the sessions live in the workers. The primary asks every listening worker over IPC and merges
// the answers; a worker that does not answer within WORKER_ANSWER_MS is left out.
// Map: docs/architecture.md, "Drain and shutdown".
import type { Worker } from 'node:cluster';
import type { SessionInfo } from '../session/index.ts';
import type { AdminSessions } from './admin.ts';
import type { ProtocolTraceOptions } from '../telemetry/index.ts';

const WORKER_ANSWER_MS = 1_000;

export const SessionsMessage = {
  List: 'tenantgate:sessions:list',
  Terminate: 'tenantgate:sessions:terminate',
  Trace: 'tenantgate:sessions:trace',
  TraceTenant: 'tenantgate:sessions:trace-tenant',
  Answer: 'tenantgate:sessions:answer',
} as const;

type SessionsRequest =
  | { readonly type: typeof SessionsMessage.List; readonly id: number; readonly tenant?: string }
  | { readonly type: typeof SessionsMessage.Terminate; readonly id: number; readonly session: string }
  | { readonly type: typeof SessionsMessage.Trace; readonly id: number; readonly session: string; readonly options: ProtocolTraceOptions }
  | {
      readonly type: typeof SessionsMessage.TraceTenant;
      readonly id: number;
      readonly tenant: string;
      readonly connections: number;
      readonly options: ProtocolTraceOptions;
    };

interface SessionsAnswer {
  readonly type: typeof SessionsMessage.Answer;
  readonly id: number;
  readonly sessions?: readonly SessionInfo[];
  /** Sessions ended or traced; for a tenant trace, 1 (this process took it). */
  readonly count?: number;
}

/** What a worker's own sessions answer (app.ts Gateway). */
export interface ProcessSessions {
  list(tenantId?: string): SessionInfo[];
  terminate(which: { readonly id: string }): number;
  traceSession(id: string, options: ProtocolTraceOptions): number;
  traceTenant(tenantId: string, connections: number, options: ProtocolTraceOptions): void;
}

const REQUEST_TYPES = new Set<unknown>([
  SessionsMessage.List,
  SessionsMessage.Terminate,
  SessionsMessage.Trace,
  SessionsMessage.TraceTenant,
]);

function isRequest(message: unknown): message is SessionsRequest {
  return typeof message === 'object' && message !== null && REQUEST_TYPES.has((message as { type?: unknown }).type);
}

function count(answers: readonly SessionsAnswer[]): number {
  return answers.reduce((sum, answer) => sum + (answer.count ?? 0), 0);
}

function isMessage<T extends { type: string }>(message: unknown, type: T['type']): message is T {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;
}

/** The worker's side: answers the primary's requests from this process's sessions. */
export function answerSessionRequests(channel: Pick<NodeJS.Process, 'on' | 'send'>, sessions: ProcessSessions): void {
  channel.on('message', (message: unknown) => {
    if (!isRequest(message)) return;
    const answer = (fields: Omit<SessionsAnswer, 'type' | 'id'>): void => {
      channel.send?.({ type: SessionsMessage.Answer, id: message.id, ...fields } satisfies SessionsAnswer);
    };
    switch (message.type) {
      case SessionsMessage.List:
        return answer({ sessions: sessions.list(message.tenant) });
      case SessionsMessage.Terminate:
        return answer({ count: sessions.terminate({ id: message.session }) });
      case SessionsMessage.Trace:
        return answer({ count: sessions.traceSession(message.session, message.options) });
      case SessionsMessage.TraceTenant:
        sessions.traceTenant(message.tenant, message.connections, message.options);
        return answer({ count: 1 });
    }
  });
}

/** The primary's side: AdminSessions over every listening worker. */
export class WorkerSessions implements AdminSessions {
  readonly #workers: () => readonly Worker[];
  readonly #waiting = new Map<number, { readonly answers: SessionsAnswer[]; remaining: number; done: () => void }>();
  #next = 0;

  constructor(workers: () => readonly Worker[]) {
    this.#workers = workers;
  }

  /** Feed every message from a worker; true when it was an answer of ours. */
  onMessage(message: unknown): boolean {
    if (!isMessage<SessionsAnswer>(message, SessionsMessage.Answer)) return false;
    const waiting = this.#waiting.get(message.id);
    if (waiting !== undefined) {
      waiting.answers.push(message);
      if (--waiting.remaining === 0) waiting.done();
    }
    return true;
  }

  async list(tenantId: string | undefined): Promise<readonly SessionInfo[]> {
    const answers = await this.#ask((id) => ({ type: SessionsMessage.List, id, ...(tenantId === undefined ? {} : { tenant: tenantId }) }));
    return answers.flatMap((answer) => answer.sessions ?? []);
  }

  async terminate(session: string): Promise<number> {
    return count(await this.#ask((id) => ({ type: SessionsMessage.Terminate, id, session })));
  }

  async trace(session: string, options: ProtocolTraceOptions): Promise<number> {
    return count(await this.#ask((id) => ({ type: SessionsMessage.Trace, id, session, options })));
  }

  async traceTenant(tenant: string, connections: number, options: ProtocolTraceOptions): Promise<number> {
    return count(await this.#ask((id) => ({ type: SessionsMessage.TraceTenant, id, tenant, connections, options })));
  }

  async #ask(request: (id: number) => SessionsRequest): Promise<SessionsAnswer[]> {
    const workers = this.#workers().filter((worker) => worker.isConnected());
    const id = this.#next++;
    const answers: SessionsAnswer[] = [];
    if (workers.length === 0) return answers;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, WORKER_ANSWER_MS);
      this.#waiting.set(id, {
        answers,
        remaining: workers.length,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      for (const worker of workers) worker.send(request(id));
    });
    this.#waiting.delete(id);
    return answers;
  }
}
