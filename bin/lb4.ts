#!/usr/bin/env node
// The lb4 command line. This file only declares the commands and their flags (so `--help` is
// cheap); each command's code lives in bin/commands/ and is loaded when that command runs, so
// neither help nor a usage error loads the native addon.

import { createRequire } from 'node:module';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { describeDefault, optionTable, type OptionName, type OptionSpec } from '../lib/config/options.js';
import type { LogFormat } from '../lib/log.js';
import { commanderLine, describeFailure, usageExitCode } from './cli-error.js';
import type { AdminFlags } from './commands/admin-client.js';
import type { DemoFlags } from './commands/demo.js';
import type { StartFlags } from './commands/start.js';
import type { TopFlags } from './commands/top.js';

// The package resolves itself by name through its "exports" map, wherever it is installed.
const { version } = createRequire(import.meta.url)('lb4/package.json') as { version: string };


// `lb4 --help | head` closes stdout early: the reader has what it wanted, and that is no crash.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

// commander keeps the last value of a flag given twice. For a flag that takes one value that is
// a silent choice between two things the person typed (`--retries 2 ... --retries 7`, often a
// script appending to a command line): refuse it and name the flag instead.
function once(option: Option): void {
  const parse = option.parseArg;
  let given = false;
  option.argParser((value: string, previous: unknown) => {
    if (given) throw new InvalidArgumentError('the flag is given more than once.');
    given = true;
    return parse ? parse(value, previous) : value;
  });
}

// Every flag of `lb4 start` comes from the library's option table, so a new option shows up here,
// in help and in validation without touching this file.
function tableOption(name: OptionName, spec: OptionSpec, defaultOverride?: string): Option {
  const option = new Option(spec.flag!, spec.help);
  // commander names the value after the flag; the table names the option. They must agree, or
  // the flag would silently never reach the code that reads it.
  if (option.attributeName() !== name) throw new Error(`lb4: flag ${spec.flag} does not map to the option ${name}`);
  if (spec.repeatable) option.argParser(collect);
  const value = defaultOverride ?? spec.default;
  if (spec.field === null) {
    // A CLI-only option is commander's to check: the library never sees it.
    if (spec.choices) option.choices(spec.choices);
    if (value !== undefined) option.default(value);
  } else if (value !== undefined && typeof value !== 'function' && !spec.field.includes('.')) {
    // The library validates its options itself (and names the flag in its errors). A computed
    // default (workers: one per CPU) is the library's to compute; the help text says so.
    option.default(value, describeDefault(name));
  }
  // Defaults commander does not hold (the library applies them: nested fields like
  // health.interval, computed ones, "off") are still part of the help.
  const shown = describeDefault(name);
  if (option.defaultValue === undefined && shown !== '' && !option.description.includes('(default:')) option.description += ` (default: ${shown})`;
  if (!spec.repeatable) once(option);
  return option;
}

function startOptions(): Option[] {
  return (Object.entries(optionTable) as Array<[OptionName, OptionSpec]>).flatMap(([name, spec]) => {
    if (spec.flag === null) return [];
    // Both forms set one value; with neither typed it stays unset and the library's default holds.
    const negated = spec.negatable ? [new Option(`--no-${spec.flag.slice(2)}`, `the opposite of ${spec.flag}`)] : [];
    return [tableOption(name, spec), ...negated];
  });
}

function logOptions(defaultFormat: LogFormat): Option[] {
  return [tableOption('logLevel', optionTable.logLevel), tableOption('logFormat', optionTable.logFormat, defaultFormat)];
}

const program = new Command('lb4')
  .description('A TCP load balancer for Linux: the kernel moves the bytes (splice), lb4 picks the backend.')
  .version(version, '-v, --version', 'print the version')
  .configureOutput({ outputError: (text, write) => write(`${commanderLine(text)}\n`) })
  .exitOverride();

const startCommand = program
  .command('start')
  .description('balance TCP connections and UDP sessions (/udp listeners) over backends, until SIGINT or SIGTERM');
