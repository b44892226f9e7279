/**
 * The `distgan` command line. Each subcommand lives in commands/<name>.ts.
 * Usage errors (unknown flags, bad values) exit 2 with a message naming the
 * flag; runtime failures exit 1; an interrupted run exits 130.
 */
import { Command, CommanderError } from 'commander';
import { VERSION } from '../shared/version.js';
import { fail } from './output.js';
import { register as launch } from './commands/launch.js';
import { register as coordinator } from './commands/coordinator.js';
import { register as worker } from './commands/worker.js';
import { register as sample } from './commands/sample.js';
import { register as keygen } from './commands/keygen.js';
import { register as prepare } from './commands/prepare.js';
import { register as bench } from './commands/bench.js';
import { register as report } from './commands/report.js';
import { register as reducer } from './commands/reducer.js';

export function buildProgram(): Command {
  const program = new Command('distgan')
    .description('distributed GAN training: a ZeroMQ coordinator, one worker per GPU or core, Prometheus metrics')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)');
  for (const register of [launch, coordinator, worker, reducer, sample, keygen, prepare, bench, report]) register(program);
  // Every subcommand reports usage errors the same way: exit 2, no stack trace.
  const exitOverride = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(exitOverride);
  };
  exitOverride(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version are "errors" to commander; they are successes to users.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return 2;
    }
    return fail(e);
  }
}

const code = await main(process.argv);
// Exit explicitly: sockets and backends (wasm, Dawn) may otherwise keep the loop alive.
process.exit(code);
