//! A small probe run inside sandboxes by the integration tests: each subcommand tries one
//! thing and reports what it saw. Exit 0 = the attempt succeeded, 1 = it failed (errno
//! printed), 2 = bad usage.

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn report(ret: i64) -> i32 {
    if ret < 0 {
        println!("errno {}", errno());
        1
    } else {
        println!("ok {ret}");
        0
    }
}

fn io_report<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => {
            println!("ok");
            0
        }
        Err(e) => {
            println!("errno {} ({e})", e.raw_os_error().unwrap_or(0));
            1
        }
    }
}

fn syscall(name: &str) -> i32 {
    // SAFETY: each call passes valid or null pointers; the probe only reports the result.
    unsafe {
        let r: i64 = match name {
            "unshare-user" => libc::unshare(libc::CLONE_NEWUSER) as i64,
            "unshare-net" => libc::unshare(libc::CLONE_NEWNET) as i64,
            "keyctl" => libc::syscall(libc::SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0),
            "add_key" => libc::syscall(
                libc::SYS_add_key,
                c"user".as_ptr(),
                c"probe".as_ptr(),
                c"x".as_ptr(),
                1,
                -3,
            ),
            "bpf" => libc::syscall(libc::SYS_bpf, 0, 0, 0),
            "perf_event_open" => libc::syscall(libc::SYS_perf_event_open, 0, 0, -1, -1, 0),
            // UFFD_USER_MODE_ONLY (1): allowed unprivileged even with
            // vm.unprivileged_userfaultfd = 0, so only seccomp can refuse it.
            "userfaultfd" => libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | 1),
            "io_uring_setup" => {
                let mut params = [0u8; 120];
                libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr())
            }
            "kexec_load" => libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0),
            "init_module" => libc::syscall(libc::SYS_init_module, 0, 0, c"".as_ptr()),
            "personality-rie" => {
                let r = libc::personality(0x0400000 /* READ_IMPLIES_EXEC */) as i64;
                if r >= 0 && libc::personality(0xffffffff) as i64 & 0x0400000 != 0 {
                    r
                } else if r >= 0 {
                    -1
                } else {
                    r
                }
            }
            "clone3" => libc::syscall(libc::SYS_clone3, 0, 0),
            "fork" => {
                let pid = libc::fork();
                if pid == 0 {
                    libc::_exit(0);
                }
                if pid > 0 {
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                pid as i64
            }
            "tiocsti" => {
                let c: libc::c_char = b'x' as libc::c_char;
                libc::ioctl(0, libc::TIOCSTI, &c) as i64
            }
            "tiocsti-steal" => {
                // Leave the sandbox's session, try to make fd 0 our controlling terminal, inject.
                let sid = libc::setsid();
                let ctty = libc::ioctl(0, libc::TIOCSCTTY, 0);
                eprintln!("setsid {sid} tiocsctty {ctty} errno {}", errno());
                let c: libc::c_char = b'x' as libc::c_char;
                libc::ioctl(0, libc::TIOCSTI, &c) as i64
            }
            "socket-packet" => libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) as i64,
            "socket-inet" => libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) as i64,
            "socket-inet6" => libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0) as i64,
            "socket-unix" => libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) as i64,
            "mount-tmpfs" => libc::mount(
                c"tmpfs".as_ptr(),
                c"/tmp".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            ) as i64,
            "getpid" => libc::getpid() as i64,
            "unknown" => libc::syscall(1000),
            _ => {
                eprintln!("unknown syscall probe {name}");
                return 2;
            }
        };
        report(r)
    }
}

