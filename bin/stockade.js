#!/usr/bin/env node

require('../dist/lib/cli/main')
  .main(process.argv.slice(2))
  .then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`stockade: ${err?.stack ?? err}\n`);
      process.exit(70);
    },
  );
