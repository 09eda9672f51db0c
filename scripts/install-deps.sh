#!/usr/bin/env bash
# Installs the independent software the tests compare against, if missing: mktorrent (reference
# info hashes), libtorrent's Python bindings (an independent .torrent parser and BitTorrent client),
# ffmpeg (media checks), aria2, transmission-cli and opentracker (independent clients and tracker),
# what the emulated network needs (iproute2: ip and ss; iptables: NFQUEUE and NAT; ethtool:
# offloads off), and what the players' and operators' tests use (docs/players.md): chromium (a real
# browser), nginx (a static mirror), prometheus (its promtool), tmux (a terminal for the status
# line), icecast2 (the Icecast relay trees of docs/relay-tree.md: real Icecast 2.4 servers).
# Debian packages; then the Python packages m3u8 and prometheus_client (PyPI, for the
# python3 on PATH), and the npm packages of package.json (hls.js, served to the viewer's page, and
# playwright-core, which drives chromium in the tests) into ./node_modules.
# A failed install fails the script (and CI): no test skips for want of a tool.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(mktorrent python3-libtorrent ffmpeg aria2 transmission-cli opentracker bc iproute2 iptables ethtool
  chromium nginx-light prometheus tmux icecast2 nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from elsewhere (nvm, a distribution's newer build): only install them
# from Debian when missing.
command -v node >/dev/null && command -v npm >/dev/null \
  && missing=($(printf '%s\n' "${missing[@]}" | grep -vx -e nodejs -e npm || true))
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python packages: the playlist's parser and Prometheus' own text parser.
if ! python3 -c 'import m3u8, prometheus_client' 2>/dev/null; then
  echo "install-deps: installing m3u8 prometheus_client (pip)" >&2
  python3 -m pip install --quiet --disable-pip-version-check m3u8==6.0.0 prometheus_client==0.26.0 \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages m3u8==6.0.0 prometheus_client==0.26.0
fi

# npm packages (package-lock.json pins them).
if [ ! -f node_modules/hls.js/dist/hls.min.js ] || [ ! -d node_modules/playwright-core ] \
  || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci (hls.js, playwright-core)" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
