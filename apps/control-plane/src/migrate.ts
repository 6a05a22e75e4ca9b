// `npm run migrate`: applies pending schema migrations to the store named by DATABASE_URL (or
// the PGlite data directory) and exits. The control plane also migrates at start; this is for
// deployments that migrate before rolling out.
import { createLogger } from '@tenantgate/runtime';
import { ConfigError, loadStoreConfig } from './config.ts';
import type { Database } from './db/database.ts';
import { migrate } from './db/migrations.ts';
import { createPostgresDatabase } from './db/postgres.ts';
import { openPgliteDatabase } from './db/pglite.ts';

async function run(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(
      'Usage: npm run migrate -w @tenantgate/control-plane\n\nApplies pending migrations to DATABASE_URL (unset: PGlite in CONTROL_PLANE_DATA_DIR).\n',
    );
    return;
  }
  let config;
  try {
    config = await loadStoreConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.issues.map((i) => `tenantgate migrate: ${i.variable}: ${i.message}`).join('\n')}\n`);
    process.exit(2);
  }
  const logger = createLogger({ level: config.logLevel });
  let database: Database | undefined;
  try {
    database =
      config.store.kind === 'postgres'
        ? createPostgresDatabase({ connectionString: config.store.url, max: 1 })
        : await openPgliteDatabase(config.store.dataDir);
    const { applied, version } = await migrate(database);
    logger.info({ applied, version }, applied.length > 0 ? 'migrations applied' : 'the schema is up to date');
  } catch (error) {
    logger.error({ err: error }, 'migration failed; nothing of it was applied');
    process.exitCode = 1;
  } finally {
    await database?.close();
  }
}

await run();
