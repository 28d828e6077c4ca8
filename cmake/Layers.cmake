# The loader's layer order, declared in loader/layers.txt; read by loader/CMakeLists.txt (which
# file goes into which layer library) and by cmake/CheckLayers.cmake (which include points up).

# Sets IPSNAT_LAYERS (the layer names, lowest first) and IPSNAT_LAYER_<name> (its folders and
# folder/stem names) in the caller's scope.
macro(ipsnat_read_layers file)
  file(STRINGS ${file} _ipsnat_layer_lines REGEX "^[a-z]")
  set(IPSNAT_LAYERS "")
  foreach(_line IN LISTS _ipsnat_layer_lines)
    string(REGEX REPLACE "[ \t]+" ";" _words "${_line}")
    list(POP_FRONT _words _layer)
    list(APPEND IPSNAT_LAYERS ${_layer})
    set(IPSNAT_LAYER_${_layer} ${_words})
  endforeach()
endmacro()

# Sets OUT to the layer of REL, a path under loader/ ("spd/mirror.cpp", "spd/policy.h"): the layer
# naming its folder/stem, else the one naming its folder, else "".
function(ipsnat_layer_of out rel)
  get_filename_component(dir ${rel} DIRECTORY)
  get_filename_component(stem ${rel} NAME_WE)
  set(by_dir "")
  foreach(layer IN LISTS IPSNAT_LAYERS)
    if("${dir}/${stem}" IN_LIST IPSNAT_LAYER_${layer})
      set(${out} ${layer} PARENT_SCOPE)
      return()
    endif()
    if(dir IN_LIST IPSNAT_LAYER_${layer})
      set(by_dir ${layer})
    endif()
  endforeach()
  set(${out} "${by_dir}" PARENT_SCOPE)
endfunction()
