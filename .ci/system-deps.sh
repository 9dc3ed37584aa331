#!/usr/bin/env bash
# Installs the Debian packages that fedit's test suite needs on a fresh machine.
# Idempotent: packages already present are left alone, apt runs only when something is missing.
#   python3-torch + libopenblas0-pthread : the PyTorch reference for the training-step checks
#                                          (openblas, or torch falls back to a slow reference BLAS)
#   chromium                             : browser tests of the client UI (playwright-core drives it)
#   nginx-light                          : the reverse-proxy recipe of docs/operations.md, run in front
#                                          of a coordinator (client-app/test/nginx-proxy.test.ts)
#   mesa-vulkan-drivers (backports, >=25): software Vulkan so the WebGPU execution provider runs without a GPU
set -euo pipefail

want=(python3-torch libopenblas0-pthread chromium nginx-light)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# lavapipe must be >= 25 (Dawn rejects bookworm's 22.3); it comes from <codename>-backports.
lavapipe_ok() {
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 25
}

if [ ${#missing[@]} -eq 0 ] && lavapipe_ok; then
  echo "system-deps: all present"
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "system-deps: missing ${missing[*]} (and/or lavapipe>=25); run as root to install" >&2; exit 1; }

# Enable <codename>-backports using the URIs of the machine's own Debian source entry,
# so no package host is named here.
. /etc/os-release
codename=${VERSION_CODENAME:-bookworm}
bp=/etc/apt/sources.list.d/fedit-backports.sources
if [ ! -f "$bp" ] && ! grep -rqs -- "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ]; then
    uri=$(awk '/^URIs:/{print $2; exit}' "$src")
    keyring=$(awk '/^Signed-By:/{print $2; exit}' "$src")
  else
    uri=$(awk '$1=="deb" && $3=="'"$codename"'" {print $2; exit}' /etc/apt/sources.list)
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  fi
  printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: %s\n' \
    "$uri" "$codename" "${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}" > "$bp"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
[ ${#missing[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${missing[@]}"
lavapipe_ok || apt-get install -y -qq --no-install-recommends -t "${codename}-backports" mesa-vulkan-drivers libvulkan1
echo "system-deps: installed"
