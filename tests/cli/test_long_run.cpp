// A long run (issue 21): `attnlab run` says how long it will take before it starts, shows how far it is,
// and Ctrl-C stops it cleanly within a block of its work, writing nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Waits up to `limit` for the child; its exit code, or -1 when it is still running (then it is killed).
int waitFor(pid_t pid, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  int status = 0;
  while (Clock::now() < end) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

TEST(LongRun, SaysItsTimeShowsProgressAndStopsOnCtrlC) {
  const fs::path dir = fs::temp_directory_path() / ("attnlab-long-run-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "xdg");
  fs::permissions(dir / "xdg", fs::perms::owner_all, fs::perm_options::replace);
  const std::string err = (dir / "stderr").string(), out = (dir / "o.npy").string();
  // N = 32768: exact attention and its float64 reference are minutes of work on a laptop's CPU.
  const std::string command = "exec env -u DISPLAY -u WAYLAND_DISPLAY QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR=" +
                              (dir / "xdg").string() + " " + ATTNLAB_BINARY +
                              " run --mechanism performer --n 32768 --backend cpu --out " + out + " 2>" + err +
                              " >/dev/null </dev/null";
  std::vector<char*> argv{const_cast<char*>("/bin/sh"), const_cast<char*>("-c"), const_cast<char*>(command.c_str()),
                          nullptr};
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv.data(), environ), 0);

  // Before the work starts, the run says how long it will be.
  const auto start = Clock::now();
  std::string said;
  while (Clock::now() - start < std::chrono::seconds(20)) {
    said = slurp(err);
    if (said.find("this run will take about") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(said.find("this run will take about"), std::string::npos) << said;
  EXPECT_NE(said.find("Ctrl-C stops it"), std::string::npos) << said;
  // Then how far it is (not a terminal: a line per stage and quarter).
  while (Clock::now() - start < std::chrono::seconds(30) && slurp(err).find("attnlab: exact attention") == std::string::npos)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(slurp(err).find("attnlab: exact attention"), std::string::npos) << slurp(err);

  // Ctrl-C: it stops within a block of work (well under the minutes it has left), says so, and writes nothing.
  const auto interrupted = Clock::now();
  ::kill(pid, SIGINT);
  const int code = waitFor(pid, std::chrono::seconds(15));
  const double took = std::chrono::duration<double>(Clock::now() - interrupted).count();
  EXPECT_EQ(code, 130) << slurp(err);
  EXPECT_LT(took, 10.0);
  EXPECT_NE(slurp(err).find("interrupted (Ctrl-C)"), std::string::npos) << slurp(err);
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

}  // namespace
