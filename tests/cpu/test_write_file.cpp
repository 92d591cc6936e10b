// attn::writeFileAtomically: what replaces a file, what is written through, what is refused, and that a
// failure leaves the previous file whole (issue 21).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "attention/npy.h"

namespace attn {
namespace {

namespace fs = std::filesystem;

class WriteFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("attnlab-write-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
                                        "-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string read(const fs::path& p) const {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  fs::path dir_;
};

TEST_F(WriteFile, ALinkKeepsPointingAtItsTargetWhichGetsTheBytes) {
  fs::create_directories(dir_ / "sub");
  std::ofstream(dir_ / "sub" / "target.txt") << "old";
  fs::permissions(dir_ / "sub" / "target.txt", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read,
                  fs::perm_options::replace);
  fs::create_symlink("sub/target.txt", dir_ / "relative");
  fs::create_symlink("sub/missing.txt", dir_ / "dangling");
  writeFileAtomically((dir_ / "relative").string(), std::string("new"));
  writeFileAtomically((dir_ / "dangling").string(), std::string("created"));
  EXPECT_TRUE(fs::is_symlink(dir_ / "relative"));
  EXPECT_TRUE(fs::is_symlink(dir_ / "dangling"));
  EXPECT_EQ(read(dir_ / "sub" / "target.txt"), "new");
  EXPECT_EQ(read(dir_ / "sub" / "missing.txt"), "created");
  EXPECT_EQ(fs::status(dir_ / "sub" / "target.txt").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  // Nothing but the entries above: no temporary file left beside the target.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "sub"), fs::directory_iterator()), 2);
  // A loop of links is refused, naming the path.
  fs::create_symlink("loop-b", dir_ / "loop-a");
  fs::create_symlink("loop-a", dir_ / "loop-b");
  try {
    writeFileAtomically((dir_ / "loop-a").string(), std::string("x"));
    ADD_FAILURE() << "a loop of links was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("too many levels of symbolic links"), std::string::npos) << e.what();
  }
}

TEST_F(WriteFile, APipeIsWrittenThroughAndStaysAPipe) {
  const fs::path fifo = dir_ / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Our end opened first (non-blocking), so the writer's open does not wait and a write that replaced
  // the pipe instead shows as nothing read, not as a hang.
  const int fd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(fd, 0);
  writeFileAtomically(fifo.string(), std::string("through the pipe"));
  char buf[64] = {};
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  EXPECT_EQ(std::string(buf, std::size_t(std::max<ssize_t>(n, 0))), "through the pipe");
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
}

TEST_F(WriteFile, AFolderIsRefusedAndAFailedWriteLeavesTheOldFile) {
  try {
    writeFileAtomically(dir_.string(), std::string("x"));
    ADD_FAILURE() << "a folder was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("is a folder"), std::string::npos) << e.what();
  }
  // A full disk, as a file size limit with SIGXFSZ ignored, in a child process.
  const fs::path file = dir_ / "kept.txt";
  std::ofstream(file) << "the previous contents";
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{1024, 1024};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      writeFileAtomically(file.string(), std::string(4096, 'x'));
    } catch (const UserError& e) {
      ::_exit(std::string(e.what()).find("File too large") != std::string::npos ? 0 : 2);
    }
    ::_exit(1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_EQ(read(file), "the previous contents");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1) << "a temporary file was left";
}

}  // namespace
}  // namespace attn
