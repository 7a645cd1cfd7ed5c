/*
 * Run-time choice between the portable and SHA-NI SHA-256 code.
 *
 * The selector is the library's only mutable global (besides the cached
 * cpuid answer, which can only ever settle on one value). Both are C11
 * atomics so concurrent first use from several threads is well defined; a
 * racing tl_sha256_impl_set wins over lazy initialisation because the lazy
 * path only installs its choice with a compare-exchange from "unset".
 */
#include <stdatomic.h>

#include "tl_internal.h"

#if TL_HAVE_SHANI_BUILD
#include <cpuid.h>
#endif

#define UNSET (-1)

static atomic_int g_cpu_shani = UNSET;
static atomic_int g_impl = UNSET;

static int detect_shani(void)
{
#if TL_HAVE_SHANI_BUILD
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return 0;
    /* Leaf 1 ECX: bit 0 SSE3 (implied), bit 9 SSSE3, bit 19 SSE4.1. */
    if (!(ecx & (1u << 9)) || !(ecx & (1u << 19)))
        return 0;
    /* __get_cpuid_count fails (returns 0) when leaf 7 is not supported. */
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
        return 0;
    return (ebx & (1u << 29)) ? 1 : 0;
#else
    return 0;
#endif
}

int tl__cpu_has_shani(void)
{
    /* cpuid can trap to the hypervisor on virtual machines, so ask once. */
    int v = atomic_load_explicit(&g_cpu_shani, memory_order_relaxed);
    if (v == UNSET) {
        v = detect_shani();
        atomic_store_explicit(&g_cpu_shani, v, memory_order_relaxed);
    }
    return v;
}

int tl_sha256_impl_available(int impl)
{
    switch (impl) {
    case TL_IMPL_PORTABLE:
        return 1;
    case TL_IMPL_SHANI:
        return tl__cpu_has_shani();
    default:
        return 0;
    }
}

int tl_sha256_impl_get(void)
{
    int v = atomic_load_explicit(&g_impl, memory_order_relaxed);
    if (v != UNSET)
        return v;
    int want = tl__cpu_has_shani() ? TL_IMPL_SHANI : TL_IMPL_PORTABLE;
    int expected = UNSET;
    if (atomic_compare_exchange_strong(&g_impl, &expected, want))
        return want;
    return expected; /* someone else decided first */
}

int tl_sha256_impl_set(int impl)
{
    if (!tl_sha256_impl_available(impl))
        return TL_EINVAL;
    atomic_store(&g_impl, impl);
    return TL_OK;
}
