#!/usr/bin/env bash
# run.sh SOURCE_DIR BUILD_DIR WORK_DIR CXX BUILD_TYPE MODE
# Builds tests/consumer/ against erlcpp one way (MODE), then runs the program against a real
# erl node: a private erlcpp-epmd on a free port, a uniquely named erl registered with it, the
# program pings it and checks that erl lists it in nodes(). Everything started is stopped.
#   install       cmake --install BUILD_DIR into WORK_DIR/prefix (for the next two)
#   find_package  CMake, find_package(erlcpp) from the prefix (shared and static)
#   pkg-config    plain c++ with `pkg-config --cflags --libs erlcpp` from the prefix
# The prefix is WORK_DIR/prefix or $ERLCPP_CONSUMER_PREFIX (scripts/package: unpacked packages,
# with $ERLCPP_CONSUMER_SYSROOT the root they are unpacked into).
#   subdirectory  CMake, add_subdirectory of a copy of SOURCE_DIR's files
#   fetchcontent  CMake, FetchContent from a file:// archive of SOURCE_DIR's files
set -euo pipefail
src=$1 build=$2 work=$3 cxx=$4 build_type=${5:-RelWithDebInfo} mode=$6
prefix=${ERLCPP_CONSUMER_PREFIX:-$work/prefix}  # where find_package and pkg-config look
dir=$work/$mode
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

if [ "$mode" = install ]; then
  rm -rf "$prefix"
  cmake --install "$build" --prefix "$prefix" >/dev/null
  for f in include/erl/node.hpp include/erl/version.hpp lib/liberlcpp.a lib/liberlcpp.so \
           lib/cmake/erlcpp/erlcppConfig.cmake lib/cmake/erlcpp/erlcppConfigVersion.cmake \
           lib/pkgconfig/erlcpp.pc bin/erlcpp-epmd bin/erlcpp-call share/man/man1/erlcpp-epmd.1.gz; do
    [ -e "$prefix/$f" ] || { echo "not installed: $f"; ls -R "$prefix"; exit 1; }
  done
  soname=$(objdump -p "$prefix/lib/liberlcpp.so" | awk '$1 == "SONAME" {print $2}')
  [ -e "$prefix/lib/$soname" ] || { echo "SONAME $soname: no such file in $prefix/lib"; exit 1; }
  if find "$prefix" -path '*/detail/*' -prune -o -name '*.hpp' -print | xargs grep -l '"\(node\|term\)/' 2>/dev/null; then
    echo "installed headers include private src/ headers"; exit 1
  fi
  echo "installed into $prefix (liberlcpp SONAME $soname)"
  exit 0
fi

# An archive of the checkout's files as they are now (tracked and new, not ignored).
archive=$dir.tar.gz
make_archive() {
  if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
       xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
       tar --null -T - --transform 's|^|erlcpp/|' -czf "$archive")
  else
    tar -C "$(dirname "$src")" --exclude='build*' -czf "$archive" "$(basename "$src")"
  fi
}

rm -rf "$dir" "$archive"
mkdir -p "$dir"
programs=()
epmd=$build/bin/erlcpp-epmd
configure=(cmake -S "$src/tests/consumer" -B "$dir" -DCMAKE_BUILD_TYPE="$build_type"
           -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}")
case $mode in
  find_package)
    "${configure[@]}" -DERLCPP_CONSUMER_MODE=find_package -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build "$dir" -j"$(nproc)"
    programs=("$dir/erlcpp-consumer" "$dir/erlcpp-consumer-static")
    epmd=$prefix/bin/erlcpp-epmd
    ;;
  pkg-config)
    pc=$(find "$prefix"/lib* -maxdepth 3 -name erlcpp.pc | head -1)
    [ -n "$pc" ] || { echo "no erlcpp.pc under $prefix"; exit 1; }
    export PKG_CONFIG_PATH=$(dirname "$pc")
    # Unpacked packages: erlcpp.pc names /usr, the files are under the staging root.
    if [ -n "${ERLCPP_CONSUMER_SYSROOT:-}" ]; then export PKG_CONFIG_SYSROOT_DIR=$ERLCPP_CONSUMER_SYSROOT; fi
    cflags=$(pkg-config --cflags erlcpp)
    libs=$(pkg-config --libs erlcpp)
    echo "pkg-config --cflags --libs erlcpp: $cflags $libs"
    compiler=("$cxx")
    if command -v ccache >/dev/null; then compiler=(ccache "$cxx"); fi
    # shellcheck disable=SC2086 # pkg-config output is a list of flags
    "${compiler[@]}" -O1 $cflags "$src/tests/consumer/main.cpp" -o "$dir/erlcpp-consumer" $libs
    libdir=$(pkg-config --variable=libdir erlcpp)
    export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    programs=("$dir/erlcpp-consumer")
    epmd=$prefix/bin/erlcpp-epmd
    ;;
  subdirectory)
    # A vendored copy of the sources, unpacked where FetchContent unpacks its copy relative to
    # the build (erlcpp-src next to erlcpp's build directory), so both share ccache's objects.
    make_archive
    mkdir -p "$dir/erlcpp-src"
    tar -C "$dir/erlcpp-src" --strip-components=1 -xzf "$archive"
    "${configure[@]}" -DERLCPP_CONSUMER_MODE=subdirectory -DERLCPP_DIR="$dir/erlcpp-src" >/dev/null
    cmake --build "$dir" -j"$(nproc)"
    programs=("$dir/erlcpp-consumer")
    ;;
  fetchcontent)
    make_archive
    "${configure[@]}" -DERLCPP_CONSUMER_MODE=fetchcontent -DERLCPP_URL="file://$archive" \
      -DFETCHCONTENT_FULLY_DISCONNECTED=OFF >/dev/null
    cmake --build "$dir" -j"$(nproc)"
    programs=("$dir/erlcpp-consumer")
    ;;
  *) echo "run.sh: unknown mode $mode"; exit 2 ;;
esac

# --- a real erl node behind a private EPMD ------------------------------------------------
port=$(erl -noshell -eval '{ok,S}=gen_tcp:listen(0,[{ip,{127,0,0,1}}]),{ok,P}=inet:port(S),io:format("~p",[P]),halt().')
cookie="consumer_${RANDOM}${RANDOM}"
peer_name="beam_consumer_$$_${RANDOM}"
peer="$peer_name@127.0.0.1"
pids=()
# Stops what was started, the last first: SIGTERM, then SIGKILL if it is still there after 10 s.
cleanup() {
  local i p
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[i]}
    kill "$p" 2>/dev/null || continue
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -9 "$p" 2>/dev/null; then echo "run.sh: pid $p ignored SIGTERM for 10 s; killed"; fi
    wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
# Waits (up to 30 s) until "$@" succeeds: the event, not a fixed sleep.
wait_for() {
  local deadline=$((SECONDS + 30))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for: $*"; return 1; }
    sleep 0.05
  done
}
"$epmd" -port "$port" &
pids+=($!)
wait_for "$epmd" -port "$port" -names
erl_log=$dir/erl.log
ERL_EPMD_PORT=$port erl -name "$peer" -setcookie "$cookie" -noshell -noinput \
  -kernel inet_dist_use_interface '{127,0,0,1}' >"$erl_log" 2>&1 &
pids+=($!)
wait_for sh -c "'$epmd' -port $port -names | grep -q 'name $peer_name '" || { cat "$erl_log"; exit 1; }
for p in "${programs[@]}"; do
  "$p" "$peer" "$cookie" "$port" || { echo "$p failed; $peer said:"; cat "$erl_log"; exit 1; }
done
