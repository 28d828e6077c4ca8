# cmake -DLOADER_DIR=... -DSTAMP=... -P CheckLayers.cmake
# Fails when a file under LOADER_DIR includes a loader header of a higher layer than its own, or
# lies in a folder no layer names (loader/layers.txt). Touches STAMP when every include points
# down or sideways.
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/Layers.cmake)
ipsnat_read_layers(${LOADER_DIR}/layers.txt)

file(GLOB_RECURSE files RELATIVE ${LOADER_DIR} ${LOADER_DIR}/*/*.h ${LOADER_DIR}/*/*.cpp)
set(errors "")
foreach(rel IN LISTS files)
  ipsnat_layer_of(layer ${rel})
  if(layer STREQUAL "")
    string(APPEND errors "\n  loader/${rel}: its folder is in no layer of loader/layers.txt")
    continue()
  endif()
  list(FIND IPSNAT_LAYERS ${layer} rank)
  file(STRINGS ${LOADER_DIR}/${rel} includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"[^\"/]+/[^\"]+\"")
  foreach(line IN LISTS includes)
    string(REGEX REPLACE "^[^\"]*\"([^\"]+)\".*$" "\\1" target "${line}")
    string(REGEX REPLACE "/.*$" "" folder "${target}")
    if(NOT IS_DIRECTORY ${LOADER_DIR}/${folder})
      continue()  # maps/, ipsnat/, the BPF skeleton: below every layer
    endif()
    ipsnat_layer_of(target_layer ${target})
    list(FIND IPSNAT_LAYERS "${target_layer}" target_rank)
    if(target_rank GREATER rank)
      string(APPEND errors "\n  loader/${rel} (${layer}) includes \"${target}\" (${target_layer})")
    endif()
  endforeach()
endforeach()

if(errors)
  message(FATAL_ERROR "upward include between the loader's layers (order: ${IPSNAT_LAYERS}; "
                      "loader/layers.txt, docs/architecture.md):${errors}")
endif()
file(TOUCH ${STAMP})
