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

# Tests that need an optional tool (curl, python3, redis, a static C compiler) skip when it is
# missing and record why here (test/helpers/tools.ts); the list is printed at the end.
# STOCKADE_TEST_STRICT=1 (.ci/run) turns a missing tool into a failure instead.
skips=$(mktemp /tmp/stockade-skips.XXXXXX)
chmod 666 "$skips"
export STOCKADE_TEST_SKIPS="$skips"
report_skips() {
  if [ -s "$skips" ]; then
    echo "== skipped: optional tools missing (install them, or see STOCKADE_TEST_STRICT in README)"
    sort "$skips" | uniq -c | sed 's/^ *\([0-9]*\) \([^\t]*\)\t/  \1 test(s) in \2: /'
  fi
  rm -f "$skips"
}
# test/pack.test.ts packs once (two architectures take a while) into this directory, and the
# unprivileged pass installs the same tarball.
export STOCKADE_PACK_DIR=$(mktemp -d /tmp/stockade-pack.XXXXXX)
chmod 755 "$STOCKADE_PACK_DIR"
cleanup() {
  report_skips
  rm -rf "$STOCKADE_PACK_DIR"
}
trap cleanup EXIT

# A test that hangs fails after 5 minutes instead of holding the run until CI's own limit (the
# longest test takes ~30 s here): a hang guard, not a timed assertion.
timeout_ms=${STOCKADE_TEST_TIMEOUT_MS:-300000}
echo "== sandbox tests as uid $(id -u)"
node --test --test-concurrency=2 --test-timeout="$timeout_ms" "${files[@]}"

if [ "$(id -u)" = 0 ] && [ -z "${STOCKADE_TEST_ROOT_ONLY:-}" ]; then
  # The checkout may sit where uid 65534 cannot traverse (e.g. /root in CI): show it to that
  # user through a bind mount in a private mount namespace, instead of copying it.
  view=$(mktemp -d /tmp/stockade-unprivileged.XXXXXX)
  chmod 755 "$view"
  # A delegated cgroup subtree for uid 65534, as systemd gives a user (user@.service,
  # Delegate=yes): chowned to the user, and on the v2 hierarchy the test run lives inside it
  # (v2 moves processes only within what the mover may write). The limits tests use it through
  # STOCKADE_TEST_CGROUP_PARENT; every other test runs without it, i.e. without delegation.
  # Named per run: test runs of other checkouts on the same host remove theirs when they end.
  delegated=stockade-test-65534-$$
  v2dir=
  cgdirs=()
  while read -r _ _ _ _ point _ rest; do
    fstype=${rest#*- }; fstype=${fstype%% *}
    case "$fstype" in
      cgroup) opts=${rest##* }
        for c in memory pids cpu; do
          case ",$opts," in *",$c,"*)
            own=$(awk -F: -v c="$c" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' /proc/self/cgroup)
            cgdirs+=("$point${own%/}/$delegated");;
          esac
        done;;
      cgroup2) own=$(awk -F: '$1 == 0 { print $3 }' /proc/self/cgroup); v2dir="$point${own%/}/$delegated"; cgdirs+=("$v2dir");;
    esac
  done < /proc/self/mountinfo
  for d in "${cgdirs[@]}"; do mkdir -p "$d" 2>/dev/null && chown -R 65534:65534 "$d" 2>/dev/null || true; done
  echo "== sandbox tests as uid 65534 (unprivileged), checkout bound at $view"
  STOCKADE_TEST_CGROUP_PARENT=$delegated STOCKADE_TEST_V2_DIR=$v2dir \
  unshare --mount --propagation private -- sh -c '
    if [ -n "$STOCKADE_TEST_V2_DIR" ] && [ -d "$STOCKADE_TEST_V2_DIR" ]; then echo $$ > "$STOCKADE_TEST_V2_DIR/cgroup.procs" || true; fi
    mount --bind "$1" "$2" && shift 2 && cd "$0" &&
    exec setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all \
      env HOME=/tmp STOCKADE_TEST_UNPRIVILEGED=1 STOCKADE_TEST_SKIPS="$STOCKADE_TEST_SKIPS" STOCKADE_PACK_DIR="$STOCKADE_PACK_DIR" STOCKADE_TEST_CGROUP_PARENT="$STOCKADE_TEST_CGROUP_PARENT" node --test --test-concurrency=2 --test-timeout='"$timeout_ms"' "$@"' \
    "$view" "$PWD" "$view" "${files[@]}"
  rmdir "$view"
  for d in "${cgdirs[@]}"; do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
fi
