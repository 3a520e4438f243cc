#!/usr/bin/env node
// Writes schema.json, the config file's JSON Schema, from the built option table
// (lib/config/schema.ts via dist/). Run by `npm run schema` after a change to an option;
// test/config/schema.test.ts fails while the committed file is stale.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configSchema, schemaText } from '../dist/lib/config/schema.js';

const target = fileURLToPath(new URL('../schema.json', import.meta.url));
writeFileSync(target, schemaText(configSchema()));
process.stdout.write(`wrote ${target}\n`);
