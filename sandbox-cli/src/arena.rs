//! The CLI's allocator on musl: an arena for the launch, the C allocator once it is used up.
//!
//! A launch makes a few thousand short-lived allocations (TOML, paths, the compiled plan),
//! ~120 KiB in all, then the supervisor mostly waits. musl's allocator hands memory back to
//! the kernel eagerly: ~40 `mmap`/`munmap` pairs and their page faults per launch, ~0.25 ms
//! here, which ate all that musl's lighter start-up saves (bench/README.md). The arena lives
//! in `.bss`, so pages never touched cost no memory. Blocks of up to 4 KiB come in
//! power-of-two classes and are recycled through a free list per class (a process that
//! compiles many plans, `sandbox policy check --time`, keeps reusing them); a class with
//! none free splits a larger free block, so what one stage of a launch freed serves the next
//! instead of fresh pages (each a page fault: 90 → 62 KiB touched by a default launch).
//! Larger blocks are bumped, reclaimed or grown in place when they are the newest, and
//! otherwise recycled as 4 KiB blocks when freed. Everything past the arena's end goes to
//! `malloc`.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const ARENA_SIZE: usize = 1 << 20;
/// Every arena block is aligned to this, so any block can serve any class.
const MIN_ALIGN: usize = 16;
/// Size classes: 16, 32, …, 4096 bytes.
const CLASSES: usize = 9;
const CLASS_MAX: usize = MIN_ALIGN << (CLASSES - 1);

#[repr(C, align(4096))]
struct Bytes(UnsafeCell<[u8; ARENA_SIZE]>);

/// Arena allocator over a static buffer, falling back to the C allocator.
pub(crate) struct LaunchArena {
    bytes: Bytes,
    /// Offset of the first never-used byte.
    next: AtomicUsize,
    /// Per class, the address of the first free block (0: none); a free block holds the
    /// address of the next in its first word. Guarded by `lock`.
    free: UnsafeCell<[usize; CLASSES]>,
    lock: AtomicBool,
}

// SAFETY: the buffer is handed out in disjoint ranges, reserved by atomic updates of `next`
// or taken from the free lists under `lock`.
unsafe impl Sync for LaunchArena {}

/// The class of a layout the free lists can serve, with its block size.
fn class_of(layout: Layout) -> Option<(usize, usize)> {
    if layout.align() > MIN_ALIGN || layout.size() > CLASS_MAX {
        return None;
    }
    let size = layout.size().max(MIN_ALIGN).next_power_of_two();
    let class = (size.trailing_zeros() - MIN_ALIGN.trailing_zeros()) as usize;
    Some((class, size))
}

impl LaunchArena {
    pub(crate) const fn new() -> Self {
        LaunchArena {
            bytes: Bytes(UnsafeCell::new([0; ARENA_SIZE])),
            next: AtomicUsize::new(0),
            free: UnsafeCell::new([0; CLASSES]),
            lock: AtomicBool::new(false),
        }
    }

    fn base(&self) -> usize {
        self.bytes.0.get() as usize
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        let addr = ptr as usize;
        addr >= self.base() && addr < self.base() + ARENA_SIZE
    }

    /// Reserves `size` bytes aligned to `align` (at least [`MIN_ALIGN`]) from the never-used
    /// part of the arena, or `None` when they do not fit.
    fn bump(&self, size: usize, align: usize) -> Option<*mut u8> {
        let base = self.base();
        let align = align.max(MIN_ALIGN);
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + next).checked_next_multiple_of(align)? - base;
            let end = start.checked_add(size)?;
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

