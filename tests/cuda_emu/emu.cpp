// emu.cpp: the kernel emulator's launcher (see emu.h). Runs a registered kernel over its grid,
// one block at a time, each block's threads as fibers on this OS thread.
//
// A fiber is started once (makecontext / setcontext onto its own stack) and then lives for the
// whole process, running one block's thread after another. Switches go through _setjmp /
// _longjmp, which save only the callee-saved registers: ucontext's swapcontext also saves the
// signal mask with a system call on every switch, which made it most of the emulator's time.
// _FORTIFY_SOURCE is off (harness FLAGS) because its longjmp check refuses jumps onto another
// stack.
#include "emu.h"

#include <setjmp.h>
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

// The bounds of the static shared arrays' section (emu.h's __shared__), set by the linker; null
// in a library without any.
extern "C" unsigned char __start_xlt_shared[] __attribute__((weak));
extern "C" unsigned char __stop_xlt_shared[] __attribute__((weak));

namespace xlt_emu {

ThreadState* current = nullptr;
Dim block_idx, block_dim, grid_dim;

namespace {

struct Entry {
    std::string name;
    void* fn;
    Invoke invoke;
    std::vector<int> sizes;
};

std::vector<Entry>& registry() {
    static std::vector<Entry> r;
    return r;
}

enum class St { Ready, Block, Warp, Done };

constexpr size_t STACK = 256 * 1024;
constexpr int MAX_THREADS = 1024;

struct Fiber {
    ucontext_t start;  // the first entry, onto `stack`
    jmp_buf ctx;       // where the fiber resumes once started
    bool started = false;
    bool idle = true;  // between threads, not inside a kernel (a deadlocked launch leaves some inside)
    char* stack = nullptr;
    ThreadState ts;
    St st = St::Done;
    unsigned phase = 0;  // warp collectives done, selects the exchange buffer
};

Fiber fibers[MAX_THREADS];
jmp_buf scheduler;
int running = -1;
const Entry* launch_entry = nullptr;
void** launch_params = nullptr;
std::vector<unsigned char> shared_dynamic;
// [warp][parity][lane][SLOT]: two buffers per warp, so a lane that runs ahead into the next
// collective cannot overwrite data a slower lane has yet to read.
unsigned char exchange[MAX_THREADS / 32][2][32][SLOT];

// Back to the scheduler; returns when the scheduler resumes this fiber.
void yield() {
    if (_setjmp(fibers[running].ctx) == 0) _longjmp(scheduler, 1);
}

// A fiber's whole life: thread `i` of one block after another, never returning.
void fiber_main(int i) {
    for (;;) {
        fibers[i].idle = false;
        launch_entry->invoke(launch_entry->fn, launch_params);
        fibers[i].st = St::Done;
        fibers[i].idle = true;
        yield();
    }
}

// Runs fiber `i` until it next yields.
void resume(int i) {
    if (_setjmp(scheduler) != 0) return;
    Fiber& f = fibers[i];
    if (f.started) _longjmp(f.ctx, 1);
    f.started = true;
    setcontext(&f.start);
}

const char* state_name(St s) {
    switch (s) {
    case St::Ready: return "ready";
    case St::Block: return "at __syncthreads";
    case St::Warp: return "at a warp collective";
    case St::Done: return "exited";
    }
    return "?";
}

// Runs one block to completion; returns an error message on deadlock.
std::string run_block(int n, bool reverse) {
    const int bx = (int)block_dim.x, by = (int)block_dim.y;
    for (int i = 0; i < n; ++i) {
        Fiber& f = fibers[i];
        if (!f.stack && !(f.stack = static_cast<char*>(std::malloc(STACK)))) return "out of host memory for stacks";
        if (!f.started || !f.idle) {  // a fresh fiber, or one a failed launch left inside its kernel
            f.started = false;
            f.idle = true;
            if (getcontext(&f.start) != 0) return "getcontext failed";
            f.start.uc_stack.ss_sp = f.stack;
            f.start.uc_stack.ss_size = STACK;
            f.start.uc_link = nullptr;
            makecontext(&f.start, reinterpret_cast<void (*)()>(fiber_main), 1, i);
        }
        f.ts.thread_idx = Dim{(unsigned)(i % bx), (unsigned)((i / bx) % by), (unsigned)(i / (bx * by))};
        f.ts.linear = i;
        f.ts.lane = i % 32;
        f.ts.warp = i / 32;
        f.st = St::Ready;
        f.phase = 0;
    }
    for (;;) {
        bool any_ready = false;
        for (int k = 0; k < n; ++k) {
            const int i = reverse ? n - 1 - k : k;
            if (fibers[i].st != St::Ready) continue;
            any_ready = true;
            running = i;
            current = &fibers[i].ts;
            resume(i);
        }
        if (any_ready) continue;
        // Nobody can run: release a warp whose live lanes all wait at a collective ...
        bool released = false, all_done = true, all_block = true;
        for (int w = 0; w * 32 < n; ++w) {
            bool live = false, all_warp = true;
            for (int i = w * 32; i < std::min(n, w * 32 + 32); ++i) {
                if (fibers[i].st == St::Done) continue;
                live = true;
                all_warp &= fibers[i].st == St::Warp;
            }
            if (live && all_warp) {
                for (int i = w * 32; i < std::min(n, w * 32 + 32); ++i)
                    if (fibers[i].st == St::Warp) fibers[i].st = St::Ready;
                released = true;
            }
        }
        if (released) continue;
        for (int i = 0; i < n; ++i) {
            all_done &= fibers[i].st == St::Done;
            all_block &= fibers[i].st == St::Done || fibers[i].st == St::Block;
        }
        if (all_done) return "";
        if (all_block) {  // ... or the block at __syncthreads
            for (int i = 0; i < n; ++i)
                if (fibers[i].st == St::Block) fibers[i].st = St::Ready;
            continue;
        }
        std::string msg = "deadlock: threads wait at different barriers:";
        for (int i = 0; i < n; ++i) {
            if (i > 0 && fibers[i].st == fibers[i - 1].st) continue;
            msg += " thread " + std::to_string(i) + "+ " + state_name(fibers[i].st) + ";";
        }
        return msg;
    }
}

}  // namespace

Reg::Reg(const char* name, void* fn, Invoke invoke, const int* sizes, int count) {
    registry().push_back(Entry{name, fn, invoke, std::vector<int>(sizes, sizes + count)});
}

void sync_block() {
    fibers[running].st = St::Block;
    yield();
}

const unsigned char* warp_exchange(const void* mine, int bytes) {
    Fiber& f = fibers[running];
    const unsigned parity = f.phase++ & 1u;
    std::memcpy(exchange[f.ts.warp][parity][f.ts.lane], mine, (size_t)std::min(bytes, SLOT));
    f.st = St::Warp;
    yield();
    return &exchange[f.ts.warp][parity][0][0];
}

unsigned char* dynamic_shared() { return shared_dynamic.data(); }

}  // namespace xlt_emu

