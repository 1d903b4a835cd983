"""Run CUDA C kernels on the CPU: a stand-in for cupy.RawModule, for testing kernels without a GPU.

The kernel source is the very text CuPy would compile with NVRTC. Here it is
compiled as C++20 by g++, after a prelude that defines the CUDA built-ins
(threadIdx, __syncthreads, atomicAdd, expf, ...), and loaded with ctypes:

    mod = cuda_emulator.RawModule(code=source)        # same call as cupy.RawModule
    mod.get_function("saxpy")((3,), (128,), (np.float32(2), x, y, np.int32(n)))

Execution model (faithful enough to expose missing __syncthreads and
shared-memory bugs). Blocks run one after another (blockIdx.x fastest), and
`__shared__` becomes `static`: one array shared by the threads of the block,
exactly as on the GPU. Within a block there are two roads:

* Kernels whose threads meet (a __syncthreads or __shared__ in their body, or
  anywhere outside the kernels, where a __device__ function could hold one) run
  their CUDA threads as fibers (ucontext coroutines, one stack each) on the
  calling host thread. Each fiber runs until it reaches __syncthreads() or
  returns; when all have, the next phase starts. Phases run the threads in
  ascending and descending order by turns, so a missing __syncthreads() (a read
  of what another thread writes in the same phase) gives a wrong result whichever
  thread comes first, and the same one on every run. With
  TINYCONVMIXER_EMULATOR=threads each CUDA thread is a host thread instead, and
  __syncthreads() a real barrier: slower (a barrier across hundreds of host
  threads costs about a millisecond on two cores), but truly concurrent, for
  hunting races that only some interleavings show.
* Kernels whose threads never meet take a cheaper road: a few host threads
  (EMU_WORKERS) share the CUDA threads of every block between them, with no
  barrier. A __syncthreads() reached on that road is reported as an emulator bug.

Host threads come from a pool that keeps them between launches.

What it adds over CuPy: every argument is checked against the C type the
compiler sees (after typedefs): a float64 array for `const float*`, or a Python
int for `int`, raises TypeError instead of silently passing garbage. A
__syncthreads() that some threads skip (e.g. after an early return) raises
RuntimeError. What it lacks: warp-level intrinsics (__shfl_*_sync,
__syncwarp: a compile error), __half, cooperative groups; an out-of-bounds
access is a real host-memory bug (garbage or a segfault, no cuda-memcheck);
blocks never run concurrently, so a kernel that waits on another block hangs.
"""

import contextlib
import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

MAX_THREADS_PER_BLOCK = 1024
MAX_DYNAMIC_SHARED = 48 * 1024       # as on the GPU without an opt-in attribute
# Compiled kernels are loaded from here by name: a folder of this user's alone (0700), never one
# that another user could write a library into.
CACHE_DIR = os.path.join(tempfile.gettempdir(), f"tinyconvmixer-cuda-emu-{os.getuid()}")
CXX_FLAGS = ("-O1", "-std=c++20", "-shared", "-fPIC", "-pthread",
             "-fvisibility=hidden", "-fdiagnostics-color=never")

