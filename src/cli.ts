#!/usr/bin/env node
/**
 * The `muxwire` command (ssh-style port forwarding over one multiplexed connection). The work is in
 * `src/cli/`; this entry only runs it and exits with its code.
 * @module
 */
import { main } from './cli/main.js';

process.exitCode = await main(process.argv.slice(2), process.env);
// Listeners and timers are closed by then; exiting explicitly covers a socket a peer keeps half-open.
process.exit();