for (const option of startOptions()) startCommand.addOption(option);
startCommand
  .addHelpText(
    'after',
    [
      '',
      'Logs go to stderr. The first SIGINT or SIGTERM stops accepting and lets open flows finish',
      'for up to --drain-timeout; a second one closes them at once. SIGHUP reloads --config.',
      'With --config, flags given on the command line override the file.',
      '',
      'Examples:',
      '  lb4 start --listen :8080 --backend 10.0.0.5:80 --backend 10.0.0.6:80,weight=2',
      '  lb4 start --listen :8080 --backend 10.0.0.5:80 --health-check http:/healthz --admin 9090',
      '  lb4 start --listen :53/udp --backend 10.0.0.5:53 --udp-responses 1 --health-check udp,send-hex=HEX,expect-hex=HEX',
      '  lb4 start --config lb4.yaml',
      '  lb4 start --listen 192.0.2.10:80 --backend 10.0.0.5:80 --vip 192.0.2.10/24 \\',
      '      --peer 192.0.2.3:7000 --heartbeat 7000 --priority 200 --cluster-key-file /etc/lb4/key',
    ].join('\n'),
  )
  .action(async (flags: StartFlags, command: Command) => {
    const { start } = await import('./commands/start.js');
    // Only flags typed on the command line override a config file, not their defaults.
    const typed = new Set(Object.keys(flags).filter((name) => command.getOptionValueSource(name) === 'cli'));
    await start(flags, typed);
  });

program
  .command('check-config')
  .description('validate a config file and say what it holds (exit 0), or name the problem (exit 2)')
  .argument('<file>', 'YAML or JSON')
  .action(async (file: string) => {
    const { checkConfig } = await import('./commands/check-config.js');
    await checkConfig(file);
  });

function adminCommand(name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--admin <address>', "the running lb4's admin API: [host:]port, http://host:port or a socket path", process.env.LB4_ADMIN ?? '127.0.0.1:9090')
    .option('--token <token>', 'bearer token (default: LB4_ADMIN_TOKEN)')
    .option('--listener <name>', 'only this listener (default: every listener)')
    .option('--json', 'print the API\'s JSON, for scripts (default: a summary for people)');
}

adminCommand('status', "show a running lb4's status through its admin API").action(async (flags: AdminFlags) => {
  const { status } = await import('./commands/admin-client.js');
  await status(flags);
});
adminCommand('backends', "list a running lb4's backends, their state, health and flows")
  .option('--watch', 'redraw the table every interval until q or Ctrl-C')
  .option('--interval <duration>', 'with --watch: time between two redraws (default: 1s)')
  .action(async (flags: AdminFlags & { watch?: boolean; interval?: string }) => {
    const { backends } = await import('./commands/admin-client.js');
    await backends(flags);
  });
adminCommand('top', "a live view of a running lb4: flows/s, bytes/s, open flows, state and health per listener and backend")
  .option('--interval <duration>', 'time between two redraws, and what rates are measured over', '1s')
  .option('--once', 'print one frame (rates over one interval) without terminal codes, and exit')
  .addHelpText('after', '\nq or Ctrl-C quits. Rates are counter deltas between two reads of the admin API.')
  .action(async (flags: TopFlags) => {
    const { top } = await import('./commands/top.js');
    await top(flags);
  });
adminCommand('cluster', "show a running lb4's HA pair: this node, the peer, states, priorities, heartbeat age, VIPs held").action(async (flags: AdminFlags) => {
  const { cluster } = await import('./commands/cluster.js');
  await cluster(flags);
});
adminCommand('backend', 'change a backend of a running lb4: drain <id>, enable <id>, weight <id> <n>, state <id> <state>')
  .argument('<action>', 'drain, enable, weight or state')
  .argument('<id>', 'the backend id (its address unless named)')
  .argument('[value]', 'the weight or the state')
  .option('--drain-timeout <duration>', 'for drain and state: how long open flows may finish')
  .action(async (action: string, id: string, value: string | undefined, flags: AdminFlags & { drainTimeout?: string }) => {
    const { backendAction } = await import('./commands/admin-client.js');
    await backendAction(action, id, value, flags);
  });

const demoCommand = program
  .command('demo')
  .description('run three HTTP backends and a balancer in front of them on 127.0.0.1, and show how to try it')
  .option('--port <port>', 'the port the balancer listens on (0 picks a free one)', '8080')
  .option('--admin-port <port>', 'the port of the admin API, dashboard and /metrics on 127.0.0.1 (0 picks a free one)', '9090');
for (const option of logOptions('pretty')) demoCommand.addOption(option);
demoCommand.action(async (flags: DemoFlags) => {
  const { demo } = await import('./commands/demo.js');
  await demo(flags);
});

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CommanderError) {
    // commander has printed its message, the help or the version already.
    process.exitCode = err.exitCode === 0 ? 0 : usageExitCode;
  } else {
    const failure = describeFailure(err);
    process.stderr.write(`${failure.line}\n`);
    process.exitCode = failure.exitCode;
  }
}

// The process ends by running out of work rather than by process.exit(), so asynchronous log
// destinations (pino-pretty's stream) finish writing. Should a stray handle keep it alive anyway,
// this timer, which holds nothing open itself, still ends it with the exit code chosen above.
setTimeout(() => process.exit(), 2000).unref();
