// A driver for a fuzz target without libFuzzer (fuzz_kcont, fuzz_inet): replays the files and
// folders given (the seed corpus, regression inputs), then feeds random inputs for --seconds.
// Exit 0 when every input passed the target's checks (fuzz_kcont: agreed with the model); a
// failure aborts (the harness prints it). KCONT_FUZZ_NAME and KCONT_FUZZ_VERDICT name the
// target and what passing means in its messages.
#include <dirent.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#ifndef KCONT_FUZZ_NAME
#define KCONT_FUZZ_NAME "fuzz_kcont"
#endif
#ifndef KCONT_FUZZ_VERDICT
#define KCONT_FUZZ_VERDICT "agreed with the model"
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

std::size_t replay(const std::string& path) {
  if (DIR* d = ::opendir(path.c_str())) {
    std::size_t n = 0;
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') n += replay(path + "/" + e->d_name);
    ::closedir(d);
    return n;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, KCONT_FUZZ_NAME ": cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  unsigned seed = 1;
  std::size_t replayed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else if (a == "--help") {
      std::printf("usage: " KCONT_FUZZ_NAME " [--seconds S] [--seed N] [CORPUS_FILE_OR_DIR...]\n");
      return 0;
    } else {
      replayed += replay(a);
    }
  }
  std::mt19937 rng(seed);
  std::uint64_t random_inputs = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::uint8_t> buf;
  while (std::chrono::steady_clock::now() < until) {
    buf.resize(1 + rng() % 200);
    for (auto& b : buf) b = static_cast<std::uint8_t>(rng());
    LLVMFuzzerTestOneInput(buf.data(), buf.size());
    ++random_inputs;
  }
  std::printf(KCONT_FUZZ_NAME
              ": %zu corpus inputs and %llu random inputs (seed %u) " KCONT_FUZZ_VERDICT "\n",
              replayed, static_cast<unsigned long long>(random_inputs), seed);
  return 0;
}
