#!/usr/bin/env bash
# Fails when a native source differs from what clang-format (.clang-format) would write.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "clang-format is not installed (Debian/Ubuntu: apt-get install clang-format)" >&2
  exit 1
fi
clang-format --dry-run --Werror native/*.cc native/*.h native/*.c