# C++ prepended to the kernel source: the CUDA built-ins, and the launcher that runs a grid.
PRELUDE = r"""
#include <algorithm>
#include <atomic>
#include <barrier>
#include <bit>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <pthread.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <cmath>
#include <math.h>   /* libstdc++: float overloads (sqrt(float)...) in the global namespace, as in CUDA */
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#define __CUDACC_RTC__ 1
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static    /* one array for the block: blocks run one after another */
#define EMU_EXPORT extern "C" __attribute__((visibility("default")))

struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x = 1, y = 1, z = 1; };
static thread_local uint3 threadIdx, blockIdx;   /* each emulated CUDA thread has its own */
static dim3 gridDim, blockDim;                   /* set once per launch */
static constexpr int warpSize = 32;
alignas(256) static unsigned char emu_dynamic_shared[48 * 1024];   /* extern __shared__ arrays */

/* The block barrier. Every arrival is either a __syncthreads() or a thread leaving the block
   (kernel returned). A barrier phase that mixes the two is a divergent __syncthreads. */
static std::atomic<unsigned> emu_syncs, emu_exits;
static bool emu_divergent;
struct EmuPhaseCheck {
    void operator()() noexcept {   /* runs once per phase, when the last thread arrives */
        if (emu_syncs && emu_exits) emu_divergent = true;
        emu_syncs = 0; emu_exits = 0;
    }
};
static std::barrier<EmuPhaseCheck>* emu_barrier;
static std::atomic<bool> emu_unexpected_sync;    /* a __syncthreads() on the barrier-free road */

/* Fibers: the CUDA threads of one block as coroutines on the launching host thread. */
struct EmuFiber { ucontext_t context; uint3 index; bool done; };
static ucontext_t emu_scheduler;                 /* where a fiber returns to at __syncthreads() */
static EmuFiber* emu_current = nullptr;          /* the fiber running now (null off the fiber road) */
static std::vector<EmuFiber> emu_fibers;
/* Each fiber's stack: 1 MiB (a GPU thread may use 512 KiB of local memory), mapped lazily (pages are
   taken only as used) with an inaccessible guard page below it, so an overflow stops the process at
   once (a segmentation fault) instead of silently overwriting the next thread's stack. */
constexpr std::size_t EMU_FIBER_STACK = 1024 * 1024, EMU_GUARD = 64 * 1024;
static char* emu_fiber_stacks = nullptr;
static std::size_t emu_fiber_mapped = 0;
static std::function<void()> emu_fiber_body;      /* the kernel call of the current launch */
static void emu_fiber_entry(int i) { emu_fiber_body(); emu_fibers[i].done = true; }   /* -> uc_link */

inline void __syncthreads() {
    if (emu_current) { swapcontext(&emu_current->context, &emu_scheduler); return; }
    if (!emu_barrier) { emu_unexpected_sync = true; return; }
    ++emu_syncs; emu_barrier->arrive_and_wait(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { __threadfence(); }

/* Atomics return the old value, as in CUDA. Same<T>: T comes from the pointer alone
   (atomicAdd(float_ptr, 1.0) adds 1.0f, as CUDA's overloads would). */
template <class T> using Same = std::type_identity_t<T>;
template <class T> inline T atomicAdd(T* p, Same<T> v) { return std::atomic_ref<T>(*p).fetch_add(v); }
template <class T> inline T atomicSub(T* p, Same<T> v) { return std::atomic_ref<T>(*p).fetch_sub(v); }
template <class T> inline T atomicExch(T* p, Same<T> v) { return std::atomic_ref<T>(*p).exchange(v); }
template <class T> inline T atomicCAS(T* p, Same<T> expected, Same<T> v) {
    std::atomic_ref<T>(*p).compare_exchange_strong(expected, v); return expected; }
template <class T> inline T atomicMax(T* p, Same<T> v) {
    std::atomic_ref<T> a(*p); T old = a.load();
    while (old < v && !a.compare_exchange_weak(old, v)) {} return old; }
template <class T> inline T atomicMin(T* p, Same<T> v) {
    std::atomic_ref<T> a(*p); T old = a.load();
    while (v < old && !a.compare_exchange_weak(old, v)) {} return old; }

/* Warps are not modelled: using a warp intrinsic is a compile error naming it. */
template <class...> inline constexpr bool emu_false = false;
#define EMU_NO_WARPS(name) template <class... A> inline unsigned name(A...) { \
    static_assert(emu_false<A...>, #name " (warp-level) is not supported by the CPU emulator"); return 0; }
EMU_NO_WARPS(__shfl_sync) EMU_NO_WARPS(__shfl_up_sync) EMU_NO_WARPS(__shfl_down_sync)
EMU_NO_WARPS(__shfl_xor_sync) EMU_NO_WARPS(__syncwarp) EMU_NO_WARPS(__ballot_sync)
EMU_NO_WARPS(__any_sync) EMU_NO_WARPS(__all_sync) EMU_NO_WARPS(__activemask)

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return fminf(fmaxf(x, 0.0f), 1.0f); }
inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
inline double normcdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752); }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline float __int_as_float(int i) { return std::bit_cast<float>(i); }
inline int __float_as_int(float f) { return std::bit_cast<int>(f); }
template <class T> inline T __ldg(const T* p) { return *p; }
/* CUDA's min/max take any two numbers; floats go through fmin/fmax as in CUDA. */
template <class A, class B> inline std::common_type_t<A, B> min(A a, B b) {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point_v<C>) return std::fmin(C(a), C(b));
    else return C(b) < C(a) ? C(b) : C(a); }
template <class A, class B> inline std::common_type_t<A, B> max(A a, B b) {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point_v<C>) return std::fmax(C(a), C(b));
    else return C(a) < C(b) ? C(b) : C(a); }

/* A parameter type as Python checks it: "f4" float, "i8" long long, "*cf4" const float*,
   "**..." a pointer table. */
template <class T> std::string emu_type() {
    if constexpr (std::is_pointer_v<T>) {
        using P = std::remove_pointer_t<T>;
        return std::string(std::is_const_v<P> ? "*c" : "*") + emu_type<std::remove_cv_t<P>>();
    } else if constexpr (std::is_void_v<T>) { return "v";
    } else {
        char kind = std::is_same_v<T, bool> ? 'b' : std::is_floating_point_v<T> ? 'f'
                  : std::is_integral_v<T> ? (std::is_signed_v<T> ? 'i' : 'u') : '?';
        return kind + std::to_string(sizeof(T));
    }
}
template <class... A> const char* emu_signature(void (*)(A...)) {
    static const std::string s = (std::string() + ... + (emu_type<A>() + " "));
    return s.c_str();
}

template <class... A, std::size_t... I>
void emu_call(void (*kernel)(A...), void** params, std::index_sequence<I...>) {
    kernel(*static_cast<A*>(params[I])...);
}

/* Host threads are kept between launches (starting 256 of them costs milliseconds per launch) and
   leave after EMU_IDLE_MS without work, so idle modules hold none. The pool lives on the heap and is
   never destroyed: no destructor can run while a parked thread waits on it at exit. */
struct EmuPool {
    std::mutex mutex;
    std::condition_variable wake, done;
    std::function<void(unsigned)> job;
    unsigned long generation = 0;
    unsigned active = 0, remaining = 0;
    std::vector<char> alive;             /* slot i: a host thread is parked, ready to run job(i) */
};
static EmuPool* emu_pool = new EmuPool;
static const int emu_atfork = pthread_atfork(nullptr, nullptr, [] { emu_pool = new EmuPool; });  /* the child
                                          has none of the parent's threads: start an empty pool */
constexpr int EMU_IDLE_MS = 500;

static void emu_pool_worker(EmuPool* pool, unsigned id, unsigned long seen) {
    std::unique_lock<std::mutex> lock(pool->mutex);
    for (;;) {
        if (!pool->wake.wait_for(lock, std::chrono::milliseconds(EMU_IDLE_MS),
                                 [&] { return pool->generation != seen; })) {
            pool->alive[id] = 0;         /* idle: leave (under the lock, so no launch counts on us) */
            return;
        }
        seen = pool->generation;
        if (id >= pool->active) continue;
        lock.unlock();
        pool->job(id);
        lock.lock();
        if (--pool->remaining == 0) pool->done.notify_one();
    }
}

/* Run job(0), ..., job(n - 1), each on its own host thread, and wait for all of them. */
static void emu_pool_run(unsigned n, std::function<void(unsigned)> job) {
    EmuPool* pool = emu_pool;
    std::unique_lock<std::mutex> lock(pool->mutex);
    if (pool->alive.size() < n) pool->alive.resize(n, 0);
    for (unsigned i = 0; i < n; ++i)
        if (!pool->alive[i]) {
            pool->alive[i] = 1;
            std::thread(emu_pool_worker, pool, i, pool->generation).detach();
        }
    pool->job = std::move(job);
    pool->active = pool->remaining = n;
    ++pool->generation;
    pool->wake.notify_all();
    pool->done.wait(lock, [&] { return pool->remaining == 0; });
}

static std::mutex emu_launch_mutex;   /* the globals above belong to one launch at a time */
template <class... A>
int emu_launch(void (*kernel)(A...), void** params,
               unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz) {
    std::lock_guard<std::mutex> lock(emu_launch_mutex);
    gridDim = {gx, gy, gz}; blockDim = {bx, by, bz};
    const unsigned n = bx * by * bz;
    std::barrier<EmuPhaseCheck> barrier(n);
    emu_barrier = &barrier; emu_divergent = false;
    emu_pool_run(n, [&](unsigned t) {
            threadIdx = {t % bx, t / bx % by, t / (bx * by)};
            for (unsigned z = 0; z < gz; ++z)
            for (unsigned y = 0; y < gy; ++y)
            for (unsigned x = 0; x < gx; ++x) {
                blockIdx = {x, y, z};
                emu_call(kernel, params, std::index_sequence_for<A...>{});
                ++emu_exits; barrier.arrive_and_wait();   /* even after an early return */
            }
            ++emu_exits; barrier.arrive_and_drop();   /* lets the others finish if the counts diverged */
        });
    emu_barrier = nullptr;
    return emu_divergent;
}

/* The fiber road (see the module docstring). Returns 1 if a phase mixed __syncthreads() and returns. */
template <class... A>
int emu_launch_fibers(void (*kernel)(A...), void** params,
                      unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz) {
    std::lock_guard<std::mutex> lock(emu_launch_mutex);
    gridDim = {gx, gy, gz}; blockDim = {bx, by, bz};
    const unsigned n = bx * by * bz;
    if (emu_fibers.size() < n) {
        if (emu_fiber_stacks) munmap(emu_fiber_stacks, emu_fiber_mapped);
        emu_fiber_mapped = n * (EMU_GUARD + EMU_FIBER_STACK);
        void* map = mmap(nullptr, emu_fiber_mapped, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (map == MAP_FAILED) { emu_fiber_stacks = nullptr; emu_fibers.clear(); return 3; }
        emu_fiber_stacks = static_cast<char*>(map);
        for (unsigned t = 0; t < n; ++t)            /* stacks grow down: the guard lies below each */
            mprotect(emu_fiber_stacks + t * (EMU_GUARD + EMU_FIBER_STACK), EMU_GUARD, PROT_NONE);
        emu_fibers.resize(n);
    }
    emu_fiber_body = [&] { emu_call(kernel, params, std::index_sequence_for<A...>{}); };
    bool divergent = false;
    unsigned long block = 0;
    for (unsigned z = 0; z < gz; ++z)
    for (unsigned y = 0; y < gy; ++y)
    for (unsigned x = 0; x < gx; ++x, ++block) {
        blockIdx = {x, y, z};
        for (unsigned t = 0; t < n; ++t) {
            EmuFiber& f = emu_fibers[t];
            f.index = {t % bx, t / bx % by, t / (bx * by)};
            f.done = false;
            getcontext(&f.context);
            f.context.uc_stack.ss_sp = emu_fiber_stacks + t * (EMU_GUARD + EMU_FIBER_STACK) + EMU_GUARD;
            f.context.uc_stack.ss_size = EMU_FIBER_STACK;
            f.context.uc_link = &emu_scheduler;
            makecontext(&f.context, (void (*)())emu_fiber_entry, 1, int(t));
        }
        for (unsigned long phase = block, waiting = n; waiting; ++phase) {
            unsigned synced = 0, returned = 0;
            for (unsigned k = 0; k < n; ++k) {
                EmuFiber& f = emu_fibers[phase % 2 ? n - 1 - k : k];   /* up and down by turns */
                if (f.done) continue;
                emu_current = &f; threadIdx = f.index;
                swapcontext(&emu_scheduler, &f.context);
                ++(f.done ? returned : synced);
            }
            emu_current = nullptr;
            divergent |= synced && returned;     /* some wait at a barrier the others never reach */
            waiting = synced;
        }
    }
    return divergent;
}

/* The barrier-free road: `workers` host threads; host thread w runs CUDA threads w, w + workers, ...
   of every block. Returns 2 if the kernel reached __syncthreads() after all. */
template <class... A>
int emu_launch_independent(void (*kernel)(A...), void** params, unsigned gx, unsigned gy, unsigned gz,
                           unsigned bx, unsigned by, unsigned bz, unsigned workers) {
    std::lock_guard<std::mutex> lock(emu_launch_mutex);
    gridDim = {gx, gy, gz}; blockDim = {bx, by, bz};
    const unsigned n = bx * by * bz;
    workers = std::max(1u, std::min(workers, n));
    emu_barrier = nullptr; emu_unexpected_sync = false;
    emu_pool_run(workers, [&](unsigned w) {
            for (unsigned z = 0; z < gz; ++z)
            for (unsigned y = 0; y < gy; ++y)
            for (unsigned x = 0; x < gx; ++x)
                for (unsigned t = w; t < n; t += workers) {
                    blockIdx = {x, y, z};
                    threadIdx = {t % bx, t / bx % by, t / (bx * by)};
                    emu_call(kernel, params, std::index_sequence_for<A...>{});
                }
        });
    return emu_unexpected_sync ? 2 : 0;
}
"""

