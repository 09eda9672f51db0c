#!/usr/bin/env bash
# Installs the independent software the tests compare against, if missing: mktorrent (reference
# info hashes), libtorrent's Python bindings (an independent .torrent parser and BitTorrent client),
# ffmpeg (media checks), aria2, transmission-cli and opentracker (independent clients and tracker),
# and what the emulated network needs (iproute2: ip and ss; iptables: NFQUEUE and NAT; ethtool:
# offloads off).
# Debian packages.
set -euo pipefail
packages=(mktorrent python3-libtorrent ffmpeg aria2 transmission-cli opentracker bc iproute2 iptables ethtool)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
