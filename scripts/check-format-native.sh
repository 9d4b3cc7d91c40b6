#!/usr/bin/env bash
# Fails when a native source differs from what clang-format (.clang-format) would write. The
# clang-format is the project's own, from npm (@wasm-fmt/clang-format, a WebAssembly build): the
# same version on every machine and architecture, nothing to install beside Node. A system
# clang-format of another version may format some constructs differently.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node_modules/.bin/clang-format --dry-run --Werror native/*.cc native/*.h native/*.c
