import type { Knex } from 'knex';
import * as m0001 from '../../migrations/20261126000001_init.js';
import * as m0002 from '../../migrations/20261127000002_identity_liveness.js';
import * as m0003 from '../../migrations/20261127000003_rate_budget.js';
import * as m0004 from '../../migrations/20261127100000_payins.js';
import * as m0005 from '../../migrations/20261127100001_payee_index.js';
import * as m0006 from '../../migrations/20261127200000_batch_files.js';
import * as m0007 from '../../migrations/20261202000000_payee_identity_approvals.js';
import * as m0008 from '../../migrations/20261202100000_users_policy_audit.js';

/**
 * Migrations are imported, not globbed from disk, so they run the same from the TypeScript sources
 * (tests) and from the compiled dist (the installed command). Append new ones here.
 */
const MIGRATIONS: Record<string, { up(k: Knex): Promise<void>; down(k: Knex): Promise<void> }> = {
  '20261126000001_init': m0001,
  '20261127000002_identity_liveness': m0002,
  '20261127000003_rate_budget': m0003,
  '20261127100000_payins': m0004,
  '20261127100001_payee_index': m0005,
  '20261127200000_batch_files': m0006,
  '20261202000000_payee_identity_approvals': m0007,
  '20261202100000_users_policy_audit': m0008,
};

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(MIGRATIONS).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => MIGRATIONS[name]!,
};
