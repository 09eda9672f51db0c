#!/usr/bin/env bash
# Builds the patched librqbit that swarmcast links against (docs/librqbit.md).
#
# 1. Takes librqbit 9.1.0 exactly as crates.io ships it: the .crate from cargo's cache, or
#    downloaded from static.crates.io, and checks its SHA-256 against
#    patches/librqbit/librqbit-9.1.0.crate.sha256 (the checksum Cargo.lock records for it).
# 2. Unpacks it into vendor-patched/librqbit (ignored by git) as a git repository with the
#    pristine crate as its first commit, and applies patches/librqbit/*.patch in order, one
#    commit each; a patch that does not apply exactly stops the script.
# 3. Writes .cargo/config.toml (ignored by git): a [patch.crates-io] entry pointing cargo at the
#    patched tree, and SWARMCAST_LIBRQBIT_PATCHES, the stamp the build of swarmcast-swarm checks
#    so that a stale or missing patch step fails the build with a message naming this script.
#
# It does nothing when the stamp is current. `--force` rebuilds the tree; `--export` writes the
# commits made in vendor-patched/librqbit after the pristine one back to patches/librqbit/ (the
# way to edit the series: commit in vendor-patched/librqbit, then export).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

version=9.1.0
patches=patches/librqbit
tree=vendor-patched/librqbit
want_sha=$(tr -d ' \n' < "$patches/librqbit-$version.crate.sha256")

git_in_tree() {
  git -C "$tree" -c user.name=swarmcast -c user.email=swarmcast@localhost \
    -c commit.gpgsign=false -c core.autocrlf=false "$@"
}

if [ "${1:-}" = "--export" ]; then
  [ -d "$tree/.git" ] || { echo "patch-librqbit: no $tree/.git to export from" >&2; exit 1; }
  rm -f "$patches"/*.patch
  git_in_tree format-patch --quiet --no-signature --zero-commit --no-numbered \
    -o "$(pwd)/$patches" pristine..HEAD
  echo "patch-librqbit: exported $(ls "$patches"/*.patch | wc -l) patches; run it again to apply"
  exit 0
fi

# The stamp: the pinned crate checksum and every patch, byte for byte, in name order.
# crates/swarmcast-swarm/build.rs computes the same digest.
stamp=$(cat "$patches/librqbit-$version.crate.sha256" "$patches"/*.patch | sha1sum | cut -c1-40)

if [ "${1:-}" != "--force" ] && [ -f "$tree.stamp" ] \
  && [ "$(cat "$tree.stamp")" = "$stamp" ] \
  && grep -q "$stamp" .cargo/config.toml 2>/dev/null; then
  exit 0
fi

crate=""
for c in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/librqbit-$version.crate; do
  [ -f "$c" ] && crate=$c && break
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$crate" ]; then
  crate=$tmp/librqbit-$version.crate
  echo "patch-librqbit: downloading librqbit $version from crates.io"
  curl -sSfL --retry 3 -o "$crate" "https://static.crates.io/crates/librqbit/librqbit-$version.crate"
fi
got_sha=$(sha256sum "$crate" | cut -d' ' -f1)
if [ "$got_sha" != "$want_sha" ]; then
  echo "patch-librqbit: $crate has SHA-256 $got_sha, expected $want_sha" >&2
  exit 1
fi

rm -rf "$tree"
mkdir -p "$tree"
tar -xzf "$crate" -C "$tmp"
cp -a "$tmp/librqbit-$version/." "$tree/"
git_in_tree init --quiet
git_in_tree add -A
git_in_tree commit --quiet -m "librqbit $version as published on crates.io"
git_in_tree tag pristine
for p in "$patches"/*.patch; do
  if ! git_in_tree am --quiet --committer-date-is-author-date "$(pwd)/$p"; then
    echo "patch-librqbit: $p does not apply to librqbit $version" >&2
    git_in_tree am --abort || true
    exit 1
  fi
done
echo "$stamp" > "$tree.stamp"

mkdir -p .cargo
cat > .cargo/config.toml <<EOF
# Written by scripts/patch-librqbit.sh; do not edit (docs/librqbit.md).
[patch.crates-io]
librqbit = { path = "$tree" }

[env]
SWARMCAST_LIBRQBIT_PATCHES = "$stamp"
EOF
echo "patch-librqbit: librqbit $version with $(ls "$patches"/*.patch | wc -l) patches in $tree"