EMU_WORKERS = 4            # host threads for a kernel whose CUDA threads never meet

# `extern "C" __global__ void [__launch_bounds__(..)] name(params)`: the kernels the module exports.
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+'
                     r'(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(([^)]*)\)')
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
# `extern __shared__ float buf[];` becomes a pointer into the prelude's emu_dynamic_shared buffer.
_DYNAMIC_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\s*\(\s*\w+\s*\)\s*)?"
                             r"([A-Za-z_][\w\s]*?)\s+(\w+)\s*\[\s*\]\s*;")


def _compiler():
    return shutil.which(os.environ.get("CXX", "g++"))


@functools.lru_cache(maxsize=None)
def available():
    """True when a C++20 compiler with <barrier> (g++ 11+) is found: tests skip otherwise."""
    cxx = _compiler()
    if cxx is None:
        return False
    probe = subprocess.run([cxx, "-std=c++20", "-fsyntax-only", "-x", "c++", "-"],
                           input="#include <barrier>\n", capture_output=True, text=True, timeout=60)
    return probe.returncode == 0


def _own_cache_folder():
    """Make CACHE_DIR (mode 0700) or check that it is this user's and no one else can write to it."""
    os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
    info = os.stat(CACHE_DIR)
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise RuntimeError(f"the CUDA emulator's cache {CACHE_DIR} belongs to another user or others can "
                           "write to it; remove it (compiled kernels are loaded from there)")


