#!/usr/bin/env bash
# Installs weft from a build tree into a temporary prefix, then builds and runs a consumer
# against it twice: with find_package(weft) and with pkg-config.
set -euo pipefail
build_dir=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT

cmake --install "$build_dir" --prefix "$prefix" >/dev/null
cmake -S "$here" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake" >/dev/null
"$work/cmake/consumer"

PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/$(gcc -print-multiarch)/pkgconfig" \
  bash -c 'g++ -O2 "$0" $(pkg-config --cflags --libs weft) -o "$1"' "$here/main.cpp" "$work/pc-consumer"
"$work/pc-consumer"
"$work/cmake/c_consumer"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/$(gcc -print-multiarch)/pkgconfig" \
  bash -c 'gcc -std=c99 -O2 "$0" $(pkg-config --cflags --libs weft-c) -o "$1"' "$here/main.c" "$work/pc-c-consumer"
"$work/pc-c-consumer"
# Fortran: the installed module source, compiled with the program, linked through weft-c.pc.
PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/$(gcc -print-multiarch)/pkgconfig" \
  bash -c 'cd "$2" && gfortran -O2 "$0/include/weft/weft.f90" "$1" $(pkg-config --libs weft-c) -o pc-fortran-consumer' \
  "$prefix" "$here/../../examples/fortran/parallel_loop.f90" "$work"
"$work/pc-fortran-consumer"
echo "consumer: find_package(weft) and pkg-config both work (C++, C and Fortran)"

# weft::mpi, where this build installed it: find_package(weft COMPONENTS mpi), one rank.
if [ -n "$(find "$prefix" -name weftMpiTargets.cmake)" ] && command -v mpirun >/dev/null; then
  cmake -S "$here/mpi" -B "$work/mpi" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
  cmake --build "$work/mpi" >/dev/null
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none \
    timeout 120 mpirun -np 1 --mca btl self,vader "$work/mpi/mpi_consumer"
  echo "consumer: find_package(weft COMPONENTS mpi) works"
fi
