# CPack: `cpack -G DEB` in a configured and built build folder makes attnlab_<version>_<arch>.deb from
# the install() rules (docs/install.md). Its dependencies are the shared libraries dpkg-shlibdeps finds
# in the binaries (Qt 6, Vulkan loader, zlib, ...) plus what the program opens at run time by path or
# through a loader, which no linker sees:
#   fonts-dejavu-core   the viewport's overlay reads DejaVu Sans by path (render/view/heatmap_overlay.cpp),
#                       and figures drawn by `attnlab render` need some font;
#   mesa-vulkan-drivers the viewport draws with Vulkan, which needs an installable client driver (ICD);
#                       Mesa's covers AMD, Intel and any machine without a GPU (lavapipe); the NVIDIA
#                       driver's package provides vulkan-icd instead.
# Qt's xcb and offscreen platform plugins and the SVG icon engine come with libqt6gui6 and libqt6svg6,
# which shlibdeps finds.
set(ATTNLAB_PACKAGE_MAINTAINER "attnlab developers <dev@attnlab.invalid>"
    CACHE STRING "Maintainer field of the .deb (Name <email>)")

set(CPACK_PACKAGE_NAME attnlab)
set(CPACK_PACKAGE_VENDOR attnlab)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${ATTNLAB_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Efficient attention explorer: what each mechanism does to the attention matrix")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
  "attnlab runs the mechanisms of the efficient-attention literature (Sparse Transformer, Longformer, "
  "BigBird, Reformer, Performer, Linformer, Nystromformer and more) on the CPU or on a Vulkan GPU, and "
  "draws the N x N attention matrix each one implies beside exact softmax attention, with its error and "
  "its cost: a Qt desktop application for teaching and exploring, and a command line (attnlab render, "
  "run, sweep) for figures and timing reports. Needs an x86-64 CPU with AVX2 and FMA.")
set(CPACK_STRIP_FILES ON)  # the ci preset's line tables are for debugging here, not for users

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # attnlab_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${ATTNLAB_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fonts-dejavu-core, mesa-vulkan-drivers | vulkan-icd")

include(CPack)
