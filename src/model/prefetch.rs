//! A cache prefetch hint for loops that visit many heap objects in a known
//! order (the head's commit touches one series per sample, and at 100,000
//! series each is a miss to main memory).

/// Asks the CPU to start loading the `lines` cache lines from `p` into its
/// caches. Only a hint: nothing is read, and no address can fault.
#[inline(always)]
pub fn prefetch<T>(p: *const T, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    for i in 0..lines {
        let a = p.cast::<u8>().wrapping_add(i * 64).cast::<i8>();
        // SAFETY: PREFETCHT0 never dereferences in a way that can fault or
        // be observed (invalid addresses are ignored), and SSE is part of
        // the x86_64 baseline, so the target feature is always present.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(a);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, lines);
}
