#!/usr/bin/env bash
# Builds the prebuilt binaries that `npm install stockade-sandbox` uses without a compiler (run by
# `npm pack` / `npm publish` through the prepack script):
#
#   prebuilds/linux-x64/stockade.glibc.node     the N-API addon: one build serves every Node >= 20
#   prebuilds/linux-x64/stockade-init           the static, libc-free PID 1 of every sandbox
#   prebuilds/linux-x64/stockade-launch         the static front of `stockade run` (native/launch.cc)
#   prebuilds/linux-arm64/...                   the same for aarch64, cross-compiled
#
# The addon is tagged glibc, so node-gyp-build on musl (Alpine) does not load it and the install
# script builds from source there instead (README, Requirements). stockade-init uses no libc and
# runs anywhere.
#
# Each architecture is built in a scratch copy of the sources, so packing never replaces the
# checkout's own build/ (which a running test suite may be using). arm64 needs Debian's
# cross toolchain (apt-get install g++-aarch64-linux-gnu); the artifacts are then checked by
# scripts/check-prebuilds.js: ELF machine, no dynamic dependency a user may lack, and for
# aarch64 the syscall numbers compiled in against the aarch64 kernel headers.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
archs=(${STOCKADE_PREBUILD_ARCHS:-x64 arm64})

stage=$(mktemp -d "${TMPDIR:-/tmp}/stockade-prebuild.XXXXXX")
trap 'rm -rf "$stage"' EXIT
rm -rf prebuilds
for arch in "${archs[@]}"; do
  case "$arch" in
    x64) prefix=$([ "$(uname -m)" = x86_64 ] && echo '' || echo 'x86_64-linux-gnu-') ;;
    arm64) prefix=$([ "$(uname -m)" = aarch64 ] && echo '' || echo 'aarch64-linux-gnu-') ;;
    *) echo "prebuild: unsupported arch $arch" >&2; exit 1 ;;
  esac
  if ! command -v "${prefix}g++" >/dev/null; then
    echo "prebuild: ${prefix}g++ not found; for linux-$arch: apt-get install g++-${prefix%-}" >&2
    exit 1
  fi
  dir="$stage/$arch"
  mkdir -p "$dir"
  cp -r binding.gyp package.json native "$dir/"
  ln -s "$root/node_modules" "$dir/node_modules"
  echo "== prebuild linux-$arch (${prefix:-native }g++)"
  CC="${prefix}gcc" CXX="${prefix}g++" LINK="${prefix}g++" AR="${prefix}ar" \
    npx --no-install prebuildify --name stockade --napi --tag-libc --strip --strip-bin "${prefix}strip" \
    --arch "$arch" --platform linux --cwd "$dir" --out "$root" >"$dir.log" 2>&1 || { cat "$dir.log" >&2; exit 1; }
  for bin in stockade-init stockade-launch; do
    cp "$dir/build/Release/$bin" "prebuilds/linux-$arch/$bin"
    "${prefix}strip" "prebuilds/linux-$arch/$bin"
  done
done
node scripts/check-prebuilds.js "${archs[@]}"
