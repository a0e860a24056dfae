#!/usr/bin/env bash
# The lent GPU machines cannot fetch packages, so the GPU lane brings its Debian build
# dependencies along:
#   bash tools/gpu-deps.sh fetch    here (a Debian 12 machine with apt): downloads the .deb files
#                                   into .debs/ (git-ignored; name it in the device tool's carry)
#   source tools/gpu-deps.sh unpack there: unpacks .debs/ into .deps-root/ and exports
#                                   CMAKE_PREFIX_PATH and LD_LIBRARY_PATH to use them
# .ci/gpu calls `unpack` only when tools/install-deps.sh could not install the packages.
pkgs=(libgtest-dev libboost-program-options1.74-dev libboost-program-options1.74.0
      libboost1.74-dev nlohmann-json3-dev)
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
    export CMAKE_PREFIX_PATH="$root_dir/.deps-root/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export LD_LIBRARY_PATH="$root_dir/.deps-root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    ;;
  *)
    echo "usage: bash tools/gpu-deps.sh fetch | source tools/gpu-deps.sh unpack" >&2
    return 2 2>/dev/null || exit 2
    ;;
esac
