// main() of the GPU test executables: prepares the environment before any Vulkan instance exists.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gpu_test_util.h"

int main(int argc, char** argv) {
  // Mesa and the loader want a private runtime directory; ctest points XDG_RUNTIME_DIR at one.
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  std::string dir = xdg && *xdg ? xdg : "/tmp/attnlab-xdg";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) std::perror(("mkdir " + dir).c_str());
  ::setenv("XDG_RUNTIME_DIR", dir.c_str(), 1);
  // Every GPU test runs validated (ctest sets this too; direct runs get it here).
  ::setenv("ATTNLAB_VALIDATION", "1", 0);
#ifdef ATTNLAB_TEST_NO_ICD
  // The point of this executable: no Vulkan driver. Set before the first instance is created.
  ::setenv("VK_DRIVER_FILES", "/nonexistent.json", 1);
  ::setenv("VK_ICD_FILENAMES", "/nonexistent.json", 1);
#endif
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  attn::test::releaseSharedBackend();  // Vulkan teardown before static destruction
  return rc;
}
