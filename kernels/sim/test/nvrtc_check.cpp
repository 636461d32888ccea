// Compiles kernel files with NVRTC to an sm_90 cubin, as Device::Cuda does,
// to check that they (and common.cuh) are valid CUDA. Needs libnvrtc only, no
// GPU or driver. The CUDA headers common.cuh includes come from NVRTC's bundled
// copy (NVRTC >= 13.3), or from $CUDA_INCLUDE_DIR when that is set.
//
//   nvrtc_check /path/to/libnvrtc.so.13 KERNELS_DIR file.cu...
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using nvrtcProgram = void*;
struct Nvrtc {
  int (*version)(int*, int*);
  int (*create)(nvrtcProgram*, const char*, const char*, int, const char* const*, const char* const*);
  int (*compile)(nvrtcProgram, int, const char* const*);
  int (*log_size)(nvrtcProgram, size_t*);
  int (*log)(nvrtcProgram, char*);
  int (*cubin_size)(nvrtcProgram, size_t*);
  int (*destroy)(nvrtcProgram*);
  int (*install_headers)(const char*, unsigned, const char**);  // null before NVRTC 13.3
};

template <class F>
bool load(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (f == nullptr) fprintf(stderr, "missing symbol %s\n", name);
  return f != nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s LIBNVRTC KERNELS_DIR file.cu...\n", argv[0]);
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW);
  if (lib == nullptr) {
    fprintf(stderr, "%s\n", dlerror());
    return 2;
  }
  Nvrtc n{};
  if (!load(lib, "nvrtcVersion", n.version) || !load(lib, "nvrtcCreateProgram", n.create) ||
      !load(lib, "nvrtcCompileProgram", n.compile) || !load(lib, "nvrtcGetProgramLogSize", n.log_size) ||
      !load(lib, "nvrtcGetProgramLog", n.log) || !load(lib, "nvrtcGetCUBINSize", n.cubin_size) ||
      !load(lib, "nvrtcDestroyProgram", n.destroy))
    return 2;
  n.install_headers = reinterpret_cast<decltype(n.install_headers)>(dlsym(lib, "nvrtcInstallBundledHeaders"));
  int major = 0, minor = 0;
  n.version(&major, &minor);

  std::string headers;
  if (const char* dir = getenv("CUDA_INCLUDE_DIR")) {
    headers = dir;
  } else if (n.install_headers != nullptr) {
    const char* tmp = getenv("TMPDIR");
    headers = std::string(tmp ? tmp : "/tmp") + "/nvrtc-headers-" + std::to_string(major) + "." +
              std::to_string(minor);
    const char* log = nullptr;
    if (n.install_headers(headers.c_str(), 0, &log) != 0) {
      fprintf(stderr, "nvrtcInstallBundledHeaders(%s) failed: %s\n", headers.c_str(), log ? log : "");
      return 2;
    }
  } else {
    fprintf(stderr, "NVRTC %d.%d bundles no headers: set CUDA_INCLUDE_DIR to a CUDA include/ directory\n",
            major, minor);
    return 2;
  }
  const std::string include_kernels = std::string("-I") + argv[2], include_cuda = "-I" + headers;
  const char* options[] = {"--gpu-architecture=sm_90", "-std=c++17", include_kernels.c_str(),
                           include_cuda.c_str()};

  int failures = 0;
  for (int i = 3; i < argc; ++i) {
    std::ifstream file(argv[i]);
    std::stringstream source;
    source << file.rdbuf();
    if (!file) {
      fprintf(stderr, "cannot read %s\n", argv[i]);
      ++failures;
      continue;
    }
    nvrtcProgram prog = nullptr;
    n.create(&prog, source.str().c_str(), argv[i], 0, nullptr, nullptr);
    const int status = n.compile(prog, 4, options);
    size_t size = 0;
    n.log_size(prog, &size);
    std::string log(size, '\0');
    n.log(prog, &log[0]);
    size_t cubin = 0;
    if (status == 0) n.cubin_size(prog, &cubin);
    printf("%s %s (NVRTC %d.%d, sm_90 cubin %zu bytes)\n", status == 0 ? "ok  " : "FAIL", argv[i], major,
           minor, cubin);
    if (log.find_first_not_of(std::string("\0\n ", 3)) != std::string::npos) printf("%s\n", log.c_str());
    failures += status != 0;
    n.destroy(&prog);
  }
  return failures == 0 ? 0 : 1;
}
