#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=50
import { main } from "../dist/src/cli.js";

// Exit explicitly: a drained guard may still hold idle sockets (e.g. a Redis client) open.
process.exit(await main(process.argv.slice(2)));
