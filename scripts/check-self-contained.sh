#!/usr/bin/env bash
# Fails when a tracked file reaches outside the clone: a path into a workspace or home
# directory (/work/..., /home/..., /root/..., /Users/...), this clone's own absolute path
# or its parent's, or a relative path that climbs out of the repository to a sibling
# (../shared, ../../shared, ...). System paths the project installs or manages
# (/usr, /etc, /opt/strata-*, /run/strata-lab, ...) are fine. Tests find their data from
# CARGO_MANIFEST_DIR (see crates/strata-testkit), scripts from their own location.
#
# testdata/ is vendor data and is not searched. Exit 0 clean, 1 with the offending lines.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd -P)"
parent="$(dirname "$root")"

patterns=(-e '(^|[^A-Za-z0-9_.~-])/(work|home|root|Users)/' -e '\.\./(\.\./)*shared\b')
# This clone's absolute location (and its parent's) must not be written into any file.
[[ "$root" == / ]] || patterns+=(-e "$(printf '%s' "$root" | sed 's/[][\.*^$]/\\&/g')")
[[ "$parent" == / ]] || patterns+=(-e "$(printf '%s' "$parent/" | sed 's/[][\.*^$]/\\&/g')")

if hits=$(git grep -nIE "${patterns[@]}" -- . ':!testdata' ':!scripts/check-self-contained.sh'); then
    echo "check-self-contained: tracked files name paths outside the repository:" >&2
    echo "$hits" >&2
    echo "check-self-contained: locate files from the repository (CARGO_MANIFEST_DIR, the script's own directory) instead" >&2
    exit 1
fi
echo "check-self-contained: no tracked file names a path outside the repository"
