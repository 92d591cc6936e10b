# attnlab_images: the photographs of assets/images/ compiled in (cmake/embed_files.cmake), so the `image`
# input finds them without a path at run time. Qt-free; linked by attnlab_core and the fuzz targets.
function(attnlab_embed_images target)
  file(GLOB pngs CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/assets/images/*.png")
  list(SORT pngs)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/generated/${target}.cpp")
  string(REPLACE ";" "|" files_arg "${pngs}")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND ${CMAKE_COMMAND} "-DOUT=${out}" "-DFILES=${files_arg}" -P "${PROJECT_SOURCE_DIR}/cmake/embed_files.cmake"
    DEPENDS ${pngs} "${PROJECT_SOURCE_DIR}/cmake/embed_files.cmake"
    COMMENT "Embedding assets/images into ${target}.cpp"
    VERBATIM)
  add_library(${target} STATIC "${out}")
endfunction()
