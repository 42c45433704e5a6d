#!/usr/bin/env bash
# Runs seeds of the deterministic simulation of the cut-over (src/dst) on an optimised build:
#   scripts/dst.sh --seeds N [--from SEED] [--jobs J] [--trace] [--no-faults]
# A failing seed is printed with what broke and its trace; replay it with --seeds 1 --from SEED.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec target/release/migrator dst "$@"
