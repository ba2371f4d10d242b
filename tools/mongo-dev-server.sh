#!/usr/bin/env bash
# Runs Herald's MongoDB dev server (tools/mongo-dev-server), building the jar first when it is
# missing or older than its sources. Flags: [--port N] [--bind HOST] [--backend memory|h2] [--data FILE]
# `--build-only` builds (if needed) and exits: `make deps` uses it.
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/mongo-dev-server" && pwd)"
jar="$dir/target/herald-mongo-dev-server.jar"

stale() {
    [[ ! -f "$jar" ]] || [[ -n "$(find "$dir/pom.xml" "$dir/src" -newer "$jar" -print -quit)" ]]
}

if stale; then
    mkdir -p "$dir/target"
    (
        # Serialise concurrent first runs; the loser re-checks and finds a fresh jar.
        flock 9
        if stale; then
            # Build beside the live jar, then rename: servers already running keep their (old) file.
            if ! out="$(cd "$dir" && mvn -q -B package -DskipTests -Dshaded.jar="$jar.new" 2>&1)"; then
                printf '%s\n' "$out" >&2
                echo "mongo-dev-server.sh: maven build failed" >&2
                exit 1
            fi
            mv -f "$jar.new" "$jar"
        fi
    ) 9>"$dir/target/.build.lock"
fi

[[ "${1:-}" == "--build-only" ]] && exit 0
# A fixed young generation of 512 MiB: a burst of inserts is almost all short-lived garbage,
# which G1's adaptive sizing collected every few hundred posts, and now and then in a storm
# (bench/results.md, "The development server's young generation").
exec java -Xmx2g -Xmn512m -jar "$jar" "$@"