// The index of kernel `name` among this library's registrations, or -1.
extern "C" int xlt_emu_find(const char* name) {
    const auto& r = xlt_emu::registry();
    for (size_t i = 0; i < r.size(); ++i)
        if (r[i].name == name) return (int)i;
    return -1;
}

// The parameter sizes of kernel `index`: writes at most `max` of them to `sizes`, returns the
// count (or -1 for a bad index).
extern "C" int xlt_emu_params(int index, int* sizes, int max) {
    const auto& r = xlt_emu::registry();
    if (index < 0 || (size_t)index >= r.size()) return -1;
    const auto& s = r[(size_t)index].sizes;
    for (int i = 0; i < (int)s.size() && i < max; ++i) sizes[i] = s[(size_t)i];
    return (int)s.size();
}

// Runs kernel `index` over grid (gx, gy, gz) of blocks (bx, by, bz) with `smem` bytes of dynamic
// shared memory (it and the static shared arrays filled with 0xff, a NaN pattern, before each
// block), threads in ascending order or, with `reverse`, descending. Returns 0, or 1 with a message in `err`.
extern "C" int xlt_emu_launch(int index, const unsigned* grid, const unsigned* block, unsigned smem, void** params,
                              int reverse, char* err, unsigned long err_len) {
    using namespace xlt_emu;
    const auto& r = registry();
    if (index < 0 || (size_t)index >= r.size()) {
        std::snprintf(err, err_len, "kernel index %d is not registered with the emulator", index);
        return 1;
    }
    const Entry& entry = r[(size_t)index];
    const char* name = entry.name.c_str();
    auto fail = [&](const std::string& m) {
        std::snprintf(err, err_len, "%s: %s", name, m.c_str());
        return 1;
    };
    const long n = (long)block[0] * block[1] * block[2];
    if (n <= 0 || n > MAX_THREADS) return fail("block of " + std::to_string(n) + " threads");
    if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0) return fail("empty grid");
    launch_entry = &entry;
    launch_params = params;
    block_dim = Dim{block[0], block[1], block[2]};
    grid_dim = Dim{grid[0], grid[1], grid[2]};
    shared_dynamic.assign(std::max(smem, 16u), 0xff);
    for (unsigned z = 0; z < grid[2]; ++z)
        for (unsigned y = 0; y < grid[1]; ++y)
            for (unsigned x = 0; x < grid[0]; ++x) {
                block_idx = Dim{x, y, z};
                std::fill(shared_dynamic.begin(), shared_dynamic.end(), 0xff);
                if (__start_xlt_shared != __stop_xlt_shared)
                    std::memset(__start_xlt_shared, 0xff, (size_t)(__stop_xlt_shared - __start_xlt_shared));
                const std::string e = run_block((int)n, reverse != 0);
                if (!e.empty())
                    return fail("block (" + std::to_string(x) + ", " + std::to_string(y) + ", " + std::to_string(z) +
                                "): " + e);
            }
    current = nullptr;
    return 0;
}
