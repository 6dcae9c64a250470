#!/usr/bin/env bash
# Runs `go test` in every Go module of the repository: the core at the root
# and each module below it (pgxstore, goredisstore, riverqueue, otelhooks,
# examples/...), since `go test ./...` stops at module boundaries.
# Arguments go to every `go test`, e.g. scripts/test-all.sh -race -count=1
#
# The store and queue modules need PostgreSQL and Redis: they read
# NECTARHOOKS_POSTGRES_URL (default postgres://root@127.0.0.1:5432/test)
# and NECTARHOOKS_REDIS_ADDR (default 127.0.0.1:6379), and skip with a
# message saying how to start a server when none answers (fail under CI=1).
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
while IFS= read -r mod; do
  dir=$(dirname "$mod")
  printf '\n== %s\n' "$dir"
  if ! (cd "$dir" && go test "$@" ./...); then
    failed+=("$dir")
  fi
done < <(find . -name go.mod -not -path '*/testdata/*' -not -path '*/node_modules/*' | sort)

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED modules: ${failed[*]}"
  exit 1
fi
echo "all modules passed"
