#!/bin/sh
# Packs the main package and one platform package (its binary already in npm/PLATFORM/),
# installs both into an empty project and runs the CLI there: what a user of that platform
# gets from `npm i`. Used by the workflow (on arm64 runners and in Alpine) and test:emulated.
#   sh scripts/run-installed.sh PLATFORM        e.g. linux-arm64-gnu, linux-x64-musl
set -eu
platform=$1
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
main=$(cd "$root" && npm pack --silent --pack-destination "$work")
plat=$(cd "$root/npm/$platform" && npm pack --silent --pack-destination "$work")
mkdir "$work/app" && cd "$work/app" && echo '{"name":"app","version":"1.0.0","private":true}' > package.json
npm install --no-audit --no-fund --prefer-offline "$work/$main" "$work/$plat" >/dev/null
node node_modules/eurobert-ner/dist/cli/index.js "Jonas Gahr Støre møtte styret i Equinor i Stavanger." | tee "$work/out.txt"
grep -q '\[Jonas Gahr Støre\](PER)' "$work/out.txt"
node -e "console.log(require('eurobert-ner').cpuKernels())"
echo "ok: $platform installed and ran"
