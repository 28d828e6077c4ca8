# The loader's layer order, declared in loader/layers.txt; read by loader/CMakeLists.txt (which
# file goes into which layer library) and by cmake/CheckLayers.cmake (which include points up).

# Sets IPSNAT_LAYERS (the layer names, lowest first) and IPSNAT_LAYER_<name> (its folders) in the
# caller's scope. A folder is a layer's only unit: an entry with a slash, or a folder two layers
# name, is refused, so the folder a file lies in tells its layer.
macro(ipsnat_read_layers file)
  file(STRINGS ${file} _ipsnat_layer_lines REGEX "^[a-z]")
  set(IPSNAT_LAYERS "")
  set(_ipsnat_layer_folders "")
  foreach(_line IN LISTS _ipsnat_layer_lines)
    string(REGEX REPLACE "[ \t]+" ";" _words "${_line}")
    list(POP_FRONT _words _layer)
    foreach(_folder IN LISTS _words)
      if(_folder MATCHES "/")
        message(FATAL_ERROR "${file}: layer ${_layer} names \"${_folder}\", not a folder: "
                            "move the file into a folder of its layer")
      endif()
      if(_folder IN_LIST _ipsnat_layer_folders)
        message(FATAL_ERROR "${file}: folder ${_folder} is named by two layers")
      endif()
      list(APPEND _ipsnat_layer_folders ${_folder})
    endforeach()
    list(APPEND IPSNAT_LAYERS ${_layer})
    set(IPSNAT_LAYER_${_layer} ${_words})
  endforeach()
endmacro()

# Sets OUT to the layer of REL, a path under loader/ ("spd/policy.h"): the layer naming its
# folder, else "".
function(ipsnat_layer_of out rel)
  get_filename_component(dir ${rel} DIRECTORY)
  foreach(layer IN LISTS IPSNAT_LAYERS)
    if(dir IN_LIST IPSNAT_LAYER_${layer})
      set(${out} ${layer} PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out} "" PARENT_SCOPE)
endfunction()
