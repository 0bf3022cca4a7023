#!/usr/bin/env bash
# Smoke run of every fuzz target: builds them, then runs each for FUZZ_SECONDS (default 18) from
# its seed corpus, one target at a time, each in one process (libFuzzer's default; -jobs=N would
# fork workers). Fails on the first crash, hang (10 s on one input), single allocation over
# 64 MiB or RSS over 1 GiB; the input that did it is in fuzz/artifacts/<target>/.
# Runs on the stable toolchain; see "Fuzzing" in docs/reliability.md.
#
#   fuzz/smoke.sh                 # every target
#   fuzz/smoke.sh grub_env        # some of them
#   FUZZ_SECONDS=3600 fuzz/smoke.sh bundle_reader   # a long run of one
set -euo pipefail
cd "$(dirname "$0")"

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, sanitizer-coverage options) to
# rustc and cargo. RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. That is acceptable
# for a test tool whose output is never shipped; the engine itself is built without it.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi

seconds=${FUZZ_SECONDS:-18}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

# --dev: our code unoptimised, with debug assertions and overflow checks, the hot dependencies
# optimised (fuzz/Cargo.toml); it builds in about half the time of the default optimised build,
# which a long run should use (see docs/reliability.md). This build also checks that every target
# compiles.
cargo fuzz build --dev
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    # Fuzz in a scratch copy of the seeds: inputs a run finds do not end up in the committed
    # corpus (use `cargo fuzz cmin` to fold good ones back in deliberately).
    scratch=$(mktemp -d)
    cp -r "corpus/$target/." "$scratch/"
    status=0
    cargo fuzz run --dev "$target" "$scratch" -- \
        -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=1024 -malloc_limit_mb=64 -print_final_stats=1 || status=$?
    rm -rf "$scratch"
    if [ $status -ne 0 ]; then
        echo "fuzz target $target failed; reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run --dev $target fuzz/artifacts/$target/<file>" >&2
        exit $status
    fi
done
