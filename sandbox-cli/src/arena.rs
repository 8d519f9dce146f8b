//! The CLI's allocator on musl: a bump arena for the launch, the C allocator once it is
//! used up.
//!
//! A launch makes a few thousand short-lived allocations (TOML, paths, the compiled plan),
//! ~120 KiB in all, then the supervisor mostly waits. musl's allocator hands memory back to
//! the kernel eagerly: ~40 `mmap`/`munmap` pairs and their page faults per launch, ~0.25 ms
//! here, which ate all that musl's lighter start-up saves (bench/README.md). The arena lives
//! in `.bss`, so pages the launch never touches cost no memory; a freed block is reclaimed
//! only when it is the newest one (the common case for growing strings and vectors), so the
//! arena never holds more than was allocated. Everything past its end goes to `malloc`.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

const ARENA_SIZE: usize = 1 << 20;

#[repr(C, align(4096))]
struct Bytes(UnsafeCell<[u8; ARENA_SIZE]>);

/// Bump allocator over a static buffer, falling back to the C allocator.
pub(crate) struct LaunchArena {
    bytes: Bytes,
    /// Offset of the first free byte.
    next: AtomicUsize,
}

// SAFETY: the buffer is only handed out in disjoint ranges, reserved by atomic updates of
// `next`.
unsafe impl Sync for LaunchArena {}

impl LaunchArena {
    pub(crate) const fn new() -> Self {
        LaunchArena {
            bytes: Bytes(UnsafeCell::new([0; ARENA_SIZE])),
            next: AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        self.bytes.0.get() as usize
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        let addr = ptr as usize;
        addr >= self.base() && addr < self.base() + ARENA_SIZE
    }

    /// Reserves `layout` in the arena, or `None` when it does not fit.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let base = self.base();
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + next).checked_next_multiple_of(layout.align())? - base;
            let end = start.checked_add(layout.size())?;
            if end > ARENA_SIZE {
                return None;
            }
            match self
                .next
                .compare_exchange_weak(next, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // SAFETY: start < ARENA_SIZE, inside the buffer.
                Ok(_) => return Some(unsafe { self.bytes.0.get().cast::<u8>().add(start) }),
                Err(current) => next = current,
            }
        }
    }

    /// Moves the end of the arena from `old_end` to `new_end` if `old_end` is still its end:
    /// the block ending there is the newest and may shrink, grow or vanish in place.
    fn move_end(&self, old_end: usize, new_end: usize) -> bool {
        new_end <= ARENA_SIZE
            && self
                .next
                .compare_exchange(old_end, new_end, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

// SAFETY: arena blocks are disjoint, aligned and at least `layout.size()` long; the others
// come from the C allocator with the alignment asked for.
unsafe impl GlobalAlloc for LaunchArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(ptr) = self.bump(layout) {
            return ptr;
        }
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: plain C allocation.
            return unsafe { libc::malloc(layout.size()) }.cast();
        }
        let mut out = std::ptr::null_mut();
        // SAFETY: the alignment is a power of two and a multiple of the pointer size.
        match unsafe { libc::posix_memalign(&mut out, layout.align(), layout.size()) } {
            0 => out.cast(),
            _ => std::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.contains(ptr) {
            let start = ptr as usize - self.base();
            self.move_end(start + layout.size(), start);
        } else {
            // SAFETY: not ours, so it came from the C allocator.
            unsafe { libc::free(ptr.cast()) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.contains(ptr) {
            let start = ptr as usize - self.base();
            if let Some(new_end) = start.checked_add(new_size) {
                if self.move_end(start + layout.size(), new_end) {
                    return ptr;
                }
            }
            if new_size <= layout.size() {
                return ptr;
            }
            // SAFETY: same alignment as the block, a non-zero size.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // SAFETY: as for alloc.
            let new = unsafe { self.alloc(new_layout) };
            if !new.is_null() {
                // SAFETY: both blocks are at least `layout.size()` long and do not overlap.
                unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
                // SAFETY: the old block is ours and no longer used.
                unsafe { self.dealloc(ptr, layout) };
            }
            return new;
        }
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: a block of the C allocator.
            return unsafe { libc::realloc(ptr.cast(), new_size) }.cast();
        }
        // SAFETY: same alignment as the block, a non-zero size.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as for alloc.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least min(old, new) bytes and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the old block came from the C allocator.
            unsafe { libc::free(ptr.cast()) };
        }
        new
    }
}

