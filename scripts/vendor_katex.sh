#!/usr/bin/env bash
# Copy KaTeX (MIT licence) from the npm registry into docs/assets/katex/, so the documentation
# site typesets its equations with no network: nothing is loaded from a CDN.
#
#   bash scripts/vendor_katex.sh            # the pinned version below
#   KATEX_VERSION=0.19.1 bash scripts/vendor_katex.sh
#
# Only what the site uses is kept: the library, its stylesheet, the woff2 fonts (the first format
# the stylesheet asks for; every current browser reads it) and the licence. Needs npm.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${KATEX_VERSION:-0.19.1}"
dest=docs/assets/katex
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "katex@${version}" >/dev/null && tar xzf "katex-${version}.tgz")
src="$work/package"
rm -rf "$dest"
mkdir -p "$dest/fonts"
cp "$src/LICENSE" "$dest/LICENSE"
cp "$src/dist/katex.min.js" "$src/dist/katex.min.css" "$dest/"
cp "$src"/dist/fonts/*.woff2 "$dest/fonts/"
echo "$version" >"$dest/VERSION"
echo "KaTeX $version -> $dest ($(du -sh "$dest" | cut -f1))"
