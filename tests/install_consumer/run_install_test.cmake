# cmake -DBUILD_DIR=... -DCONSUMER_DIR=... -DWORK_DIR=... [-DEXTRA_PREFIX=...]
#       [-DLAUNCHER=...] -P run_install_test.cmake
# Installs the built proxyloss into a scratch prefix, checks that every
# installed header is public (named by the umbrella header proxyloss.h),
# then configures, builds and runs a consumer project that finds it with
# find_package(proxyloss).
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
# The installed headers are the public API: each one is named by the
# umbrella header, and there is no internal (detail/) folder. Except the
# opt-in compat_c10d.h (a Gloo process group for proxyloss/distributed.h),
# which needs the Gloo headers and -DUSE_C10D_GLOO: only a program that
# builds a Gloo group includes it.
set(opt_in_headers compat_c10d.h)
set(include_dir "${WORK_DIR}/prefix/include/proxyloss")
file(GLOB_RECURSE installed RELATIVE "${include_dir}" "${include_dir}/*")
file(READ "${include_dir}/proxyloss.h" umbrella)
foreach(header IN LISTS installed)
  list(FIND opt_in_headers "${header}" opt_in)
  if(header STREQUAL "proxyloss.h" OR opt_in GREATER -1)
    continue()
  endif()
  string(FIND "${umbrella}" "#include \"proxyloss/${header}\"" position)
  if(position EQUAL -1 OR header MATCHES "/")
    message(FATAL_ERROR "installed header proxyloss/${header} is not public: "
      "it is not included by proxyloss/proxyloss.h (or lies in a subfolder)")
  endif()
endforeach()
set(prefix_path "${WORK_DIR}/prefix")
# EXTRA_PREFIX: the build's CMAKE_PREFIX_PATH (variable and environment),
# where LibTorch and the other dependencies were found.
string(REPLACE ";" ":" extra "${EXTRA_PREFIX}")
string(REGEX REPLACE "::+" ":" extra "${extra}")
string(REGEX REPLACE "^:|:$" "" extra "${extra}")
if(extra)
  set(prefix_path "${prefix_path}:${extra}")
endif()
set(launcher_arg "")
if(LAUNCHER)
  set(launcher_arg "-DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER}")
endif()
run(${CMAKE_COMMAND} -E env "CMAKE_PREFIX_PATH=${prefix_path}"
    ${CMAKE_COMMAND} -S "${CONSUMER_DIR}" -B "${WORK_DIR}/build"
    -DCMAKE_BUILD_TYPE=Release ${launcher_arg})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer")
