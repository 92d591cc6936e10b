# attnlab_add_shaders(TARGET name NAMESPACE ns INCLUDE_DIR dir SOURCES a.comp b.frag ...)
# Compiles each GLSL file with glslc into SPIR-V at build time and generates one header
# <name>.h with a registry { "file_stem" → SPIR-V words } in namespace attnlab::shaders::<ns>
# (one namespace per registry, so two registries can live in one program), exposed as an
# INTERFACE target.
# Variants: a source file listed as "file.comp:VARIANT_NAME:DEF1=1,DEF2" compiles file.comp with
# -DDEF1=1 -DDEF2 into the registry name "VARIANT_NAME".
function(attnlab_add_shaders)
  cmake_parse_arguments(ARG "" "TARGET;NAMESPACE;INCLUDE_DIR" "SOURCES" ${ARGN})
  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/${ARG_TARGET}")
  file(MAKE_DIRECTORY "${out_dir}")
  set(spv_files)
  set(names)
  foreach(entry IN LISTS ARG_SOURCES)
    string(REPLACE ":" ";" parts "${entry}")
    list(LENGTH parts nparts)
    list(GET parts 0 src)
    get_filename_component(stem "${src}" NAME_WE)
    set(name "${stem}")
    set(defs)
    if(nparts GREATER 1)
      list(GET parts 1 name)
    endif()
    if(nparts GREATER 2)
      list(GET parts 2 deflist)
      string(REPLACE "," ";" deflist "${deflist}")
      foreach(d IN LISTS deflist)
        list(APPEND defs "-D${d}")
      endforeach()
    endif()
    set(abs "${CMAKE_CURRENT_SOURCE_DIR}/${src}")
    set(spv "${out_dir}/${name}.spv")
    add_custom_command(
      OUTPUT "${spv}"
      COMMAND ${GLSLC} --target-env=vulkan1.1 -O -I "${ARG_INCLUDE_DIR}" ${defs}
              -MD -MF "${spv}.d" -o "${spv}" "${abs}"
      DEPENDS "${abs}"
      DEPFILE "${spv}.d"
      COMMENT "glslc ${src} -> ${name}.spv"
      VERBATIM)
    list(APPEND spv_files "${spv}")
    list(APPEND names "${name}")
  endforeach()
  set(header "${out_dir}/${ARG_TARGET}.h")
  # The names travel as one space-separated argument (a ;-list would be split into several).
  string(REPLACE ";" " " names_arg "${names}")
  add_custom_command(
    OUTPUT "${header}"
    COMMAND ${CMAKE_COMMAND} "-DOUT=${header}" "-DNAMES=${names_arg}" "-DDIR=${out_dir}" "-DNAMESPACE=${ARG_NAMESPACE}"
            -P "${PROJECT_SOURCE_DIR}/cmake/embed_spirv.cmake"
    DEPENDS ${spv_files} "${PROJECT_SOURCE_DIR}/cmake/embed_spirv.cmake"
    COMMENT "Embedding SPIR-V into ${ARG_TARGET}.h"
    VERBATIM)
  add_custom_target(${ARG_TARGET}_gen DEPENDS "${header}")
  add_library(${ARG_TARGET} INTERFACE)
  add_dependencies(${ARG_TARGET} ${ARG_TARGET}_gen)
  target_include_directories(${ARG_TARGET} INTERFACE "${out_dir}")
endfunction()
