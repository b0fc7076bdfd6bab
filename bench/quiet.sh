#!/bin/sh
# Run a command (default: make bench-gateway) at a raised CPU share against other sessions'
# processes. Autogroup scheduling is on, so `nice` does not cross sessions; a lower autogroup
# nice value for this shell's group, inherited by what it execs, does.
# Usage: bench/quiet.sh [command...]
echo -10 > /proc/self/autogroup || echo "bench/quiet.sh: could not raise the autogroup priority" >&2
[ "$#" -gt 0 ] || set -- make bench-gateway
exec "$@"
