use sandbox_core::*;
use std::path::PathBuf;
fn main() {
    let cwd = std::env::current_dir().unwrap();
    let ro = |p: &str| PathRule {
        path: PathBuf::from(p),
        optional: true,
    };
    let policy = ResolvedPolicy {
        description: String::new(),
        isolation: if std::env::var("LL").is_ok() {
            Isolation::Landlock
        } else {
            Isolation::Namespaces
        },
        process: ResolvedProcess {
            cwd: cwd.clone(),
            env_set: vec![],
            env_pass: vec![],
            uid: None,
            gid: None,
            capabilities: vec![],
            hostname: "sandbox".into(),
        },
        filesystem: ResolvedFilesystem {
            read_only: vec![
                ro("/usr"),
                ro("/etc"),
                ro("/bin"),
                ro("/lib"),
                ro("/lib64"),
                ro("/sbin"),
            ],
            read_write: vec![PathRule {
                path: cwd,
                optional: false,
            }],
            deny: vec!["/etc/shadow".into(), "/etc/ssh".into()],
            tmpfs: vec!["/tmp".into()],
            exec: vec![],
            write_only: vec![],
        },
        network: ResolvedNetwork::default(),
        seccomp: SeccompSettings::default(),
        landlock: LandlockSettings::default(),
        limits: Limits::default(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let t = std::time::Instant::now();
    match Sandbox::new(policy)
        .command(&args[0])
        .args(&args[1..])
        .status()
    {
        Ok(o) => {
            eprintln!("exit {} in {:?}", o.exit_code(), t.elapsed());
            std::process::exit(o.exit_code())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code())
        }
    }
}
