// One bounded wait of the backend leg: a phase that settles once, by its own events, by its
// timeout, or by the caller's AbortSignal, and removes every listener and timer it added.
// Map: docs/architecture.md, step 10.
import { BackendAbortedError, BackendTimeoutError, type BackendError, type BackendPhase } from '../errors.ts';

export interface PhaseLimits {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface Settle<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/** Registers the phase's listeners; returns what removes them. */
export type PhaseRun<T> = (settle: Settle<T>) => () => void;

export function runPhase<T>(phase: BackendPhase, limits: PhaseLimits, where: string, run: PhaseRun<T>): Promise<T> {
  const { timeoutMs, signal } = limits;
  return new Promise<T>((resolve, reject) => {
    let done = false;
    // Replaced once `run` has registered its listeners; `run` may settle before it returns.
    let cleanup = (): void => {};
    const finish = (error: Error | undefined, value?: T): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      cleanup();
      if (error === undefined) resolve(value as T);
      else reject(error);
    };
    const onAbort = (): void => finish(abortedError(phase, where, signal?.reason));
    const timer = setTimeout(() => finish(timeoutError(phase, where, timeoutMs)), timeoutMs);
    if (signal?.aborted) return finish(abortedError(phase, where, signal.reason));
    signal?.addEventListener('abort', onAbort, { once: true });
    cleanup = run({ resolve: (value) => finish(undefined, value), reject: (error) => finish(error) });
    if (done) cleanup();
  });
}

export function timeoutError(phase: BackendPhase, where: string, timeoutMs: number): BackendError {
  return new BackendTimeoutError(timeoutMs, { phase, logDetail: `${where}: no progress in phase ${phase} within ${timeoutMs} ms` });
}

export function abortedError(phase: BackendPhase, where: string, reason: unknown): BackendError {
  return new BackendAbortedError({ phase, logDetail: `${where}: abandoned by the caller in phase ${phase}`, cause: reason });
}

export function checkTimeout(timeoutMs: number, what: string): number {
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new RangeError(`${what} must be a positive number of milliseconds, got ${timeoutMs}`);
  return timeoutMs;
}
