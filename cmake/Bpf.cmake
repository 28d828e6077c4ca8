# bpf_skeleton(<target> SOURCE <file.bpf.c> NAME <skeleton name>)
# Compiles one BPF object with clang's BPF target (header dependencies tracked through a
# depfile), strips DWARF but keeps BTF, and generates <name>.skel.h with bpftool. <target>
# is an INTERFACE library whose include directory holds the skeleton: the object is embedded
# in whatever includes it, so there is no .o to ship or find at run time.
find_program(BPF_CLANG NAMES clang clang-19 clang-14 REQUIRED)
find_program(BPF_STRIP NAMES llvm-strip llvm-strip-19 llvm-strip-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
                OUTPUT_VARIABLE BPF_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT BPF_MULTIARCH)
  set(BPF_MULTIARCH x86_64-linux-gnu)
endif()

function(bpf_skeleton target)
  cmake_parse_arguments(ARG "" "SOURCE;NAME" "" ${ARGN})
  get_filename_component(src ${ARG_SOURCE} ABSOLUTE)
  set(outdir ${CMAKE_BINARY_DIR}/generated/bpf)
  set(obj ${outdir}/${ARG_NAME}.bpf.o)
  set(skel ${outdir}/${ARG_NAME}.skel.h)
  file(MAKE_DIRECTORY ${outdir})
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror
            -I${PROJECT_SOURCE_DIR} -I${PROJECT_SOURCE_DIR}/bpf -I/usr/include/${BPF_MULTIARCH}
            -MD -MF ${obj}.d -MT ${obj} -c ${src} -o ${obj}.full
    COMMAND ${BPF_STRIP} -g ${obj}.full -o ${obj}
    DEPENDS ${src}
    DEPFILE ${obj}.d
    COMMENT "BPF ${ARG_NAME}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${ARG_NAME} > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${ARG_NAME}.skel.h"
    VERBATIM)
  add_custom_target(${target}_gen DEPENDS ${skel})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_gen)
  target_include_directories(${target} SYSTEM INTERFACE ${outdir})
  set_property(TARGET ${target} PROPERTY BPF_OBJECT ${obj})
endfunction()
