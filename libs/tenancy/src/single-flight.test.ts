import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import { SingleFlight, waitOrAbort, type Flight } from './single-flight.ts';

interface Gate<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function gate<T>(): Gate<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('concurrent callers for one key share one piece of work', async () => {
  const flights = new SingleFlight<string>();
  const g = gate<string>();
  let calls = 0;
  const work = () => {
    calls++;
    return g.promise;
  };
  const waits = Array.from({ length: 100 }, () => flights.run('acme', work));
  assert.equal(flights.size, 1);
  g.resolve('route');
  assert.deepEqual(await Promise.all(waits), Array(100).fill('route'));
  assert.equal(calls, 1);
  assert.equal(flights.size, 0);
});

test('different keys run separately, and a settled key starts afresh', async () => {
  const flights = new SingleFlight<string>();
  let calls = 0;
  const work = async () => `answer ${++calls}`;
  assert.deepEqual(await Promise.all([flights.run('a', work), flights.run('b', work)]), ['answer 1', 'answer 2']);
  assert.equal(await flights.run('a', work), 'answer 3');
});

test("a caller's abort ends its own wait only; the work runs on for the others", async () => {
  const flights = new SingleFlight<string>();
  const g = gate<string>();
  let seen: Flight | undefined;
  const work = (flight: Flight) => {
    seen = flight;
    return g.promise;
  };
  const impatient = new AbortController();
  const first = flights.run('acme', work, impatient.signal);
  const second = flights.run('acme', work);
  const reason = new Error('client went away');
  impatient.abort(reason);
  await assert.rejects(first, (error) => error === reason);
  assert.equal(seen?.signal.aborted, false);
  g.resolve('route');
  assert.equal(await second, 'route');
});

test('an already aborted signal rejects without starting any work', async () => {
  const flights = new SingleFlight<string>();
  let calls = 0;
  await assert.rejects(
    flights.run('acme', async () => `${++calls}`, AbortSignal.abort(new Error('gone'))),
    /gone/,
  );
  assert.equal(calls, 0);
  assert.equal(flights.size, 0);
});

test('a failure reaches every waiter, and nobody waiting is no unhandled rejection', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));

  const flights = new SingleFlight<string>();
  const failing = async () => {
    throw new Error('control plane down');
  };
  const results = await Promise.allSettled([flights.run('a', failing), flights.run('a', failing)]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected'],
  );

  const g = gate<string>();
  const leaving = new AbortController();
  const lone = flights.run('b', () => g.promise, leaving.signal);
  leaving.abort(new Error('bye'));
  await assert.rejects(lone, /bye/);
  g.reject(new Error('nobody listens'));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(unhandled, []);
});

test('work that throws synchronously rejects instead of throwing from run()', async () => {
  const flights = new SingleFlight<string>();
  const p = flights.run('a', () => {
    throw new Error('sync');
  });
  await assert.rejects(p, /sync/);
});

test('a superseded flight answers its callers, caches nothing, and later callers start anew', async () => {
  const flights = new SingleFlight<string>();
  const old = gate<string>();
  const fresh = gate<string>();
  const seen: Flight[] = [];
  const first = flights.run('acme', (flight) => {
    seen.push(flight);
    return old.promise;
  });
  flights.supersede('acme');
  flights.supersede('nothing-in-flight');
  assert.equal(seen[0]?.superseded, true);
  const second = flights.run('acme', (flight) => {
    seen.push(flight);
    return fresh.promise;
  });
  assert.equal(seen.length, 2);
  assert.equal(seen[1]?.superseded, false);
  fresh.resolve('v2');
  old.resolve('v1');
  assert.equal(await first, 'v1');
  assert.equal(await second, 'v2');
  assert.equal(flights.size, 0);
});

test('the old flight settling does not detach the flight that replaced it', async () => {
  const flights = new SingleFlight<string>();
  const old = gate<string>();
  const fresh = gate<string>();
  let calls = 0;
  void flights.run('acme', () => old.promise);
  flights.supersede('acme');
  const second = flights.run('acme', () => {
    calls++;
    return fresh.promise;
  });
  old.resolve('v1');
  await new Promise((resolve) => setImmediate(resolve));
  const joined = flights.run('acme', async () => 'should not run');
  fresh.resolve('v2');
  assert.deepEqual(await Promise.all([second, joined]), ['v2', 'v2']);
  assert.equal(calls, 1);
});

test('supersedeAll marks every flight; abortAll aborts the signal the work runs under', async () => {
  const flights = new SingleFlight<string>();
  const seen: Flight[] = [];
  const work = (flight: Flight) => {
    seen.push(flight);
    return new Promise<string>((_resolve, reject) => flight.signal.addEventListener('abort', () => reject(flight.signal.reason)));
  };
  const a = flights.run('a', work);
  const b = flights.run('b', work);
  flights.supersedeAll();
  assert.equal(flights.size, 0);
  assert.deepEqual(
    seen.map((f) => f.superseded),
    [true, true],
  );
  flights.abortAll(new Error('closed'));
  await assert.rejects(a, /closed/);
  await assert.rejects(b, /closed/);
});

test('waitOrAbort leaves no listener behind on the signal', async () => {
  const { signal } = new AbortController();
  assert.equal(await waitOrAbort(Promise.resolve(1), signal), 1);
  await assert.rejects(waitOrAbort(Promise.reject(new Error('x')), signal), /x/);
  assert.equal(getEventListeners(signal, 'abort').length, 0);
});