/// The alignment `malloc` guarantees on every Linux libc we build for.
const MALLOC_ALIGN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_the_newest_is_reclaimed() {
        static ARENA: LaunchArena = LaunchArena::new();
        unsafe {
            let a = ARENA.alloc(layout(3, 1));
            let b = ARENA.alloc(layout(8, 64));
            assert!(ARENA.contains(a) && ARENA.contains(b));
            assert_eq!(b as usize % 64, 0);
            assert!(b as usize >= a as usize + 3);
            let used = ARENA.next.load(Ordering::Relaxed);
            ARENA.dealloc(b, layout(8, 64));
            assert!(
                ARENA.next.load(Ordering::Relaxed) < used,
                "newest block not reclaimed"
            );
            // An older block is left in place: nothing after it moves.
            let c = ARENA.alloc(layout(16, 8));
            let before = ARENA.next.load(Ordering::Relaxed);
            ARENA.dealloc(a, layout(3, 1));
            assert_eq!(ARENA.next.load(Ordering::Relaxed), before);
            c.write_bytes(0xAB, 16);
        }
    }

    #[test]
    fn realloc_grows_the_newest_block_in_place_and_copies_the_others() {
        static ARENA: LaunchArena = LaunchArena::new();
        unsafe {
            let a = ARENA.alloc(layout(4, 4));
            a.copy_from_nonoverlapping(b"abcd".as_ptr(), 4);
            let grown = ARENA.realloc(a, layout(4, 4), 4096);
            assert_eq!(grown, a, "the newest block should grow in place");
            let b = ARENA.alloc(layout(4, 4));
            let moved = ARENA.realloc(a, layout(4096, 4), 8192);
            assert_ne!(moved, a);
            assert_eq!(std::slice::from_raw_parts(moved, 4), b"abcd");
            assert!(ARENA.contains(b));
            let shrunk = ARENA.realloc(moved, layout(8192, 4), 2);
            assert_eq!(shrunk, moved);
        }
    }

    #[test]
    fn a_full_arena_hands_over_to_malloc() {
        static ARENA: LaunchArena = LaunchArena::new();
        unsafe {
            let big = ARENA.alloc(layout(ARENA_SIZE - 100, 1));
            assert!(ARENA.contains(big));
            let outside = ARENA.alloc(layout(200, 8));
            assert!(!outside.is_null() && !ARENA.contains(outside));
            let aligned = ARENA.alloc(layout(200, 256));
            assert!(!ARENA.contains(aligned) && aligned as usize % 256 == 0);
            // A block in the arena that must grow past its end moves to malloc, bytes kept.
            big.write_bytes(7, 10);
            let moved = ARENA.realloc(big, layout(ARENA_SIZE - 100, 1), ARENA_SIZE + 1);
            assert!(!moved.is_null() && !ARENA.contains(moved));
            assert_eq!(std::slice::from_raw_parts(moved, 10), [7; 10]);
            let moved = ARENA.realloc(moved, layout(ARENA_SIZE + 1, 1), 2 * ARENA_SIZE);
            assert_eq!(std::slice::from_raw_parts(moved, 10), [7; 10]);
            ARENA.dealloc(moved, layout(2 * ARENA_SIZE, 1));
            ARENA.dealloc(outside, layout(200, 8));
            ARENA.dealloc(aligned, layout(200, 256));
            // The arena's end was freed with `big`: it serves again.
            assert!(ARENA.contains(ARENA.alloc(layout(16, 1))));
        }
    }

    #[test]
    fn threads_get_disjoint_blocks() {
        static ARENA: LaunchArena = LaunchArena::new();
        let threads: Vec<_> = (0u8..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let blocks: Vec<usize> = (0..500)
                        .map(|_| unsafe {
                            let p = ARENA.alloc(layout(24, 8));
                            p.write_bytes(t, 24);
                            p as usize
                        })
                        .collect();
                    (t, blocks)
                })
            })
            .collect();
        for handle in threads {
            let (t, blocks) = handle.join().unwrap();
            for p in blocks {
                let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, 24) };
                assert!(
                    bytes.iter().all(|&b| b == t),
                    "a block was shared between threads"
                );
            }
        }
    }
}
