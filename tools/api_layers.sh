#!/bin/sh
# Checks that the rooms of src/api include one another in layers, so that
# the include graph is a DAG and the server core never reaches a route
# module (docs/architecture.md, "The API's rooms"). A room may include its
# own header and the headers of rooms in lower layers only.
# usage: api_layers.sh [SRC_API_DIR]
set -eu
dir=${1:-src/api}
# One layer a line, lowest first.
layers='router http
server
ui metrics events datasets tenants
jobs schedules
api'

layer_of() {
    printf '%s\n' "$layers" | awk -v r="$1" '{ for (i = 1; i <= NF; i++) if ($i == r) print NR }'
}

status=0
for f in "$dir"/*.c "$dir"/*.h; do
    room=$(basename "$f" | sed 's/\.[ch]$//')
    mine=$(layer_of "$room")
    if [ -z "$mine" ]; then
        echo "api_layers: $f is in no layer; add $room to tools/api_layers.sh" >&2
        status=1
        continue
    fi
    bad=$(sed -n 's/^#include "\([a-z_]*\)\.h"$/\1/p' "$f" | while read -r inc; do
        [ "$inc" = "$room" ] && continue
        theirs=$(layer_of "$inc")
        if [ -z "$theirs" ] || [ "$theirs" -ge "$mine" ]; then
            echo "api_layers: $f includes $inc.h, which is not below $room"
        fi
    done)
    if [ -n "$bad" ]; then
        echo "$bad" >&2
        status=1
    fi
done
exit $status
