#!/usr/bin/env bash
# The lent GPU machines cannot fetch packages, so the GPU lane brings its Debian build
# dependencies along:
#   bash tools/gpu-deps.sh fetch    here (a Debian 12 machine with apt): downloads the .deb files
#                                   into .debs/ (git-ignored; name it in the device tool's carry)
#   source tools/gpu-deps.sh unpack there: unpacks .debs/ into .deps-root/ and exports
#                                   CMAKE_PREFIX_PATH and LD_LIBRARY_PATH to use them
# .ci/gpu calls `unpack` only when tools/install-deps.sh could not install the packages.
pkgs=(libgtest-dev libboost-program-options1.74-dev libboost-program-options1.74.0
      libboost1.74-dev nlohmann-json3-dev
      libgloo-dev libgloo0 libhiredis0.14 libibverbs1 libnl-3-200 libnl-route-3-200)
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
  fetch)
    mkdir -p "$root_dir/.debs"
    (cd "$root_dir/.debs" && apt-get download "${pkgs[@]}")
    ;;
  unpack)
    ls "$root_dir"/.debs/*.deb >/dev/null 2>&1 || {
      echo "gpu-deps: no .debs/ to unpack (run 'bash tools/gpu-deps.sh fetch' where apt works)" >&2
      return 1 2>/dev/null || exit 1
    }
    mkdir -p "$root_dir/.deps-root"
    for f in "$root_dir"/.debs/*.deb; do dpkg -x "$f" "$root_dir/.deps-root"; done
    # gloo's CMake targets name the library by its absolute /usr/lib path: point them here.
    sed -i "s|\"/usr/lib/|\"$root_dir/.deps-root/usr/lib/|g" \
      "$root_dir"/.deps-root/usr/share/cmake/Gloo/GlooTargets-*.cmake 2>/dev/null || true
    export CMAKE_PREFIX_PATH="$root_dir/.deps-root/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    _gd_lib="$root_dir/.deps-root/usr/lib"
    export LD_LIBRARY_PATH="$_gd_lib/x86_64-linux-gnu:$_gd_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    unset _gd_lib
    ;;
  *)
    echo "usage: bash tools/gpu-deps.sh fetch | source tools/gpu-deps.sh unpack" >&2
    return 2 2>/dev/null || exit 2
    ;;
esac