def _defines(options):
    """The -D options of an NVRTC option list (others, like --use_fast_math, mean nothing here)."""
    return [o.replace("--define-macro=", "-D") for o in options if o.startswith(("-D", "--define-macro="))]


def _trim(message, folder, lines=40):
    text = message.replace(folder + os.sep, "").splitlines()
    return "\n".join(text[:lines] + ([f"... ({len(text) - lines} more lines)"] if len(text) > lines else []))


def _parse_kernels(source):
    """{kernel name: [(parameter name, declared type), ...]} for the messages of the type checks."""
    kernels = {}
    for name, params in _KERNEL.findall(_COMMENT.sub(" ", source)):
        parsed = [re.match(r"(.*?)(\w+)\s*$", p.strip(), re.DOTALL) for p in params.split(",")]
        kernels[name] = [(m[2], " ".join(m[1].split())) for m in parsed if m and m[0] != "void"]
    return kernels


_MEETING = re.compile(r"__syncthreads|__shared__")


def _independent_kernels(source):
    """Names of the kernels whose threads never meet: no __syncthreads or __shared__ in their own
    body, and none anywhere outside the kernel bodies (where a __device__ function could hold one)."""
    text = _COMMENT.sub(" ", source)
    bodies, outside, pos = {}, [], 0
    for m in _KERNEL.finditer(text):
        start = text.find("{", m.end())
        depth, end = 0, start
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        bodies[m[1]] = text[start:end + 1]
        outside.append(text[pos:m.start()])
        pos = end + 1
    outside.append(text[pos:])
    if _MEETING.search("".join(outside)):
        return set()
    return {name for name, body in bodies.items() if not _MEETING.search(body)}


