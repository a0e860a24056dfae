# Installs the build tree into a scratch prefix, then configures, builds and runs a C99 consumer
# that finds the package with find_package(signvote) and links signvote::signvote, and builds
# and runs the same consumer with the flags of the installed signvote.pc.
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build"
                        "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer configure failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer build failed: ${rc}")
endif()
execute_process(COMMAND "${WORK_DIR}/build/consumer" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer run failed: ${rc}")
endif()

# The same consumer built without CMake, as a Makefile would: flags from the installed
# signvote.pc (found through PKG_CONFIG_PATH only), run against the installed library.
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${WORK_DIR}/prefix/${LIBDIR}/pkgconfig")
execute_process(COMMAND ${PKG_CONFIG} --modversion signvote OUTPUT_VARIABLE version
                OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT version STREQUAL "${VERSION}")
  message(FATAL_ERROR "pkg-config --modversion signvote: '${version}' (${rc}), expected ${VERSION}")
endif()
execute_process(COMMAND ${PKG_CONFIG} --cflags --libs signvote OUTPUT_VARIABLE flags
                OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs signvote failed: ${rc}")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
execute_process(COMMAND ${C_COMPILER} -std=c99 -Wall -Wextra -pedantic -Werror
                        "${SOURCE_DIR}/main.c" ${flags} -o "${WORK_DIR}/pc_consumer"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config consumer build failed: ${rc} (flags: ${flags})")
endif()
set(ENV{LD_LIBRARY_PATH} "${WORK_DIR}/prefix/${LIBDIR}")
execute_process(COMMAND "${WORK_DIR}/pc_consumer" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config consumer run failed: ${rc}")
endif()
