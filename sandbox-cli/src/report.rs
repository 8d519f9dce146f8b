//! The one-line summary when a limit fired, and the JSON report (`--report`).
//!
//! Report schema, version 1 (`"schema": "sandbox-report/1"`); fields are only ever added:
//! `command` (array of strings), `policy` (string), `exit_code` (the CLI's code),
//! `status` (`{"code": N}` or `{"signal": N}`: how the command itself ended),
//! `timed_out`, `oom_killed` (booleans),
//! `usage` (`wall_time_ms`, `user_cpu_ms`, `system_cpu_ms`, `peak_memory_bytes`, `peak_pids`; the
//! last two null when unknown),
//! `layers` (object: layer name → `{"status": "enforced"|"partial"|"unavailable"|"disabled", "detail": …}`),
//! `limits` (`backend`: `"cgroup2"|"cgroup1"|"rlimit"|"none"`, `cgroup`, and per limit `memory`, `swap`,
//! `cpus`, `pids`, `open_files`, `file_size`, `core`: null or `{"by": "cgroup", "file", "value"}` |
//! `{"by": "rlimit", "resource", "value", "caveat"}` | `{"by": "not_enforced", "why"}`; `degraded`).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;

use sandbox_core::{Error, Limits, Outcome};
use serde_json::{json, Map, Value};

/// A size in the policy's own units (`128M`), for messages.
fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            return if (v - v.round()).abs() < 0.05 {
                format!("{}{unit}", v.round())
            } else {
                format!("{v:.1}{unit}")
            };
        }
    }
    format!("{bytes}")
}

/// Print one line to stderr when a limit ended the sandbox.
pub(crate) fn summary(outcome: &Outcome, limits: &Limits) {
    if outcome.timed_out {
        let t = limits.timeout.map(|t| format!("{t:?}")).unwrap_or_default();
        eprintln!("sandbox: killed: timeout {t} expired (exit 124)");
    } else if outcome.oom_killed {
        let limit = limits.memory.map(human).unwrap_or_else(|| "?".into());
        let peak = outcome
            .usage
            .peak_memory
            .map(human)
            .unwrap_or_else(|| "?".into());
        eprintln!("sandbox: killed: memory limit {limit} reached (peak {peak})");
    }
}

/// The JSON report of one run.
pub(crate) fn to_json(policy: &str, command: &[OsString], outcome: &Outcome) -> Value {
    let status = match (outcome.status.code(), outcome.status.signal()) {
        (Some(c), _) => json!({ "code": c }),
        (None, Some(s)) => json!({ "signal": s }),
        _ => Value::Null,
    };
    let u = &outcome.usage;
    let mut layers = Map::new();
    for (name, status) in &outcome.layers {
        layers.insert(
            (*name).to_string(),
            serde_json::to_value(status).unwrap_or(Value::Null),
        );
    }
    json!({
        "schema": "sandbox-report/1",
        "command": command.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>(),
        "policy": policy,
        "exit_code": outcome.exit_code(),
        "status": status,
        "timed_out": outcome.timed_out,
        "oom_killed": outcome.oom_killed,
        "usage": {
            "wall_time_ms": u.wall_time.as_secs_f64() * 1e3,
            "user_cpu_ms": u.user_cpu.as_secs_f64() * 1e3,
            "system_cpu_ms": u.system_cpu.as_secs_f64() * 1e3,
            "peak_memory_bytes": u.peak_memory,
            "peak_pids": u.peak_pids,
        },
        "layers": layers,
        "limits": serde_json::to_value(&outcome.limits).unwrap_or(Value::Null),
    })
}

/// Write the report to `dest` (`-` = stderr).
pub(crate) fn write(
    dest: &str,
    policy: &str,
    command: &[OsString],
    outcome: &Outcome,
) -> Result<(), Error> {
    let text = format!("{:#}\n", to_json(policy, command, outcome));
    let result = if dest == "-" {
        std::io::stderr().write_all(text.as_bytes())
    } else {
        std::fs::write(dest, text)
    };
    result.map_err(|source| Error::Path {
        key: "--report",
        path: dest.into(),
        reason: source.to_string(),
    })
}
