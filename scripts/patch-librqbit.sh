#!/usr/bin/env bash
# Builds the patched librqbit that swarmcast links against (docs/librqbit.md).
#
# For librqbit 9.1.0, its wire-protocol crate librqbit-peer-protocol and its DHT librqbit-dht:
# 1. Takes the crate exactly as crates.io ships it: the .crate from cargo's cache, or
#    downloaded from static.crates.io, and checks its SHA-256 against
#    patches/<crate>/<crate>-9.1.0.crate.sha256 (the checksum Cargo.lock records for it).
# 2. Unpacks it into vendor-patched/<crate> (ignored by git) as a git repository with the
#    pristine crate as its first commit, and applies patches/<crate>/*.patch in order, one
#    commit each; a patch that does not apply exactly stops the script.
# 3. Writes .cargo/config.toml (ignored by git): [patch.crates-io] entries pointing cargo at the
#    patched trees, and SWARMCAST_LIBRQBIT_PATCHES, the stamp the build of swarmcast-swarm checks
#    so that a stale or missing patch step fails the build with a message naming this script.
#
# It does nothing when the stamp is current. `--force` rebuilds the tree; `--export` writes the
# commits made in each vendor-patched/<crate> after the pristine one back to patches/<crate>/
# (the way to edit a series: commit in vendor-patched/<crate>, then export).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

# The patched crates, in this order (the stamp's): each has patches/<crate>/ holding
# <crate>-<version>.crate.sha256 and its series, and is unpacked into vendor-patched/<crate>.
# librqbit-peer-protocol is librqbit's wire-protocol crate: its series names our BEP 10
# extension in the extended handshake; librqbit-dht is its DHT, whose series makes its KRPC
# transaction ids four bytes long, as mainline-rs nodes require (docs/librqbit.md).
version=9.1.0
crates=(librqbit librqbit-peer-protocol librqbit-dht)

git_in() {
  local tree=$1
  shift
  git -C "$tree" -c user.name=swarmcast -c user.email=swarmcast@localhost \
    -c commit.gpgsign=false -c core.autocrlf=false "$@"
}

if [ "${1:-}" = "--export" ]; then
  for c in "${crates[@]}"; do
    tree=vendor-patched/$c
    [ -d "$tree/.git" ] || { echo "patch-librqbit: no $tree/.git to export from" >&2; exit 1; }
    rm -f "patches/$c"/*.patch
    git_in "$tree" format-patch --quiet --no-signature --zero-commit --no-numbered \
      -o "$(pwd)/patches/$c" pristine..HEAD
    echo "patch-librqbit: exported $(ls "patches/$c"/*.patch 2>/dev/null | wc -l) patches of $c"
  done
  echo "patch-librqbit: run it again to apply"
  exit 0
fi

# The stamp: for each crate in order, the pinned crate checksum and every patch, byte for byte,
# in name order. crates/swarmcast-swarm/build.rs computes the same digest.
stamp=$(for c in "${crates[@]}"; do
  cat "patches/$c/$c-$version.crate.sha256"
  cat "patches/$c"/*.patch 2>/dev/null || true
done | sha1sum | cut -c1-40)

if [ "${1:-}" != "--force" ] && [ -f vendor-patched/librqbit.stamp ] \
  && [ "$(cat vendor-patched/librqbit.stamp)" = "$stamp" ] \
  && grep -q "$stamp" .cargo/config.toml 2>/dev/null; then
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for c in "${crates[@]}"; do
  patches=patches/$c
  tree=vendor-patched/$c
  want_sha=$(tr -d ' \n' < "$patches/$c-$version.crate.sha256")
  crate=""
  for f in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$c-$version.crate"; do
    [ -f "$f" ] && crate=$f && break
  done
  if [ -z "$crate" ]; then
    crate=$tmp/$c-$version.crate
    echo "patch-librqbit: downloading $c $version from crates.io"
    curl -sSfL --retry 3 -o "$crate" "https://static.crates.io/crates/$c/$c-$version.crate"
  fi
  got_sha=$(sha256sum "$crate" | cut -d' ' -f1)
  if [ "$got_sha" != "$want_sha" ]; then
    echo "patch-librqbit: $crate has SHA-256 $got_sha, expected $want_sha" >&2
    exit 1
  fi
  rm -rf "$tree"
  mkdir -p "$tree"
  tar -xzf "$crate" -C "$tmp"
  cp -a "$tmp/$c-$version/." "$tree/"
  git_in "$tree" init --quiet
  git_in "$tree" add -A
  git_in "$tree" commit --quiet -m "$c $version as published on crates.io"
  git_in "$tree" tag pristine
  for p in "$patches"/*.patch; do
    [ -f "$p" ] || continue
    if ! git_in "$tree" am --quiet --committer-date-is-author-date "$(pwd)/$p"; then
      echo "patch-librqbit: $p does not apply to $c $version" >&2
      git_in "$tree" am --abort || true
      exit 1
    fi
  done
done
echo "$stamp" > vendor-patched/librqbit.stamp

mkdir -p .cargo
{
  echo "# Written by scripts/patch-librqbit.sh; do not edit (docs/librqbit.md)."
  echo "[patch.crates-io]"
  for c in "${crates[@]}"; do
    echo "$c = { path = \"vendor-patched/$c\" }"
  done
  echo
  echo "[env]"
  echo "SWARMCAST_LIBRQBIT_PATCHES = \"$stamp\""
} > .cargo/config.toml
for c in "${crates[@]}"; do
  echo "patch-librqbit: $c $version with $(ls "patches/$c"/*.patch 2>/dev/null | wc -l) patches in vendor-patched/$c"
done
