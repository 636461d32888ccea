// Scheduler of the CUDA host simulator: runs a launch's blocks one after
// another on the calling OS thread, each thread of a block as a fiber.
//
// A fiber runs until it reaches __syncthreads, a warp-level op or its end; it
// then switches directly to the next ready fiber (a FIFO queue), or back to the
// launching thread's stack when none is ready. The last thread to arrive at a
// barrier releases the others and carries on without switching. When the queue
// runs dry before every thread has returned, the block can never finish: that is
// reported as barrier divergence.
//
// All state is per OS thread, so concurrent launches from several threads do
// not interact. Fiber stacks are pooled per OS thread and reused across blocks
// and launches.
#include "sim_runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <vector>

#if !defined(__x86_64__) || defined(SIM_USE_UCONTEXT)
#include <ucontext.h>
#endif

__thread uint3 threadIdx;
__thread uint3 blockIdx;
__thread dim3 blockDim;
__thread dim3 gridDim;

namespace sim {
namespace {

// CUDA limits (compute capability 9.0).
constexpr unsigned kMaxBlockThreads = 1024;
constexpr unsigned kMaxBlockDim[3] = {1024, 1024, 64};
constexpr unsigned kMaxGridDim[3] = {0x7fffffffu, 65535, 65535};
constexpr unsigned kMaxSharedBytes = 227 * 1024;  // per block, with the opt-in attribute

constexpr size_t kStackBytes = 64 * 1024;  // per fiber, between guard pages

// ---------------------------------------------------------------- contexts

#if defined(__x86_64__) && !defined(SIM_USE_UCONTEXT)
// A hand-written switch: swapcontext also saves the signal mask with a system
// call on every switch, which made it ~50x slower.
struct Context {
  void* sp;  // saved stack pointer; the callee-saved state sits on that stack
};

extern "C" void sim_switch_stack(void** save_sp, void* load_sp);
// Pushes the System V callee-saved registers, MXCSR and the x87 control word,
// stores rsp to *save_sp, loads load_sp and pops the same set from there.
asm(R"(
  .pushsection .text
  .p2align 4
  .type sim_switch_stack, @function
sim_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size sim_switch_stack, .-sim_switch_stack
  .popsection
)");

// Lays out a frame that sim_switch_stack "returns" from into fn.
void context_init(Context& c, char* stack, size_t size, void (*fn)()) {
  void** sp = reinterpret_cast<void**>(reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t{15});
  *--sp = nullptr;                      // fn's return address: fn never returns
  *--sp = reinterpret_cast<void*>(fn);  // popped by ret; leaves rsp = 8 mod 16 as after a call
  for (int i = 0; i < 6; ++i) *--sp = nullptr;  // rbp rbx r12 r13 r14 r15
  --sp;
  const uint32_t mxcsr = 0x1f80;  // defaults: all exceptions masked, round to nearest
  const uint16_t fpucw = 0x037f;
  memcpy(sp, &mxcsr, 4);
  memcpy(reinterpret_cast<char*>(sp) + 4, &fpucw, 2);
  c.sp = sp;
}
void context_switch(Context& from, Context& to) { sim_switch_stack(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
void context_init(Context& c, char* stack, size_t size, void (*fn)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, fn, 0);
}
void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// ---------------------------------------------------------------- state

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

size_t round_to_pages(size_t bytes) { return (bytes + page_size() - 1) / page_size() * page_size(); }

// Maps round_to_pages(bytes) of memory between two inaccessible pages, so that
// running off either end (a fiber's stack overflowing, a kernel indexing past
// its dynamic shared memory) faults instead of touching a neighbour. Returns
// the first accessible byte.
char* map_guarded(size_t bytes) {
  const size_t usable = round_to_pages(bytes);
  void* p = mmap(nullptr, usable + 2 * page_size(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  char* start = static_cast<char*>(p) + page_size();
  if (mprotect(start, usable, PROT_READ | PROT_WRITE) != 0) {
    munmap(p, usable + 2 * page_size());
    return nullptr;
  }
  return start;
}
void unmap_guarded(char* start, size_t bytes) {
  munmap(start - page_size(), round_to_pages(bytes) + 2 * page_size());
}

enum class State : uint8_t { Ready, Running, AtSyncthreads, AtWarpOp, Exited };

struct WarpOp {
  WarpOpKind kind;
  unsigned mask;  // participating lanes, restricted to lanes that exist
  int param;      // source lane, delta or lane mask
  int width;
  uint64_t value;
};

struct Fiber {
  Context ctx;
  char* stack;  // lowest usable byte; kStackBytes long
  uint3 tid;
  unsigned warp, lane;
  State state;
  WarpOp op;        // valid while state == AtWarpOp
  uint64_t result;  // what this lane's warp op returns
};

const char* warp_op_name(WarpOpKind kind) {
  switch (kind) {
    case kShflIdx: return "__shfl_sync";
    case kShflUp: return "__shfl_up_sync";
    case kShflDown: return "__shfl_down_sync";
    case kShflXor: return "__shfl_xor_sync";
    case kBallot: return "__ballot_sync";
    case kAny: return "__any_sync";
    case kAll: return "__all_sync";
    case kSyncWarp: return "__syncwarp";
  }
  return "?";
}

void fiber_main();

// Per OS thread: the fibers of the block being run and the launch in progress.
class Runner {
 public:
  ~Runner() {
    for (Fiber& f : fibers_) unmap_guarded(f.stack, kStackBytes);
    if (shared_ != nullptr) unmap_guarded(shared_, kMaxSharedBytes);
  }

  int launch(void (*entry)(void**), void** args, dim3 grid, dim3 block, unsigned shared_bytes);

  // Called on the fibers, through the intrinsics.
  void syncthreads();
  uint64_t warp_op(WarpOpKind kind, unsigned mask, uint64_t value, int param, int width);
  unsigned char* dynamic_shared() { return shared_block_; }
  void fiber_exit();
  void (*entry_)(void**) = nullptr;
  void** args_ = nullptr;

  char error_[512] = "";

 private:
  bool prepare(dim3 block, unsigned shared_bytes);
  bool run_block();
  void describe_deadlock();
  void push(Fiber& f) {
    f.state = State::Ready;
    queue_[(head_ + queued_++) % nthreads_] = &f;
  }
  // Hands the OS thread to fiber `to`, saving the caller's context in `from`.
  void enter(Context& from, Fiber& to) {
    current_ = &to;
    threadIdx = to.tid;
    to.state = State::Running;
    context_switch(from, to.ctx);
  }
  // Leaves fiber `self` (already marked as waiting or exited) for the next
  // ready fiber, or for the launching stack if none is ready. Returns when
  // some other fiber releases `self`.
  void yield(Fiber& self) {
    if (queued_ == 0)
      context_switch(self.ctx, launcher_);
    else
      enter(self.ctx, pop());
  }
  Fiber& pop() {
    Fiber& f = *queue_[head_];
    head_ = (head_ + 1) % nthreads_;
    --queued_;
    return f;
  }
  [[noreturn]] void fail(Fiber& self, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  unsigned lanes_in_warp(unsigned warp) const {
    const unsigned n = nthreads_ - warp * 32;
    return n >= 32 ? 0xffffffffu : (1u << n) - 1u;
  }

  std::vector<Fiber> fibers_;   // grows to the largest block seen; stacks are kept
  std::vector<Fiber*> queue_;   // ring buffer of ready fibers
  std::vector<unsigned> warp_waiting_;  // lanes of each warp waiting at a warp op
  unsigned head_ = 0, queued_ = 0;
  unsigned nthreads_ = 0, at_syncthreads_ = 0, exited_ = 0;
  Context launcher_;            // the launching OS thread's own stack
  Fiber* current_ = nullptr;
  bool failed_ = false;
  char* shared_ = nullptr;      // map_guarded(kMaxSharedBytes): dynamic shared memory
  unsigned char* shared_block_ = nullptr;  // this launch's window, ending at the upper guard page
  unsigned shared_bytes_ = 0;
};

// The runner of the launch in progress on this OS thread (null outside one).
__thread Runner* t_active = nullptr;

Runner& runner() {
  static thread_local Runner r;
  return r;
}

void fiber_main() {
  Runner& r = *t_active;
  r.entry_(r.args_);
  r.fiber_exit();
}

void Runner::fail(Fiber& self, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_, sizeof error_, fmt, ap);
  va_end(ap);
  failed_ = true;
  // The block is abandoned: no fiber of it is ever resumed.
  context_switch(self.ctx, launcher_);
  __builtin_unreachable();
}

void Runner::fiber_exit() {
  Fiber& self = *current_;
  self.state = State::Exited;
  ++exited_;
  yield(self);
  __builtin_unreachable();  // an exited fiber is never resumed
}

void Runner::syncthreads() {
  Fiber& self = *current_;
  if (++at_syncthreads_ < nthreads_) {
    self.state = State::AtSyncthreads;
    yield(self);
    return;
  }
  // Last to arrive (so no thread has exited): release the others and go on.
  at_syncthreads_ = 0;
  for (unsigned i = 0; i < nthreads_; ++i)
    if (fibers_[i].state == State::AtSyncthreads) push(fibers_[i]);
}

uint64_t Runner::warp_op(WarpOpKind kind, unsigned mask, uint64_t value, int param, int width) {
  Fiber& self = *current_;
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    fail(self, "%s with width %d in block (%u,%u,%u) thread (%u,%u,%u): width must be a power of 2 in [1,32]",
         warp_op_name(kind), width, blockIdx.x, blockIdx.y, blockIdx.z, self.tid.x, self.tid.y, self.tid.z);
  // Lanes beyond the block's last thread do not exist: drop them from the
  // mask. A lane always takes part in its own op.
  mask = (mask | 1u << self.lane) & lanes_in_warp(self.warp);
  self.op = WarpOp{kind, mask, param, width, value};

  // Complete only when every lane of the mask waits here with the same mask.
  unsigned& waiting = warp_waiting_[self.warp];
  Fiber* lanes = &fibers_[self.warp * 32];
  bool complete = waiting + 1 >= static_cast<unsigned>(__builtin_popcount(mask));
  for (unsigned m = mask & ~(1u << self.lane); complete && m != 0; m &= m - 1) {
    const Fiber& f = lanes[__builtin_ctz(m)];
    complete = f.state == State::AtWarpOp && f.op.mask == mask;
  }
  if (!complete) {
    self.state = State::AtWarpOp;
    ++waiting;
    yield(self);
    return self.result;
  }

  unsigned ballot = 0;
  for (unsigned m = mask; m != 0; m &= m - 1) {
    const unsigned l = __builtin_ctz(m);
    const WarpOp& op = lanes[l].op;
    if (op.kind != kind)
      fail(self, "warp op mismatch in block (%u,%u,%u) warp %u: lane %u calls %s while lane %u calls %s",
           blockIdx.x, blockIdx.y, blockIdx.z, self.warp, self.lane, warp_op_name(kind), l,
           warp_op_name(op.kind));
    if (op.value != 0) ballot |= 1u << l;
  }
  // Each lane's result is computed now, before any lane moves on and deposits
  // its next value. Sources outside the mask (absent or not taking part) and
  // sources past the lane's width segment yield the lane's own value.
  for (unsigned m = mask; m != 0; m &= m - 1) {
    const unsigned l = __builtin_ctz(m);
    Fiber& f = lanes[l];
    const WarpOp& op = f.op;
    const int w = op.width, seg = static_cast<int>(l) & ~(w - 1), pos = static_cast<int>(l) & (w - 1);
    int src = static_cast<int>(l);
    switch (op.kind) {
      case kShflIdx: src = seg + (op.param & (w - 1)); break;
      case kShflUp: src = op.param >= 0 && pos >= op.param ? src - op.param : src; break;
      case kShflDown: src = op.param >= 0 && pos + op.param < w ? src + op.param : src; break;
      case kShflXor: {
        const int x = static_cast<int>(l) ^ op.param;
        src = x >= 0 && x < seg + w ? x : src;
        break;
      }
      case kBallot: f.result = ballot; break;
      case kAny: f.result = ballot != 0; break;
      case kAll: f.result = ballot == mask; break;
      case kSyncWarp: f.result = 0; break;
    }
    if (op.kind <= kShflXor) {
      const bool in_mask = src >= 0 && src < 32 && (mask >> src & 1u);
      f.result = in_mask ? lanes[src].op.value : op.value;
    }
    if (l != self.lane) push(f);
  }
  waiting -= __builtin_popcount(mask) - 1;
  return self.result;
}

bool Runner::prepare(dim3 block, unsigned shared_bytes) {
  nthreads_ = block.x * block.y * block.z;
  while (fibers_.size() < nthreads_) {
    char* stack = map_guarded(kStackBytes);
    if (stack == nullptr) {
      snprintf(error_, sizeof error_, "cannot map a %zu-byte fiber stack", kStackBytes);
      return false;
    }
    fibers_.push_back(Fiber{});
    fibers_.back().stack = stack;
  }
  if (queue_.size() < nthreads_) queue_.resize(nthreads_);
  warp_waiting_.assign((nthreads_ + 31) / 32, 0);
  for (unsigned i = 0; i < nthreads_; ++i) {
    Fiber& f = fibers_[i];
    f.tid = uint3{i % block.x, i / block.x % block.y, i / (block.x * block.y)};
    f.warp = i / 32;
    f.lane = i % 32;
  }
  if (shared_ == nullptr && shared_bytes > 0) {
    shared_ = map_guarded(kMaxSharedBytes);
    if (shared_ == nullptr) {
      snprintf(error_, sizeof error_, "cannot map %u bytes of shared memory", kMaxSharedBytes);
      return false;
    }
  }
  // The window ends at the upper guard page, so a kernel that reads or writes
  // past its dynamic shared memory (rounded up to 16 bytes) faults.
  shared_bytes_ = shared_bytes;
  shared_block_ = shared_ == nullptr ? nullptr
                                     : reinterpret_cast<unsigned char*>(shared_) +
                                           round_to_pages(kMaxSharedBytes) - ((shared_bytes + 15u) & ~15u);
  return true;
}

bool Runner::run_block() {
  // Shared memory starts as garbage on a GPU: make reads before writes show
  // up as NaN (float) or -1 (int) rather than as stale values.
  if (shared_bytes_ > 0) memset(shared_block_, 0xff, shared_bytes_);
  head_ = queued_ = 0;
  at_syncthreads_ = exited_ = 0;
  for (unsigned& w : warp_waiting_) w = 0;
  for (unsigned i = 0; i < nthreads_; ++i) {
    context_init(fibers_[i].ctx, fibers_[i].stack, kStackBytes, fiber_main);
    push(fibers_[i]);
  }
  enter(launcher_, pop());
  // Back here when no fiber is ready any more.
  if (failed_) return false;
  if (exited_ == nthreads_) return true;
  describe_deadlock();
  return false;
}

void Runner::describe_deadlock() {
  unsigned at_warp_op = nthreads_ - exited_ - at_syncthreads_;
  int n = snprintf(error_, sizeof error_, "barrier divergence in block (%u,%u,%u): ", blockIdx.x,
                   blockIdx.y, blockIdx.z);
  if (at_warp_op == 0) {
    snprintf(error_ + n, sizeof error_ - n, "%u threads exited while %u wait at __syncthreads",
             exited_, at_syncthreads_);
    return;
  }
  // Name one stuck warp op and the lane of its mask that keeps it waiting.
  const Fiber* stuck = nullptr;
  for (unsigned i = 0; i < nthreads_ && stuck == nullptr; ++i)
    if (fibers_[i].state == State::AtWarpOp) stuck = &fibers_[i];
  const Fiber* lanes = &fibers_[stuck->warp * 32];
  unsigned culprit = stuck->lane;
  for (unsigned m = stuck->op.mask; m != 0; m &= m - 1) {
    const Fiber& f = lanes[__builtin_ctz(m)];
    if (f.state != State::AtWarpOp || f.op.mask != stuck->op.mask) {
      culprit = __builtin_ctz(m);
      break;
    }
  }
  const Fiber& c = lanes[culprit];
  char why[96];
  switch (c.state) {
    case State::Exited: snprintf(why, sizeof why, "has exited"); break;
    case State::AtSyncthreads: snprintf(why, sizeof why, "waits at __syncthreads"); break;
    default: snprintf(why, sizeof why, "waits in %s with mask 0x%08x", warp_op_name(c.op.kind), c.op.mask);
  }
  n += snprintf(error_ + n, sizeof error_ - n, "warp %u lane %u waits in %s with mask 0x%08x but lane %u %s",
                stuck->warp, stuck->lane, warp_op_name(stuck->op.kind), stuck->op.mask, culprit, why);
  snprintf(error_ + n, sizeof error_ - n, " (%u threads exited, %u wait at __syncthreads, %u at warp ops)",
           exited_, at_syncthreads_, at_warp_op);
}

int Runner::launch(void (*entry)(void**), void** args, dim3 grid, dim3 block, unsigned shared_bytes) {
  const unsigned g[3] = {grid.x, grid.y, grid.z}, b[3] = {block.x, block.y, block.z};
  for (int d = 0; d < 3; ++d) {
    if (g[d] == 0 || g[d] > kMaxGridDim[d]) {
      snprintf(error_, sizeof error_, "invalid launch: gridDim (%u,%u,%u): each must be in [1, (%u,%u,%u)]",
               grid.x, grid.y, grid.z, kMaxGridDim[0], kMaxGridDim[1], kMaxGridDim[2]);
      return SIM_INVALID_LAUNCH;
    }
    if (b[d] == 0 || b[d] > kMaxBlockDim[d]) {
      snprintf(error_, sizeof error_, "invalid launch: blockDim (%u,%u,%u): each must be in [1, (%u,%u,%u)]",
               block.x, block.y, block.z, kMaxBlockDim[0], kMaxBlockDim[1], kMaxBlockDim[2]);
      return SIM_INVALID_LAUNCH;
    }
  }
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (threads > kMaxBlockThreads) {
    snprintf(error_, sizeof error_, "invalid launch: blockDim (%u,%u,%u) has %llu threads, more than %u",
             block.x, block.y, block.z, threads, kMaxBlockThreads);
    return SIM_INVALID_LAUNCH;
  }
  if (shared_bytes > kMaxSharedBytes) {
    snprintf(error_, sizeof error_,
             "invalid launch: %u bytes of dynamic shared memory, more than %u (227 KiB)", shared_bytes,
             kMaxSharedBytes);
    return SIM_INVALID_LAUNCH;
  }
  if (entry == nullptr) {
    snprintf(error_, sizeof error_, "invalid launch: null kernel entry");
    return SIM_INVALID_LAUNCH;
  }
  if (!prepare(block, shared_bytes)) return SIM_INVALID_LAUNCH;

  entry_ = entry;
  args_ = args;
  failed_ = false;
  gridDim = grid;
  blockDim = block;
  t_active = this;
  bool ok = true;
  for (unsigned z = 0; ok && z < grid.z; ++z)
    for (unsigned y = 0; ok && y < grid.y; ++y)
      for (unsigned x = 0; ok && x < grid.x; ++x) {
        blockIdx = uint3{x, y, z};
        ok = run_block();
      }
  t_active = nullptr;
  return ok ? SIM_OK : SIM_KERNEL_ERROR;
}

}  // namespace

void syncthreads() { t_active->syncthreads(); }
uint64_t warp_op(WarpOpKind kind, unsigned mask, uint64_t value, int param, int width) {
  return t_active->warp_op(kind, mask, value, param, width);
}
unsigned char* dynamic_shared() { return t_active->dynamic_shared(); }

}  // namespace sim

extern "C" int sim_launch(void (*entry)(void** args), void** args, unsigned gx, unsigned gy,
                          unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared_bytes,
                          char* err, unsigned err_len) {
  int status;
  const char* message;
  if (sim::t_active != nullptr) {
    status = SIM_INVALID_LAUNCH;
    message = "invalid launch: sim_launch called from inside a kernel";
  } else {
    sim::Runner& r = sim::runner();
    r.error_[0] = '\0';
    status = r.launch(entry, args, dim3(gx, gy, gz), dim3(bx, by, bz), shared_bytes);
    message = r.error_;
  }
  if (status != SIM_OK && err != nullptr && err_len > 0) snprintf(err, err_len, "%s", message);
  return status;
}
