# find_package(edgelm) for an edgelm installed by capi/install.sh: the imported target
# edgelm::edgelm links the static library (EDGELM_SHARED=ON: the shared one).
get_filename_component(_edgelm_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET edgelm::edgelm)
  find_package(Threads REQUIRED)
  if(EDGELM_SHARED)
    add_library(edgelm::edgelm SHARED IMPORTED)
    set(_edgelm_lib "${_edgelm_prefix}/lib/libedgelm.so")
  else()
    add_library(edgelm::edgelm STATIC IMPORTED)
    set(_edgelm_lib "${_edgelm_prefix}/lib/libedgelm.a")
  endif()
  set_target_properties(edgelm::edgelm PROPERTIES
    IMPORTED_LOCATION "${_edgelm_lib}"
    INTERFACE_INCLUDE_DIRECTORIES "${_edgelm_prefix}/include"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m")
  unset(_edgelm_lib)
endif()
unset(_edgelm_prefix)
