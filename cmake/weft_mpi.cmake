# weft::mpi (include/weft/mpi.hpp, runtime/layers/mpi.cpp): a pool per MPI rank on the
# rank's CPU binding. Optional: built where find_package(MPI COMPONENTS CXX) finds an MPI,
# skipped with a message otherwise. Installed in its own export set (weftMpiTargets), which
# weftConfig.cmake loads when it can find MPI itself, so a consumer without MPI still
# finds weft::weft. Defines WEFT_HAVE_MPI for tests/ and examples/mpi/.
option(WEFT_MPI "Build weft::mpi where MPI is found" ON)
set(WEFT_HAVE_MPI OFF)
if(NOT WEFT_MPI)
  message(STATUS "weft::mpi: off (WEFT_MPI=OFF)")
  return()
endif()
# Not under the sanitizers: Open MPI is not instrumented and its own allocations fail the
# sanitizer runs. Tried with ASan+UBSan (Open MPI 4.1.4, distributed_reduce on 2 ranks):
# right sum, no ASan or UBSan error, but LeakSanitizer fails each rank on ~120 KB in ~3,300
# allocations made inside libmpi/libopen-pal, none in weft. Under TSan an uninstrumented
# library's synchronisation is invisible, so its reports would be noise too. What weft
# adds here (the binding, the plan) is tested under both by binding_test, without MPI.
if(WEFT_SANITIZE)
  message(STATUS "weft::mpi: not built under WEFT_SANITIZE=${WEFT_SANITIZE} (Open MPI itself is not instrumented)")
  return()
endif()
find_package(MPI COMPONENTS CXX)
if(NOT MPI_CXX_FOUND)
  message(STATUS "weft::mpi: skipped, no MPI found (apt-get install libopenmpi-dev openmpi-bin)")
  return()
endif()
set(WEFT_HAVE_MPI ON)
message(STATUS "weft::mpi: building against MPI ${MPI_CXX_VERSION} (${MPIEXEC_EXECUTABLE})")

add_library(weft_mpi ${PROJECT_SOURCE_DIR}/runtime/layers/mpi.cpp)
add_library(weft::mpi ALIAS weft_mpi)
set_target_properties(weft_mpi PROPERTIES EXPORT_NAME mpi POSITION_INDEPENDENT_CODE ON)
# runtime/ for topology.hpp (the binding); MPI is public: users of weft::mpi call MPI.
target_include_directories(weft_mpi PRIVATE ${PROJECT_SOURCE_DIR}/runtime)
target_link_libraries(weft_mpi PUBLIC weft::weft MPI::MPI_CXX)
target_compile_options(weft_mpi PRIVATE -Wall -Wextra -Wpedantic $<$<BOOL:${WEFT_WERROR}>:-Werror>)

install(TARGETS weft_mpi EXPORT weftMpiTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT weftMpiTargets NAMESPACE weft:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/weft)

if(WEFT_BUILD_TESTS)
  add_subdirectory(${PROJECT_SOURCE_DIR}/examples/mpi ${PROJECT_BINARY_DIR}/examples/mpi)
endif()