fn ptrace(pid: i32) -> i32 {
    // SAFETY: PTRACE_ATTACH/DETACH on a pid; result only reported.
    unsafe {
        let r = libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0);
        if r == 0 {
            libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
            libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
        }
        report(r)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let code = match arg(0).as_str() {
        "read" => match std::fs::read(arg(1)) {
            Ok(data) => {
                let _ = std::io::stdout().write_all(&data);
                0
            }
            Err(e) => {
                println!("errno {} ({e})", e.raw_os_error().unwrap_or(0));
                1
            }
        },
        "list" => io_report(std::fs::read_dir(arg(1)).map(|d| {
            for e in d.flatten() {
                println!("{}", e.file_name().to_string_lossy());
            }
        })),
        "write" => io_report(std::fs::write(arg(1), arg(2))),
        "mkdir" => io_report(std::fs::create_dir(arg(1))),
        "exists" => {
            if std::fs::symlink_metadata(arg(1)).is_ok() {
                println!("yes");
                0
            } else {
                println!("no");
                1
            }
        }
        "connect-tcp" => io_report(TcpStream::connect_timeout(
            &arg(1)
                .parse()
                .unwrap_or_else(|_| ([127, 0, 0, 1], 1).into()),
            Duration::from_secs(2),
        )),
        "connect-abstract" => {
            use std::os::linux::net::SocketAddrExt;
            io_report(
                std::os::unix::net::SocketAddr::from_abstract_name(arg(1).as_bytes())
                    .and_then(|a| UnixStream::connect_addr(&a)),
            )
        }
        "bind-tcp" => io_report(TcpListener::bind(arg(1))),
        "abstract-self" => {
            // Bind an abstract unix socket and connect to it from the same process.
            use std::os::linux::net::SocketAddrExt;
            io_report((|| {
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(arg(1).as_bytes())?;
                let _l = std::os::unix::net::UnixListener::bind_addr(&addr)?;
                UnixStream::connect_addr(&addr)
            })())
        }
        "loopback" => io_report((|| {
            let l = TcpListener::bind("127.0.0.1:0")?;
            let addr = l.local_addr()?;
            let mut c = TcpStream::connect(addr)?;
            c.write_all(b"ping")?;
            let (mut s, _) = l.accept()?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf)?;
            Ok::<_, std::io::Error>(())
        })()),
        "fds" => {
            let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            fds.sort();
            println!("{}", fds.join(" "));
            0
        }
        "status" => {
            let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            for l in s.lines() {
                if l.starts_with("Cap")
                    || l.starts_with("NoNewPrivs")
                    || l.starts_with("Seccomp:")
                    || l.starts_with("Uid")
                    || l.starts_with("Gid")
                {
                    println!("{l}");
                }
            }
            0
        }
        "euid" => {
            // SAFETY: geteuid cannot fail.
            println!("{}", unsafe { libc::geteuid() });
            0
        }
        "syscall" => syscall(&arg(1)),
        "ptrace" => ptrace(arg(1).parse().unwrap_or(0)),
        "ptrace-child" => {
            // SAFETY: fork + ptrace of our own child.
            unsafe {
                let pid = libc::fork();
                if pid == 0 {
                    libc::sleep(5);
                    libc::_exit(0);
                }
                let code = ptrace(pid);
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
                code
            }
        }
        "kill" => {
            // SAFETY: kill on integers.
            report(
                unsafe { libc::kill(arg(1).parse().unwrap_or(0), arg(2).parse().unwrap_or(0)) }
                    as i64,
            )
        }
        "alloc" => {
            let mb: usize = arg(1).parse().unwrap_or(0);
            let mut chunks = Vec::new();
            for _ in 0..mb {
                chunks.push(vec![1u8; 1 << 20]);
            }
            println!("allocated {} MiB", chunks.len());
            0
        }
        "spin" => {
            let secs: f64 = arg(1).parse().unwrap_or(1.0);
            let start = Instant::now();
            let mut x = 0u64;
            while start.elapsed().as_secs_f64() < secs {
                x = x.wrapping_add(1);
            }
            println!("{}", x & 1);
            0
        }
        "forkbomb" => {
            // Fork until refused, hold everything for a moment, report how many we got.
            // `forkbomb SECS [MAX] [MARKER]`: at most MAX children; MARKER only tags the
            // command line (children are copies of this process).
            let mut n = 0;
            let secs: u32 = arg(1).parse().unwrap_or(2);
            let max: usize = arg(2).parse().unwrap_or(100_000);
            loop {
                // SAFETY: fork; the child only sleeps and exits.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: plain sleep/_exit in the child.
                    unsafe {
                        libc::sleep(secs);
                        libc::_exit(0);
                    }
                }
                if pid < 0 {
                    break;
                }
                n += 1;
                if n >= max {
                    break;
                }
            }
            println!("forked {n}");
            0
        }
        "daemon" => {
            // Double fork + setsid + ignore SIGTERM, as a misbehaving server does.
            // SAFETY: fork/setsid/signal/sleep in a fresh process.
            unsafe {
                if libc::fork() == 0 {
                    libc::setsid();
                    if libc::fork() == 0 {
                        libc::signal(libc::SIGTERM, libc::SIG_IGN);
                        libc::signal(libc::SIGHUP, libc::SIG_IGN);
                        let marker = CString::new(arg(1)).unwrap_or_default();
                        let _ = marker;
                        loop {
                            libc::sleep(100);
                        }
                    }
                    libc::_exit(0);
                }
            }
            println!("daemonized");
            0
        }
        "ptraceable" => {
            // A helper outside the sandbox: any process of the same uid may trace it (even
            // under Yama ptrace_scope 1); says "ready", then sleeps.
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PTRACER, libc::PR_SET_PTRACER_ANY, 0, 0, 0) };
            println!("ready");
            let _ = std::io::stdout().flush();
            std::thread::sleep(Duration::from_secs_f64(arg(1).parse().unwrap_or(30.0)));
            0
        }
        "sleep" => {
            std::thread::sleep(Duration::from_secs_f64(arg(1).parse().unwrap_or(1.0)));
            0
        }
        "hostname" => {
            println!(
                "{}",
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .unwrap_or_default()
                    .trim()
            );
            0
        }
        "env" => {
            for (k, v) in std::env::vars() {
                println!("{k}={v}");
            }
            0
        }
        "exit" => arg(1).parse().unwrap_or(0),
        _ => {
            eprintln!("usage: probe <read|write|list|connect-tcp|…> ARGS");
            2
        }
    };
    std::process::exit(code);
}
