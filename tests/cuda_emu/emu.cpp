// emu.cpp: the kernel emulator's launcher (see emu.h). Runs a registered kernel over its grid,
// one block at a time, each block's threads as ucontext fibers on this OS thread.
#include "emu.h"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace xlt_emu {

ThreadState* current = nullptr;
Dim block_idx, block_dim, grid_dim;

namespace {

struct Entry {
    void* fn;
    Invoke invoke;
};

std::map<std::string, Entry>& registry() {
    static std::map<std::string, Entry> r;
    return r;
}

enum class St { Ready, Block, Warp, Done };

constexpr size_t STACK = 256 * 1024;
constexpr int MAX_THREADS = 1024;

struct Fiber {
    ucontext_t ctx;
    char* stack = nullptr;
    ThreadState ts;
    St st = St::Done;
    unsigned phase = 0;  // warp collectives done, selects the exchange buffer
};

Fiber fibers[MAX_THREADS];
ucontext_t scheduler;
int running = -1;
Entry launch_entry;
void** launch_params = nullptr;
std::vector<unsigned char> shared_dynamic;
// [warp][parity][lane][SLOT]: two buffers per warp, so a lane that runs ahead into the next
// collective cannot overwrite data a slower lane has yet to read.
unsigned char exchange[MAX_THREADS / 32][2][32][SLOT];

void fiber_main(int i) {
    launch_entry.invoke(launch_entry.fn, launch_params);
    fibers[i].st = St::Done;
}  // returns to `scheduler` through uc_link

void yield() { swapcontext(&fibers[running].ctx, &scheduler); }

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
        f.ts.thread_idx = Dim{(unsigned)(i % bx), (unsigned)((i / bx) % by), (unsigned)(i / (bx * by))};
        f.ts.linear = i;
        f.ts.lane = i % 32;
        f.ts.warp = i / 32;
        f.st = St::Ready;
        f.phase = 0;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = &scheduler;
        makecontext(&f.ctx, reinterpret_cast<void (*)()>(fiber_main), 1, i);
    }
    for (;;) {
        bool any_ready = false;
        for (int k = 0; k < n; ++k) {
            const int i = reverse ? n - 1 - k : k;
            if (fibers[i].st != St::Ready) continue;
            any_ready = true;
            running = i;
            current = &fibers[i].ts;
            swapcontext(&scheduler, &fibers[i].ctx);
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

Reg::Reg(const char* name, void* fn, Invoke invoke) { registry()[name] = Entry{fn, invoke}; }

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

// Runs kernel `name` over grid (gx, gy, gz) of blocks (bx, by, bz) with `smem` bytes of dynamic
// shared memory (filled with 0xff, a NaN pattern, before each block), threads in ascending order
// or, with `reverse`, descending. Returns 0, or 1 with a message in `err`.
extern "C" int xlt_emu_launch(const char* name, const unsigned* grid, const unsigned* block, unsigned smem,
                              void** params, int reverse, char* err, unsigned long err_len) {
    using namespace xlt_emu;
    auto fail = [&](const std::string& m) {
        std::snprintf(err, err_len, "%s: %s", name, m.c_str());
        return 1;
    };
    auto it = registry().find(name);
    if (it == registry().end()) return fail("not registered with the emulator");
    const long n = (long)block[0] * block[1] * block[2];
    if (n <= 0 || n > MAX_THREADS) return fail("block of " + std::to_string(n) + " threads");
    if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0) return fail("empty grid");
    launch_entry = it->second;
    launch_params = params;
    block_dim = Dim{block[0], block[1], block[2]};
    grid_dim = Dim{grid[0], grid[1], grid[2]};
    shared_dynamic.assign(std::max(smem, 16u), 0xff);
    for (unsigned z = 0; z < grid[2]; ++z)
        for (unsigned y = 0; y < grid[1]; ++y)
            for (unsigned x = 0; x < grid[0]; ++x) {
                block_idx = Dim{x, y, z};
                std::fill(shared_dynamic.begin(), shared_dynamic.end(), 0xff);
                const std::string e = run_block((int)n, reverse != 0);
                if (!e.empty())
                    return fail("block (" + std::to_string(x) + ", " + std::to_string(y) + ", " + std::to_string(z) +
                                "): " + e);
            }
    current = nullptr;
    return 0;
}