def _build(source, kernels, options):
    """Compile prelude + source + one launcher per kernel into a cached shared library and load it."""
    def dynamic_shared(m):   # keep the line count, so g++'s line numbers stay those of the source
        pointer = f"{m[1]}* const {m[2]} = reinterpret_cast<{m[1]}*>(emu_dynamic_shared);"
        return pointer + "\n" * m[0].count("\n")
    independent = _independent_kernels(source)

    def launcher(k):
        run = (f"emu_launch_independent({k}, p, gx, gy, gz, bx, by, bz, {EMU_WORKERS})" if k in independent
               else f"threads ? emu_launch({k}, p, gx, gy, gz, bx, by, bz) "
                    f": emu_launch_fibers({k}, p, gx, gy, gz, bx, by, bz)")
        return (f"EMU_EXPORT int emu_launch_{k}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, "
                f"unsigned by, unsigned bz, void** p, int threads) {{ return {run}; }}\n"
                f"EMU_EXPORT const char* emu_signature_{k}() {{ return emu_signature({k}); }}\n")
    launchers = "".join(launcher(k) for k in kernels)
    source = _DYNAMIC_SHARED.sub(dynamic_shared, source)
    text = (f'#line 1 "emu_prelude"\n{PRELUDE}\n#line 1 "kernel.cu"\n{source}\n'
            f'#line 1 "emu_launchers"\n{launchers}')
    command = [_compiler(), *CXX_FLAGS, *_defines(options)]
    key = hashlib.sha256("\0".join(command + [text]).encode()).hexdigest()[:24]
    library = os.path.join(CACHE_DIR, key + ".so")
    _own_cache_folder()
    if not os.path.exists(library):       # cached: the same text costs nothing the second time
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
            with open(os.path.join(tmp, "kernel.cpp"), "w") as f:
                f.write(text)
            result = subprocess.run(command + ["kernel.cpp", "-o", "kernel.so"], cwd=tmp,
                                    capture_output=True, text=True, timeout=120)
            if result.returncode != 0:
                raise RuntimeError("the CUDA emulator could not compile the kernel source (line numbers in "
                                   "kernel.cu are those of the source):\n" + _trim(result.stderr, tmp))
            os.replace(os.path.join(tmp, "kernel.so"), library)   # atomic: concurrent builders never clash
    return ctypes.CDLL(library)


