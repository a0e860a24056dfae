#!/usr/bin/env bash
# The lent GPU machines cannot fetch packages, so the GPU lane brings its Debian build
# dependencies along:
#   bash tools/gpu-deps.sh fetch    here (a Debian 12 machine with apt): downloads the .deb files
#                                   into .debs/ (git-ignored; name it in the device tool's carry)
#   source tools/gpu-deps.sh unpack there: unpacks .debs/ into .deps-root/ and exports
#                                   CMAKE_PREFIX_PATH, CPATH, LD_LIBRARY_PATH and
#                                   SIGNVOTE_FASHION_MNIST to use them
# .ci/gpu unpacks a carried .debs/ instead of calling tools/install-deps.sh (whose apt would
# wait on a network that is not there).
pkgs=(libgtest-dev libboost-program-options1.74-dev libboost-program-options1.74.0
      libboost1.74-dev nlohmann-json3-dev
      libgloo-dev libgloo0 libhiredis0.14 libibverbs1 libnl-3-200 libnl-route-3-200
      libopenblas-dev libopenblas0 libopenblas0-pthread libopenblas-pthread-dev libgfortran5
      libquadmath0 zlib1g-dev zlib1g dataset-fashion-mnist pkgconf pkgconf-bin libpkgconf3)
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
    if [ ! -e "$root_dir/.deps-root/.unpacked" ]; then  # once per machine (it is git-ignored)
      mkdir -p "$root_dir/.deps-root"
      for f in "$root_dir"/.debs/*.deb; do dpkg -x "$f" "$root_dir/.deps-root"; done
      touch "$root_dir/.deps-root/.unpacked"
    fi
    _gd="$root_dir/.deps-root"
    # gloo's CMake targets name the library by its absolute /usr/lib path: point them here.
    sed -i "s|\"/usr/lib/|\"$_gd/usr/lib/|g" \
      "$_gd"/usr/share/cmake/Gloo/GlooTargets-*.cmake 2>/dev/null || true
    # Absolute links (zlib1g-dev's libz.so -> /lib/...) would point at the machine's own files,
    # or nowhere: point them at the unpacked ones.
    find "$_gd" -type l | while read -r _gd_l; do
      _gd_t=$(readlink "$_gd_l")
      case "$_gd_t" in /*) if [ -e "$_gd$_gd_t" ]; then ln -sfn "$_gd$_gd_t" "$_gd_l"; fi ;; esac
    done
    # OpenBLAS without Debian's alternatives: its own folders, searched by FindBLAS through
    # LD_LIBRARY_PATH and by the compiler through CPATH.
    _gd_blas="x86_64-linux-gnu/openblas-pthread"
    export CMAKE_PREFIX_PATH="$_gd/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export PATH="$PATH:$_gd/usr/bin"  # pkg-config (the install test), after the machine's own
    export CPATH="$_gd/usr/include/$_gd_blas${CPATH:+:$CPATH}"
    export LD_LIBRARY_PATH="$_gd/usr/lib/$_gd_blas:$_gd/usr/lib/x86_64-linux-gnu:$_gd/lib/x86_64-linux-gnu:$_gd/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export SIGNVOTE_FASHION_MNIST="$_gd/usr/share/datasets/fashion-mnist"
    unset _gd _gd_l _gd_t _gd_blas
    ;;
  *)
    echo "usage: bash tools/gpu-deps.sh fetch | source tools/gpu-deps.sh unpack" >&2
    return 2 2>/dev/null || exit 2
    ;;
esac
