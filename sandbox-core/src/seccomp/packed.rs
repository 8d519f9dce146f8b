//! The syscall tables and the built-in profiles' verdicts, resolved by the compiler.
//!
//! `tables.rs` and `profile.rs` are lists of names, readable and diffable. A launch used to
//! turn them into a 400-entry name map every time (~20 KiB of allocations and hashing), and
//! the lists themselves, being `&str` slices, were ~1,000 pointers that a static-PIE binary
//! relocates at start-up (six pages written before `main`). Here `const fn`s resolve them once,
//! at build time, into tables without pointers: every name's bytes in one array, and per entry
//! its end offset, its number and its [`Class`]. The source lists are `const`, so nothing of
//! them reaches the binary except through these tables.

use super::{profile, tables};

/// What the built-in profiles say about one syscall, before the policy's settings decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Not in the allowlist: denied.
    Denied,
    /// Allowed by `default` and `strict`.
    Allowed,
    /// Allowed unless `strict`, or unless no pid namespace confines it
    /// ([`profile::CROSS_PROCESS`]).
    CrossProcess,
    /// Allowed unless `strict` ([`profile::STRICT_DROPS`]).
    StrictDrop,
    /// `ENOSYS`, so libc falls back ([`profile::NOT_IMPLEMENTED`]).
    NotImplemented,
    /// Decided by an argument check (`clone`/`unshare`).
    NamespaceFlags,
    /// Decided by an argument check.
    Ioctl,
    /// Decided by an argument check.
    Personality,
    /// Decided by an argument check.
    Socket,
}

/// One architecture's table, pointer-free: `N` entries, `B` bytes of names.
pub(super) struct Packed<const N: usize, const B: usize> {
    names: [u8; B],
    ends: [u16; N],
    numbers: [u16; N],
    classes: [Class; N],
}

/// A [`Packed`] table without its sizes in the type.
#[derive(Clone, Copy)]
pub(super) struct Table {
    names: &'static [u8],
    ends: &'static [u16],
    numbers: &'static [u16],
    classes: &'static [Class],
}

impl<const N: usize, const B: usize> Packed<N, B> {
    pub(super) const fn table(&'static self) -> Table {
        Table {
            names: &self.names,
            ends: &self.ends,
            numbers: &self.numbers,
            classes: &self.classes,
        }
    }
}

impl Table {
    /// `(name, number, class)` of every entry, in number order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&'static [u8], u32, Class)> + '_ {
        let names = self.names;
        self.ends.iter().zip(self.numbers).zip(self.classes).scan(
            0usize,
            move |start, ((end, number), class)| {
                let end = usize::from(*end);
                let name = names.get(*start..end).unwrap_or_default();
                *start = end;
                Some((name, u32::from(*number), *class))
            },
        )
    }

    /// Whether the table has a syscall called `name`.
    pub(super) fn knows(&self, name: &str) -> bool {
        self.entries().any(|(n, _, _)| n == name.as_bytes())
    }

    /// The highest syscall number in the table.
    pub(super) fn highest(&self) -> u32 {
        self.numbers.iter().copied().max().map_or(0, u32::from)
    }
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn listed(list: &[&str], name: &str) -> bool {
    let mut i = 0;
    while i < list.len() {
        if same(list[i], name) {
            return true;
        }
        i += 1;
    }
    false
}

/// The class of `name`, with the precedence the profiles are defined by: the allowlist, minus
/// the cross-process and strict drops, then `ENOSYS`, then the argument rules.
const fn class_of(name: &str) -> Class {
    if same(name, "clone") || same(name, "unshare") {
        Class::NamespaceFlags
    } else if same(name, "ioctl") {
        Class::Ioctl
    } else if same(name, "personality") {
        Class::Personality
    } else if same(name, "socket") {
        Class::Socket
    } else if listed(profile::NOT_IMPLEMENTED, name) {
        Class::NotImplemented
    } else if !listed(profile::DEFAULT_ALLOW, name) {
        Class::Denied
    } else if listed(profile::CROSS_PROCESS, name) {
        Class::CrossProcess
    } else if listed(profile::STRICT_DROPS, name) {
        Class::StrictDrop
    } else {
        Class::Allowed
    }
}

const fn names_len(table: &[(&str, u32)]) -> usize {
    let mut total = 0;
    let mut i = 0;
    while i < table.len() {
        total += table[i].0.len();
        i += 1;
    }
    total
}

const fn pack<const N: usize, const B: usize>(table: &[(&str, u32)]) -> Packed<N, B> {
    assert!(table.len() == N && names_len(table) == B && B <= u16::MAX as usize);
    let mut packed = Packed {
        names: [0; B],
        ends: [0; N],
        numbers: [0; N],
        classes: [Class::Denied; N],
    };
    let mut offset = 0;
    let mut i = 0;
    while i < N {
        let (name, number) = table[i];
        let bytes = name.as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            packed.names[offset] = bytes[j];
            offset += 1;
            j += 1;
        }
        assert!(number <= u16::MAX as u32);
        packed.ends[i] = offset as u16;
        packed.numbers[i] = number as u16;
        packed.classes[i] = class_of(name);
        i += 1;
    }
    packed
}

pub(super) static X86_64: Packed<{ tables::X86_64.len() }, { names_len(tables::X86_64) }> =
    pack(tables::X86_64);

pub(super) static AARCH64: Packed<{ tables::AARCH64.len() }, { names_len(tables::AARCH64) }> =
    pack(tables::AARCH64);

/// The argument rules the profile lists, as classes (checked against `profile::ARGUMENT_RULES`
/// by the tests).
#[cfg(test)]
pub(super) fn class_of_name(name: &str) -> Class {
    class_of(name)
}
