# cmake -DLOADER_DIR=... -DSTAMP=... -P CheckLayers.cmake
# Fails when a file under LOADER_DIR includes a loader header of a higher layer than its own, lies
# in a folder no layer names (loader/layers.txt), or opens a namespace body other than its
# folder's (ipsnat::FOLDER, or ipsnat for the folders below). Touches STAMP when every include
# points down or sideways and every file's namespace follows its folder.
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/Layers.cmake)
ipsnat_read_layers(${LOADER_DIR}/layers.txt)

# The folders whose code is the root namespace ipsnat: the vocabulary every layer names
# unqualified (Error, Fd, Address/Prefix, the reasons' names); docs/architecture.md.
set(root_namespace_folders util core)

file(GLOB_RECURSE files RELATIVE ${LOADER_DIR} ${LOADER_DIR}/*/*.h ${LOADER_DIR}/*/*.cpp)
set(errors "")
foreach(rel IN LISTS files)
  ipsnat_layer_of(layer ${rel})
  if(layer STREQUAL "")
    string(APPEND errors "\n  loader/${rel}: its folder is in no layer of loader/layers.txt")
    continue()
  endif()
  list(FIND IPSNAT_LAYERS ${layer} rank)
  # A namespace body (the line ends in "{") is the folder's namespace or one nested in it (not for
  # the root namespace: ipsnat::x is folder x's); a one-line block (namespace ipsnat::x { class
  # Y; }) may forward-declare another folder's type.
  get_filename_component(folder ${rel} DIRECTORY)
  if(folder IN_LIST root_namespace_folders)
    set(home "ipsnat")
    set(nested "^$")
  else()
    set(home "ipsnat::${folder}")
    set(nested "^${home}::")
  endif()
  file(STRINGS ${LOADER_DIR}/${rel} opens REGEX "^[ \t]*namespace[ \t]+ipsnat[a-z_:]*[ \t]*{[ \t]*$")
  foreach(line IN LISTS opens)
    string(REGEX REPLACE "^[ \t]*namespace[ \t]+(ipsnat[a-z_:]*).*$" "\\1" ns "${line}")
    if(NOT ns STREQUAL home AND NOT ns MATCHES "${nested}")
      string(APPEND errors "\n  loader/${rel}: namespace ${ns}, not its folder's ${home}")
    endif()
  endforeach()
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
  message(FATAL_ERROR "upward include or misplaced namespace between the loader's layers (order: "
                      "${IPSNAT_LAYERS}; loader/layers.txt, docs/architecture.md):${errors}")
endif()
file(TOUCH ${STAMP})
