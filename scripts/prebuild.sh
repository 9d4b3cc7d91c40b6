#!/usr/bin/env bash
# Builds the prebuilt binaries that `npm install stockade` uses without a compiler:
# prebuilds/linux-<arch>/ holds the N-API addon (any Node >= 20) and, beside it, the static
# stockade-init executable the addon runs as PID 1 of every sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
npx prebuildify --napi --strip --name stockade
arch=$(node -p process.arch)
cp build/Release/stockade-init "prebuilds/linux-${arch}/stockade-init"
strip "prebuilds/linux-${arch}/stockade-init"
ls -la "prebuilds/linux-${arch}"
