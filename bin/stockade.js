#!/usr/bin/env node
// `stockade-sandbox` / `stockade`. lib/cli/main.ts reports every error it knows as one line;
// this is the last resort for one thrown outside it (still one line, EX_SOFTWARE).

require('../dist/lib/cli/main')
  .main(process.argv.slice(2))
  .then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`stockade: internal error: ${err?.message ?? err} (a bug in stockade: please report it)\n`);
      process.exit(70);
    },
  );
