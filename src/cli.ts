#!/usr/bin/env node
/**
 * The `falco-drop` command (package.json `bin`): only the process around runCli, which tests
 * run in-process. process.exitCode rather than process.exit(): a piped stdout (a CI log) is
 * flushed before the process ends.
 */
import { runCli } from './check.ts';

process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
