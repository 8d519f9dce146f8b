//! A small classic-BPF code generator for seccomp filters.
//!
//! seccompiler emits a linear chain (5 instructions per allowed syscall, ~725 for a Docker-sized
//! allowlist), which the kernel walks for every syscall number when it builds its action cache at
//! attach time, and for every uncached syscall at run time. Here the syscall numbers are split
//! into ranges of equal decision, and the filter is a balanced binary search over the range
//! boundaries (`jge`), so any syscall number reaches its decision in ~log2(ranges) jumps. Only the
//! few syscalls with argument rules jump to a short block that inspects their arguments; every
//! other decision is a constant, which the kernel's action cache (5.11+) turns into an O(1)
//! bitmap lookup for allowed syscalls.
//!
//! Layout: `arch check; load nr; search tree; argument blocks`.

use libc::sock_filter;

// Classic BPF opcodes (linux/bpf_common.h).
const BPF_LD: u16 = 0x00;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGE: u16 = 0x30;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;

/// `offsetof(struct seccomp_data, nr)`.
const OFFSET_NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`.
const OFFSET_ARCH: u32 = 4;
/// Low 32 bits of `args[index]` (both supported architectures are little-endian).
const fn offset_arg_low(index: u32) -> u32 {
    16 + 8 * index
}

/// `BPF_MAXINSNS`: the kernel refuses longer programs.
pub(super) const MAX_INSNS: usize = 4096;

/// Every `CLONE_NEW*` flag: `clone`/`unshare` with any of them is denied.
pub(super) const CLONE_NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32
    | CLONE_NEWTIME;
/// `CLONE_NEWTIME` (5.6), not in every libc.
const CLONE_NEWTIME: u32 = 0x80;

/// ioctl requests that inject input into, or reconfigure, a terminal.
pub(super) const DENIED_IOCTLS: &[u32] = &[libc::TIOCSTI as u32, libc::TIOCLINUX as u32];

/// `personality(0xffffffff)` queries the persona without changing it.
pub(super) const PERSONALITY_QUERY: u32 = 0xffff_ffff;

/// `NETLINK_AUDIT`: talking to the audit subsystem.
const NETLINK_AUDIT: u32 = 9;

/// A syscall whose decision depends on its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Rule {
    /// `clone`/`unshare`: deny any namespace flag in `args[0]`.
    NamespaceFlags,
    /// `ioctl`: deny the requests in [`DENIED_IOCTLS`] (`args[1]`).
    Ioctl,
    /// `personality`: allow only the listed personas (`args[0]`).
    Personality,
    /// `socket`: family (`args[0]`) and netlink protocol (`args[2]`) checks.
    Socket,
}

/// What the filter does for a range of syscall numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leaf {
    /// Return this `SECCOMP_RET_*` value.
    Ret(u32),
    /// Jump to the argument block of this rule.
    Check(Rule),
}

/// Which socket families are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SocketRule {
    /// Deny `AF_PACKET`, `AF_VSOCK` and `NETLINK_AUDIT`; allow the rest (the network namespace
    /// confines `AF_INET*`).
    DenyRaw,
    /// Allow only `AF_UNIX` and netlink other than `NETLINK_AUDIT` (no network namespace and no
    /// network: `isolation = "landlock"` with `network = none`).
    UnixOnly,
}

/// Parameters of the argument blocks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    /// `SECCOMP_RET_*` for a denied call.
    pub deny: u32,
    /// Personas `personality` may set or query.
    pub personas: &'static [u32],
    /// The socket family rule.
    pub socket: SocketRule,
}

const fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

const fn ret(k: u32) -> sock_filter {
    stmt(BPF_RET | BPF_K, k)
}

const fn load(offset: u32) -> sock_filter {
    stmt(BPF_LD | BPF_W | BPF_ABS, offset)
}

/// An instruction of the search tree before the argument blocks are placed.
#[derive(Clone, Copy)]
enum Op {
    Insn(sock_filter),
    Leaf(Leaf),
}

/// Compile `ranges` — `(first syscall number, leaf)`, sorted, the first starting at 0, each
/// range ending where the next begins and the last at `u32::MAX` — into a filter for
/// `audit_arch`. Any other architecture is killed.
pub(super) fn compile(audit_arch: u32, ranges: &[(u32, Leaf)], rules: &Rules) -> Vec<sock_filter> {
    let mut tree = Vec::with_capacity(2 * ranges.len() + 8);
    search(ranges, &mut tree);

    let mut program: Vec<sock_filter> = Vec::with_capacity(tree.len() + 40);
    program.push(load(OFFSET_ARCH));
    program.push(jump(BPF_JMP | BPF_JEQ | BPF_K, audit_arch, 1, 0));
    program.push(ret(libc::SECCOMP_RET_KILL_PROCESS));
    program.push(load(OFFSET_NR));
    let tree_start = program.len();
    let blocks_start = tree_start + tree.len();

    // Place the argument blocks the tree refers to, in a fixed order.
    let mut used: Vec<Rule> = tree
        .iter()
        .filter_map(|op| match op {
            Op::Leaf(Leaf::Check(rule)) => Some(*rule),
            _ => None,
        })
        .collect();
    used.sort_unstable();
    used.dedup();
    let mut blocks = Vec::new();
    let mut block_at = Vec::with_capacity(used.len());
    for rule in &used {
        block_at.push((*rule, blocks_start + blocks.len()));
        block(*rule, rules, &mut blocks);
    }

    for (i, op) in tree.iter().enumerate() {
        let pc = tree_start + i;
        program.push(match *op {
            Op::Insn(insn) => insn,
            Op::Leaf(Leaf::Ret(k)) => ret(k),
            Op::Leaf(Leaf::Check(rule)) => {
                let target = block_at
                    .iter()
                    .find(|(r, _)| *r == rule)
                    .map_or(blocks_start, |(_, at)| *at);
                // `ja` takes a 32-bit offset; programs are far shorter than that.
                stmt(BPF_JMP | BPF_JA, (target - pc - 1) as u32)
            }
        });
    }
    program.extend_from_slice(&blocks);
    program
}

/// Emit a binary search over `ranges` (non-empty): `jge boundary` splits the ranges in two;
/// the lower half follows the jump, the upper half comes after it.
fn search(ranges: &[(u32, Leaf)], out: &mut Vec<Op>) {
    if let [(_, leaf)] = ranges {
        out.push(Op::Leaf(*leaf));
        return;
    }
    let mid = ranges.len() / 2;
    let (lower, upper) = ranges.split_at(mid);
    let boundary = upper[0].0;
    let mut left = Vec::with_capacity(2 * lower.len());
    search(lower, &mut left);
    match u8::try_from(left.len()) {
        Ok(skip) => out.push(Op::Insn(jump(BPF_JMP | BPF_JGE | BPF_K, boundary, skip, 0))),
        Err(_) => {
            // Conditional jumps reach 255 instructions: go through an unconditional `ja`.
            out.push(Op::Insn(jump(BPF_JMP | BPF_JGE | BPF_K, boundary, 0, 1)));
            out.push(Op::Insn(stmt(BPF_JMP | BPF_JA, left.len() as u32)));
        }
    }
    out.extend(left);
    search(upper, out);
}

/// Emit the argument block of `rule`. Each block ends in `ret allow` / `ret deny`; jump
/// offsets count from the next instruction.
fn block(rule: Rule, rules: &Rules, out: &mut Vec<sock_filter>) {
    let allow = libc::SECCOMP_RET_ALLOW;
    let deny = rules.deny;
    let jeq = BPF_JMP | BPF_JEQ | BPF_K;
    match rule {
        Rule::NamespaceFlags => out.extend_from_slice(&[
            load(offset_arg_low(0)),
            jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_NAMESPACE_FLAGS, 0, 1),
            ret(deny),
            ret(allow),
        ]),
        Rule::Ioctl => {
            // The kernel reads the request as `unsigned int`: the low word decides.
            out.push(load(offset_arg_low(1)));
            let n = DENIED_IOCTLS.len();
            for (i, request) in DENIED_IOCTLS.iter().enumerate() {
                out.push(jump(jeq, *request, (n - i) as u8, 0));
            }
            out.push(ret(allow));
            out.push(ret(deny));
        }
        Rule::Personality => {
            out.push(load(offset_arg_low(0)));
            let n = rules.personas.len();
            for (i, persona) in rules.personas.iter().enumerate() {
                out.push(jump(jeq, *persona, (n - i) as u8, 0));
            }
            out.push(ret(deny));
            out.push(ret(allow));
        }
        Rule::Socket => match rules.socket {
            SocketRule::DenyRaw => out.extend_from_slice(&[
                load(offset_arg_low(0)),
                jump(jeq, libc::AF_PACKET as u32, 5, 0),
                jump(jeq, libc::AF_VSOCK as u32, 4, 0),
                jump(jeq, libc::AF_NETLINK as u32, 0, 2),
                load(offset_arg_low(2)),
                jump(jeq, NETLINK_AUDIT, 1, 0),
                ret(allow),
                ret(deny),
            ]),
            SocketRule::UnixOnly => out.extend_from_slice(&[
                load(offset_arg_low(0)),
                jump(jeq, libc::AF_UNIX as u32, 3, 0),
                jump(jeq, libc::AF_NETLINK as u32, 0, 3),
                load(offset_arg_low(2)),
                jump(jeq, NETLINK_AUDIT, 1, 0),
                ret(allow),
                ret(deny),
            ]),
        },
    }
}

/// Run `program` as the kernel would on one syscall: a reference interpreter for the tests.
/// Returns the `SECCOMP_RET_*` value and the number of instructions executed.
#[cfg(test)]
pub(super) fn run(program: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> (u32, usize) {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    let mut steps = 0usize;
    loop {
        let insn = program[pc];
        steps += 1;
        pc += 1;
        match insn.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                acc = match insn.k {
                    OFFSET_NR => nr,
                    OFFSET_ARCH => arch,
                    k if (16..64).contains(&k) && k % 4 == 0 => {
                        let arg = args[((k - 16) / 8) as usize];
                        if k % 8 == 0 {
                            arg as u32
                        } else {
                            (arg >> 32) as u32
                        }
                    }
                    k => panic!("load of offset {k}"),
                }
            }
            c if c == BPF_RET | BPF_K => return (insn.k, steps),
            c if c == BPF_JMP | BPF_JA => pc += insn.k as usize,
            c if c & 0x07 == BPF_JMP => {
                let taken = match c & 0xf0 {
                    BPF_JEQ => acc == insn.k,
                    BPF_JGE => acc >= insn.k,
                    BPF_JSET => acc & insn.k != 0,
                    op => panic!("jump op {op:#x}"),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            c => panic!("opcode {c:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ioctl request as a syscall argument (`Ioctl` is `c_ulong` on glibc, `c_int` on musl).
    #[allow(clippy::unnecessary_cast)]
    fn req(request: libc::Ioctl) -> u64 {
        request as u64
    }

    const ARCH: u32 = 0xC000_003E;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const RULES: Rules = Rules {
        deny: EPERM,
        personas: &[0, PERSONALITY_QUERY],
        socket: SocketRule::DenyRaw,
    };

    #[test]
    fn search_finds_every_range() {
        // 600 alternating ranges force trampolines (left halves longer than 255 instructions).
        let ranges: Vec<(u32, Leaf)> = (0..600u32)
            .map(|i| (i * 3, Leaf::Ret(if i % 2 == 0 { ALLOW } else { EPERM + i })))
            .collect();
        let program = compile(ARCH, &ranges, &RULES);
        assert!(program.len() < 2 * 600 + 16, "{}", program.len());
        for nr in 0..1800 {
            let i = nr / 3;
            let want = if i % 2 == 0 { ALLOW } else { EPERM + i };
            let (got, steps) = run(&program, ARCH, nr, [0; 6]);
            assert_eq!(got, want, "nr {nr}");
            assert!(steps <= 4 + 2 * 11, "nr {nr} took {steps} steps");
        }
        assert_eq!(run(&program, ARCH, u32::MAX, [0; 6]).0, EPERM + 599);
    }

    #[test]
    fn foreign_arch_is_killed() {
        let program = compile(ARCH, &[(0, Leaf::Ret(ALLOW))], &RULES);
        assert_eq!(run(&program, ARCH, 0, [0; 6]).0, ALLOW);
        assert_eq!(
            run(&program, 0x4000_0003, 0, [0; 6]).0,
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }

    fn single(rule: Rule, rules: &Rules) -> Vec<sock_filter> {
        compile(ARCH, &[(0, Leaf::Check(rule))], rules)
    }

    #[test]
    fn namespace_flags_block() {
        let p = single(Rule::NamespaceFlags, &RULES);
        let sigchld = libc::SIGCHLD as u64;
        assert_eq!(run(&p, ARCH, 0, [sigchld, 0, 0, 0, 0, 0]).0, ALLOW);
        for flag in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWCGROUP,
            0x80,
        ] {
            assert_eq!(
                run(&p, ARCH, 0, [flag as u64 | sigchld, 0, 0, 0, 0, 0]).0,
                EPERM
            );
        }
    }

    #[test]
    fn ioctl_block() {
        let p = single(Rule::Ioctl, &RULES);
        assert_eq!(
            run(&p, ARCH, 0, [0, req(libc::TIOCGWINSZ), 0, 0, 0, 0]).0,
            ALLOW
        );
        assert_eq!(
            run(&p, ARCH, 0, [0, req(libc::TIOCSTI), 0, 0, 0, 0]).0,
            EPERM
        );
        assert_eq!(
            run(&p, ARCH, 0, [0, req(libc::TIOCLINUX), 0, 0, 0, 0]).0,
            EPERM
        );
        // The kernel truncates the request to 32 bits; so does the check.
        let high = (1u64 << 32) | req(libc::TIOCSTI);
        assert_eq!(run(&p, ARCH, 0, [0, high, 0, 0, 0, 0]).0, EPERM);
    }

    #[test]
    fn personality_block() {
        let p = single(Rule::Personality, &RULES);
        assert_eq!(run(&p, ARCH, 0, [0; 6]).0, ALLOW);
        assert_eq!(run(&p, ARCH, 0, [0xffff_ffff, 0, 0, 0, 0, 0]).0, ALLOW);
        assert_eq!(run(&p, ARCH, 0, [0x0040_0000, 0, 0, 0, 0, 0]).0, EPERM);
        assert_eq!(run(&p, ARCH, 0, [8, 0, 0, 0, 0, 0]).0, EPERM);
        let query_only = Rules {
            personas: &[PERSONALITY_QUERY],
            ..RULES
        };
        let p = single(Rule::Personality, &query_only);
        assert_eq!(run(&p, ARCH, 0, [0; 6]).0, EPERM);
        assert_eq!(run(&p, ARCH, 0, [0xffff_ffff, 0, 0, 0, 0, 0]).0, ALLOW);
    }

    #[test]
    fn socket_blocks() {
        let family = |f: i32, proto: i32| [f as u64, 0, proto as u64, 0, 0, 0];
        let p = single(Rule::Socket, &RULES);
        for (args, want) in [
            (family(libc::AF_UNIX, 0), ALLOW),
            (family(libc::AF_INET, 0), ALLOW),
            (family(libc::AF_INET6, 0), ALLOW),
            (family(libc::AF_NETLINK, libc::NETLINK_ROUTE), ALLOW),
            (family(libc::AF_NETLINK, libc::NETLINK_AUDIT), EPERM),
            (family(libc::AF_PACKET, 0), EPERM),
            (family(libc::AF_VSOCK, 0), EPERM),
        ] {
            assert_eq!(run(&p, ARCH, 0, args).0, want, "{args:?}");
        }
        let unix_only = Rules {
            socket: SocketRule::UnixOnly,
            ..RULES
        };
        let p = single(Rule::Socket, &unix_only);
        for (args, want) in [
            (family(libc::AF_UNIX, 0), ALLOW),
            (family(libc::AF_INET, 0), EPERM),
            (family(libc::AF_INET6, 0), EPERM),
            (family(libc::AF_NETLINK, libc::NETLINK_ROUTE), ALLOW),
            (family(libc::AF_NETLINK, libc::NETLINK_AUDIT), EPERM),
            (family(libc::AF_PACKET, 0), EPERM),
            (family(libc::AF_VSOCK, 0), EPERM),
        ] {
            assert_eq!(run(&p, ARCH, 0, args).0, want, "{args:?}");
        }
    }
}