    /// Moves the end of the used part from `old_end` to `new_end` if `old_end` is still its
    /// end: the block ending there is the newest and may shrink, grow or vanish in place.
    fn move_end(&self, old_end: usize, new_end: usize) -> bool {
        new_end <= ARENA_SIZE
            && self
                .next
                .compare_exchange(old_end, new_end, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Runs `f` on the free lists, under the lock.
    fn with_free_lists<R>(&self, f: impl FnOnce(&mut [usize; CLASSES]) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock gives this thread the only access to the lists.
        let result = f(unsafe { &mut *self.free.get() });
        self.lock.store(false, Ordering::Release);
        result
    }

    /// A free block of `class`, split off a larger free block when that class has none:
    /// memory a finished stage freed (the TOML parser's tables, say) then serves the next
    /// stage's smaller blocks instead of pages never touched before (a page fault each).
    fn pop(&self, class: usize) -> Option<*mut u8> {
        self.with_free_lists(|heads| {
            let from = (class..CLASSES).find(|&c| heads[c] != 0)?;
            let block = heads[from];
            // SAFETY: a free block of ours, aligned, whose first word links the list.
            heads[from] = unsafe { (block as *const usize).read() };
            // Halve it down to `class`: each upper half joins the free list of its size.
            for c in (class..from).rev() {
                let half = block + (MIN_ALIGN << c);
                // SAFETY: the upper half of a free block of ours: aligned, at least 16 bytes.
                unsafe { (half as *mut usize).write(heads[c]) };
                heads[c] = half;
            }
            Some(block as *mut u8)
        })
    }

    fn push(&self, class: usize, block: *mut u8) {
        self.with_free_lists(|heads| {
            // SAFETY: the block is ours, unused from now on, aligned and at least 16 bytes.
            unsafe { (block as *mut usize).write(heads[class]) };
            heads[class] = block as usize;
        });
    }
}

// SAFETY: arena blocks are disjoint, aligned to at least MIN_ALIGN and the layout's
// alignment, and at least `layout.size()` long; the others come from the C allocator with
// the alignment asked for.
unsafe impl GlobalAlloc for LaunchArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let arena_block = match class_of(layout) {
            Some((class, size)) => self.pop(class).or_else(|| self.bump(size, MIN_ALIGN)),
            None => self.bump(layout.size(), layout.align()),
        };
        if let Some(ptr) = arena_block {
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
        if !self.contains(ptr) {
            // SAFETY: not ours, so it came from the C allocator.
            return unsafe { libc::free(ptr.cast()) };
        }
        match class_of(layout) {
            Some((class, _)) => self.push(class, ptr),
            None => {
                let start = ptr as usize - self.base();
                if !self.move_end(start + layout.size(), start) {
                    // Not the newest: its whole blocks of the largest class are reused.
                    for piece in 0..layout.size() / CLASS_MAX {
                        // SAFETY: disjoint CLASS_MAX-byte pieces of a block of ours.
                        self.push(CLASSES - 1, unsafe { ptr.add(piece * CLASS_MAX) });
                    }
                }
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.contains(ptr) {
            match class_of(layout) {
                Some((_, size)) if new_size <= size => return ptr,
                Some(_) => {}
                // A large block keeps its extent when it shrinks (it may then be freed into
                // a class, every class being smaller than it) and grows in place when newest.
                None if new_size <= layout.size() => return ptr,
                None => {
                    let start = ptr as usize - self.base();
                    if let Some(new_end) = start.checked_add(new_size) {
                        if self.move_end(start + layout.size(), new_end) {
                            return ptr;
                        }
                    }
                }
            }
        }
        // SAFETY: same alignment as the block, a non-zero size (GlobalAlloc's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !self.contains(ptr) && layout.align() <= MALLOC_ALIGN && class_of(new_layout).is_none() {
            // SAFETY: a block of the C allocator, staying there.
            return unsafe { libc::realloc(ptr.cast(), new_size) }.cast();
        }
        // SAFETY: as for alloc.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least min(old, new) bytes and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the old block is no longer used.
            unsafe { self.dealloc(ptr, layout) };
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
    fn small_blocks_are_recycled_by_class() {
        static ARENA: LaunchArena = LaunchArena::new();
        unsafe {
            let a = ARENA.alloc(layout(24, 8));
            let b = ARENA.alloc(layout(3, 1));
            assert!(ARENA.contains(a) && ARENA.contains(b));
            assert_eq!(a as usize % MIN_ALIGN, 0);
            assert!(
                b as usize >= a as usize + 32,
                "24 bytes take a 32-byte block"
            );
            ARENA.dealloc(a, layout(24, 8));
            let used = ARENA.next.load(Ordering::Relaxed);
            // Same class (17..=32 bytes): the freed block comes back, nothing new is used.
            let c = ARENA.alloc(layout(32, 16));
            assert_eq!(c, a);
            assert_eq!(ARENA.next.load(Ordering::Relaxed), used);
            // Another class does not take it.
            ARENA.dealloc(c, layout(32, 16));
            let d = ARENA.alloc(layout(64, 8));
            assert_ne!(d, a);
            d.write_bytes(0xAB, 64);
            let e = ARENA.alloc(layout(20, 4));
            assert_eq!(e, a);
        }
    }

    #[test]
    fn large_blocks_are_reclaimed_and_grown_when_newest() {
        static ARENA: LaunchArena = LaunchArena::new();
        unsafe {
            let a = ARENA.alloc(layout(5000, 1));
            a.copy_from_nonoverlapping(b"abcd".as_ptr(), 4);
            let grown = ARENA.realloc(a, layout(5000, 1), 9000);
            assert_eq!(grown, a, "the newest block should grow in place");
            let b = ARENA.alloc(layout(6000, 1));
            let moved = ARENA.realloc(a, layout(9000, 1), 20000);
            assert_ne!(moved, a);
            assert_eq!(std::slice::from_raw_parts(moved, 4), b"abcd");
            let end = ARENA.next.load(Ordering::Relaxed);
            ARENA.dealloc(moved, layout(20000, 1));
            assert!(
                ARENA.next.load(Ordering::Relaxed) < end,
                "newest block not reclaimed"
            );
            // An older block is left in place.
            let c = ARENA.alloc(layout(7000, 1));
            let end = ARENA.next.load(Ordering::Relaxed);
            ARENA.dealloc(b, layout(6000, 1));
            assert_eq!(ARENA.next.load(Ordering::Relaxed), end);
            ARENA.dealloc(c, layout(7000, 1));
        }
    }

    #[test]
    fn a_large_block_shrunk_into_a_class_never_overlaps_a_later_one() {
        static ARENA: LaunchArena = LaunchArena::new();
        unsafe {
            let a = ARENA.alloc(layout(8192, 8));
            let shrunk = ARENA.realloc(a, layout(8192, 8), 100);
            assert_eq!(shrunk, a);
            ARENA.dealloc(shrunk, layout(100, 8));
            let b = ARENA.alloc(layout(8192, 8));
            assert!(b as usize >= a as usize + 8192, "{a:?} {b:?}");
            // The 128-byte class now holds the old block.
            assert_eq!(ARENA.alloc(layout(100, 8)), a);
        }
    }

    #[test]
    fn small_blocks_grow_within_their_class_and_move_beyond_it() {
        static ARENA: LaunchArena = LaunchArena::new();
        unsafe {
            let a = ARENA.alloc(layout(5, 1));
            a.copy_from_nonoverlapping(b"hello".as_ptr(), 5);
            assert_eq!(ARENA.realloc(a, layout(5, 1), 16), a);
            let big = ARENA.realloc(a, layout(16, 1), 5000);
            assert_ne!(big, a);
            assert_eq!(std::slice::from_raw_parts(big, 5), b"hello");
            // The old block went back to its class.
            assert_eq!(ARENA.alloc(layout(16, 1)), a);
        }
    }

    #[test]
    fn freed_blocks_are_split_for_smaller_classes() {
        static ARENA: LaunchArena = LaunchArena::new();
        unsafe {
            let big = ARENA.alloc(layout(1000, 8));
            let after = ARENA.alloc(layout(16, 8));
            ARENA.dealloc(big, layout(1000, 8));
            let used = ARENA.next.load(Ordering::Relaxed);
            // A 1024-byte block serves 64 bytes and keeps 64, 128, 256 and 512 in their classes.
            let a = ARENA.alloc(layout(64, 8));
            assert_eq!(a, big);
            assert_eq!(ARENA.alloc(layout(60, 4)), big.add(64));
            assert_eq!(ARENA.alloc(layout(100, 8)), big.add(128));
            assert_eq!(ARENA.alloc(layout(256, 16)), big.add(256));
            assert_eq!(ARENA.alloc(layout(400, 8)), big.add(512));
            assert_eq!(
                ARENA.next.load(Ordering::Relaxed),
                used,
                "nothing new was used"
            );
            // All of it is handed out now: the next block is new.
            let fresh = ARENA.alloc(layout(64, 8));
            assert!(fresh as usize >= after as usize + 16);
            // A large block freed while not the newest is reused in whole 4 KiB pieces.
            let large = ARENA.alloc(layout(3 * CLASS_MAX + 100, 8));
            let newest = ARENA.alloc(layout(16, 8));
            ARENA.dealloc(large, layout(3 * CLASS_MAX + 100, 8));
            let pieces: Vec<_> = (0..3).map(|_| ARENA.alloc(layout(CLASS_MAX, 16))).collect();
            let mut expected: Vec<_> = (0..3).map(|i| large.add(i * CLASS_MAX)).collect();
            expected.reverse();
            assert_eq!(pieces, expected);
            assert!(ARENA.alloc(layout(CLASS_MAX, 16)) as usize > newest as usize);
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
            // A malloc'd block shrinking into a class stays valid wherever it lands.
            let small = ARENA.realloc(moved, layout(2 * ARENA_SIZE, 1), 10);
            assert_eq!(std::slice::from_raw_parts(small, 10), [7; 10]);
            ARENA.dealloc(small, layout(10, 1));
            ARENA.dealloc(outside, layout(200, 8));
            ARENA.dealloc(aligned, layout(200, 256));
        }
    }

    #[test]
    fn threads_get_disjoint_blocks() {
        static ARENA: LaunchArena = LaunchArena::new();
        let threads: Vec<_> = (0u8..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..2000 {
                        let size = 8 + (i % 5) * 24;
                        let p = unsafe { ARENA.alloc(layout(size, 8)) };
                        unsafe { p.write_bytes(t, size) };
                        if i % 3 == 0 {
                            unsafe { ARENA.dealloc(p, layout(size, 8)) };
                        } else {
                            kept.push((p as usize, size));
                        }
                    }
                    (t, kept)
                })
            })
            .collect();
        for handle in threads {
            let (t, kept) = handle.join().unwrap();
            for (p, size) in kept {
                let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, size) };
                assert!(
                    bytes.iter().all(|&b| b == t),
                    "a block was shared between threads"
                );
            }
        }
    }
}