class RawModule:
    """Stands in for cupy.RawModule(code=..., options=...): compiled (by g++) at the first get_function."""

    def __init__(self, code, *, options=()):
        self.code, self.options = code, tuple(options)
        self.kernels = _parse_kernels(code)
        self._library = None

    def get_function(self, name):
        if name not in self.kernels:
            raise ValueError(f"no kernel {name!r} in the source (found {sorted(self.kernels)}); kernels "
                             f'must be declared `extern "C" __global__ void {name}(...)`')
        if self._library is None:
            self._library = _build(self.code, self.kernels, self.options)
        return Kernel(self._library, name, self.kernels[name])


class Kernel:
    """One kernel of a RawModule (what cupy.RawModule.get_function returns); call it as in CuPy:
    kernel(grid, block, args, shared_mem=0)."""

    def __init__(self, library, name, declared):
        self.name = name
        self._launch = getattr(library, "emu_launch_" + name)
        self._launch.argtypes = [ctypes.c_uint] * 6 + [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
        signature = getattr(library, "emu_signature_" + name)
        signature.restype = ctypes.c_char_p
        types = signature().decode().split()          # the compiler's view, typedefs resolved
        if len(declared) != len(types):               # a parameter list the regex misread: generic names
            declared = [(f"#{i}", "type not parsed") for i in range(len(types))]
        self.params = [(pname, decl, t) for (pname, decl), t in zip(declared, types)]

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        """Run the kernel to completion (`stream` is ignored: launches are synchronous here)."""
        grid, block = _dim3(grid, "grid"), _dim3(block, "block")
        if block[0] * block[1] * block[2] > MAX_THREADS_PER_BLOCK:
            raise ValueError(f"kernel '{self.name}': block {block} has over {MAX_THREADS_PER_BLOCK} threads")
        if not 0 <= shared_mem <= MAX_DYNAMIC_SHARED:
            raise ValueError(f"kernel '{self.name}': shared_mem={shared_mem} is not in "
                             f"[0, {MAX_DYNAMIC_SHARED}]")
        if not isinstance(args, (tuple, list)) or len(args) != len(self.params):
            raise TypeError(f"kernel '{self.name}' takes {len(self.params)} arguments "
                            f"({', '.join(p[0] for p in self.params)}), got {_describe(args)}")
        values = [self._pack(param, arg) for param, arg in zip(self.params, args)]
        pointers = (ctypes.c_void_p * len(values))(*(v.ctypes.data for v in values))
        road = os.environ.get("TINYCONVMIXER_EMULATOR", "fibers") or "fibers"
        if road not in ("fibers", "threads"):
            raise ValueError(f"TINYCONVMIXER_EMULATOR must be 'fibers' (the default) or 'threads', got {road!r}")
        status = self._launch(*grid, *block, pointers, road == "threads")
        if status == 3:
            raise MemoryError(f"kernel '{self.name}': the emulator could not map stacks for {block} threads")
        if status == 2:
            raise RuntimeError(f"kernel '{self.name}' reached __syncthreads() though the emulator found none in "
                               "its source and ran its threads without barriers: an emulator bug")
        if status:
            raise RuntimeError(f"kernel '{self.name}': some threads of a block waited at __syncthreads() "
                               "while others had returned from the kernel: undefined behaviour on the GPU")

    def _pack(self, param, arg):
        """The argument as a NumPy buffer holding the bytes the kernel reads, after checking its type."""
        name, declared, ctype = param
        if ctype.startswith("*"):
            pointee = ctype.lstrip("*c")
            if ctype.startswith(("**", "*c*")):   # a table of pointers: the addresses of other arrays
                want, ok = "int64 or uint64 array of addresses", lambda a: a.dtype in (np.int64, np.uint64)
            elif pointee == "v":
                want, ok = "numpy array", lambda a: True
            else:
                want, ok = f"numpy array of {np.dtype(pointee)}", lambda a: a.dtype == np.dtype(pointee)
            if not (isinstance(arg, np.ndarray) and ok(arg) and arg.flags.c_contiguous):
                self._mismatch(name, declared, "a C-contiguous " + want, arg)
            if not ctype.startswith("*c") and not arg.flags.writeable:
                self._mismatch(name, declared, "a writeable array (the pointer is not const)", arg)
            return np.array([arg.ctypes.data], np.uintp)
        if "?" in ctype:
            self._mismatch(name, declared, "a type the emulator supports (numbers and pointers)", arg)
        if not (isinstance(arg, np.generic) and arg.dtype == np.dtype(ctype)):
            dtype = np.dtype(ctype)
            self._mismatch(name, declared, f"a numpy {dtype} scalar, e.g. np.{dtype}(value)", arg)
        return np.array(arg)

    def _mismatch(self, name, declared, want, arg):
        raise TypeError(f"kernel '{self.name}', parameter '{name}' ({declared}): expected {want}, "
                        f"got {_describe(arg)}")


def _describe(arg):
    if isinstance(arg, np.ndarray):
        layout = "" if arg.flags.c_contiguous else "non-contiguous "
        return f"a {layout}{'' if arg.flags.writeable else 'read-only '}numpy array of {arg.dtype}"
    if isinstance(arg, np.generic):
        return f"a numpy {arg.dtype} scalar"
    if isinstance(arg, (tuple, list)):
        return f"{len(arg)} arguments"
    return f"a Python {type(arg).__name__}"


def _dim3(dims, what):
    """A grid or block size as CUDA's dim3: an int or 1 to 3 ints, missing ones are 1."""
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in dims):
        raise ValueError(f"{what} must be a positive int or a tuple of 1 to 3 positive ints, got {dims}")
    dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
    if what == "grid" and (dims[0] > 2 ** 31 - 1 or max(dims[1:]) > 65535):
        raise ValueError(f"grid {dims}: CUDA allows at most 2^31 - 1 blocks along x and 65535 along y and z")
    return dims


@contextlib.contextmanager
def emulated():
    """Inside the block, tinyconvmixer's CUDA kernels run on NumPy arrays, compiled here by g++
    (fast/cuda/launch.py's compiled_by)."""
    from tinyconvmixer.fast.cuda import launch
    if not available():
        raise RuntimeError("the CUDA emulator needs g++ with C++20 (see tests/support/cuda_emulator.py)")
    with launch.compiled_by(RawModule):
        yield
