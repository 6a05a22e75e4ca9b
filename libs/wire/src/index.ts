export * from './errors.ts';
export * from './frame-decoder.ts';
export * from './message-tracker.ts';
export * from './messages.ts';
export * from './serializer.ts';
export * from './sql-state.ts';
export * from './startup.ts';
export * from './scram.ts';
