import { userInfo } from 'node:os';
import { ConfigError, NotFoundError, createLogger } from '@civildiy/common';
import { Role } from '@civildiy/common/contracts';
import { CommandDatabaseError, openCommandDatabase } from './command-database.ts';
import { Roles, type RoleHolder } from './roles.ts';

// `npm run -w auth-service role -- grant <email> <role> | revoke <email> <role> | list [<email>]`:
// grants and revokes roles (`operator` unlocks the operations routes) on auth-service's database,
// found where `npm start` keeps it (see command-database.ts); it works with the system running or
// stopped. A change shows in the account's access tokens from their next login or refresh.
// Exit codes: 0 done (or nothing to do), 1 unknown account or no database, 2 bad usage or unknown role.

const USAGE = `Usage: npm run -w auth-service role -- <command>
  grant <email> <role>     give the account a role (a role it holds already: nothing to do)
  revoke <email> <role>    take a role from the account
  list [<email>]           the accounts holding a role, or one account's roles
Roles: ${Role.options.join(', ')}. The account's access tokens carry a change from its next login or refresh.`;

const logger = createLogger({ service: 'auth-role', level: process.env.LOG_LEVEL ?? 'info' });

type Command = { action: 'grant' | 'revoke'; email: string; role: Role } | { action: 'list'; email?: string };

/** The command of `args`, or the exit code 2 after saying what is wrong. */
function parse(args: string[]): Command | 2 {
  const [action, email, role, ...rest] = args;
  if ((action === 'grant' || action === 'revoke') && email && role && rest.length === 0) {
    const parsed = Role.safeParse(role);
    if (!parsed.success) {
      console.error(`Unknown role "${role}". Roles: ${Role.options.join(', ')}.`);
      return 2;
    }
    return { action, email, role: parsed.data };
  }
  if (action === 'list' && role === undefined) return { action, ...(email ? { email } : {}) };
  console.error(USAGE);
  return 2;
}

function grantor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

function describeHolders(holders: RoleHolder[], email: string | undefined): string {
  if (holders.length === 0) return 'No account holds a role.';
  return holders
    .map((holder) => {
      const roles = holder.roles.map((grant) => `${grant.role} (granted ${grant.grantedAt} by ${grant.grantedBy})`).join(', ');
      return `${holder.email} (${holder.username}, user ${holder.userId}): ${roles || (email ? 'no roles' : '')}`;
    })
    .join('\n');
}

async function run(command: Command): Promise<number> {
  let database;
  try {
    database = await openCommandDatabase();
  } catch (error) {
    if (error instanceof CommandDatabaseError || error instanceof ConfigError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  }
  const roles = new Roles(database.db);
  try {
    if (command.action === 'list') {
      process.stdout.write(`${describeHolders(await roles.list(command.email), command.email)}\n`);
      return 0;
    }
    const change = command.action === 'grant' ? await roles.grant(command.email, command.role, grantor()) : await roles.revoke(command.email, command.role);
    const record = { action: command.action, role: change.role, userId: change.userId, email: change.email, changed: change.changed, database: database.where };
    if (!change.changed) {
      logger.info(record, command.action === 'grant' ? `${change.email} already holds ${change.role}: nothing to do` : `${change.email} does not hold ${change.role}: nothing to do`);
    } else if (command.action === 'grant') {
      logger.info({ ...record, grantedBy: grantor() }, `granted ${change.role} to ${change.email}: their access tokens carry it from their next login or refresh`);
    } else {
      logger.info(record, `revoked ${change.role} from ${change.email}: their access tokens lose it at their next refresh (those issued before keep it until they expire)`);
    }
    return 0;
  } catch (error) {
    if (error instanceof NotFoundError) {
      console.error(`${error.message} (in ${database.where}).`);
      return 1;
    }
    throw error;
  } finally {
    await database.close();
  }
}

const command = parse(process.argv.slice(2));
try {
  process.exitCode = command === 2 ? 2 : await run(command);
} catch (error) {
  console.error(`The role command failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
