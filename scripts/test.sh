#!/usr/bin/env bash
# npm test: build (native and TypeScript), lint, then the whole suite on the real kernel; when
# run as root, the suite runs a second time as an unprivileged user (uid 65534), because most
# users are not root and the two paths differ (id maps, setgroups, who may read what).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f build/config.gypi ]; then npx node-gyp configure >/dev/null; fi
npx node-gyp build >/dev/null
npx tsc -p tsconfig.json && node scripts/bundle.js
npm run --silent lint

files=(dist/test/*.test.js)
if [ "$#" -gt 0 ]; then files=("$@"); fi

echo "== sandbox tests as uid $(id -u)"
node --test --test-concurrency=2 "${files[@]}"

if [ "$(id -u)" = 0 ] && [ -z "${STOCKADE_TEST_ROOT_ONLY:-}" ]; then
  # The checkout may sit where uid 65534 cannot traverse (e.g. /root in CI): show it to that
  # user through a bind mount in a private mount namespace, instead of copying it.
  view=$(mktemp -d /tmp/stockade-unprivileged.XXXXXX)
  chmod 755 "$view"
  echo "== sandbox tests as uid 65534 (unprivileged), checkout bound at $view"
  unshare --mount --propagation private -- sh -c '
    mount --bind "$1" "$2" && shift 2 && cd "$0" &&
    exec setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all \
      env HOME=/tmp STOCKADE_TEST_UNPRIVILEGED=1 node --test --test-concurrency=2 "$@"' \
    "$view" "$PWD" "$view" "${files[@]}"
  rmdir "$view"
fi
