// What the CPU can run, asked of the CPU itself (CPUID and XGETBV; header only, nothing to
// link): the check that a release build tuned for x86-64-v3 (Package.swift) runs on such a CPU.
// SwiftPM does not track a system library's header: after editing it, touch the Swift files that
// import it (Tool.swift, TensorCoreTests.swift) or they keep the old inline function.
#ifndef TENSOR_TOOLS_CCPU_SHIM_H
#define TENSOR_TOOLS_CCPU_SHIM_H

#if defined(__x86_64__)
#include <cpuid.h>

/// 1 when the CPU and the kernel support x86-64-v3 (AVX, AVX2, FMA, F16C, MOVBE, POPCNT, BMI1,
/// BMI2, LZCNT, with the YMM registers enabled by the operating system), else 0.
static inline int tensor_tools_cpu_has_x86_64_v3(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned leaf1 = (1u << 12) | (1u << 22) | (1u << 23) | (1u << 27) | (1u << 28) | (1u << 29);  // FMA MOVBE POPCNT OSXSAVE AVX F16C
    if ((c & leaf1) != leaf1) return 0;
    unsigned lo, hi;
    __asm__ volatile ("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6u) != 6u) return 0;  // the OS saves XMM and YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned leaf7 = (1u << 3) | (1u << 5) | (1u << 8);  // BMI1 AVX2 BMI2
    if ((b & leaf7) != leaf7) return 0;
    if (!__get_cpuid(0x80000001u, &a, &b, &c, &d)) return 0;
    return (c >> 5) & 1u;  // LZCNT
}
#else
static inline int tensor_tools_cpu_has_x86_64_v3(void) { return 0; }
#endif

#endif
