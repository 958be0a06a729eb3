#!/usr/bin/env bash
# check-help-man.sh TOOL MANPAGE: the options TOOL --help lists and those MANPAGE documents
# are the same set, and --help exits 0. Fails listing the options only one side has.
set -euo pipefail
tool=$1 page=$2
help=$("$tool" --help) || { echo "$tool --help failed with status $?"; exit 1; }
options() { grep -oE '(^|[][ ,|(])-{1,2}[a-z][a-z_]*' | sed -E 's/^[][ ,|(]//' | sort -u; }
from_help=$(printf '%s\n' "$help" | options)
# Options in the man page: "\-x" (roff's minus) in request lines and text.
from_man=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$page" | grep -v '^\.\\"' | options)
only_help=$(comm -23 <(printf '%s\n' "$from_help") <(printf '%s\n' "$from_man"))
only_man=$(comm -13 <(printf '%s\n' "$from_help") <(printf '%s\n' "$from_man"))
if [ -n "$only_help$only_man" ]; then
  [ -z "$only_help" ] || echo "in $tool --help but not in $page: $only_help"
  [ -z "$only_man" ] || echo "in $page but not in $tool --help: $only_man"
  exit 1
fi
echo "$(basename "$tool"): --help and $(basename "$page") document the same $(wc -l <<<"$from_help") options"
