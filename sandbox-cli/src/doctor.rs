//! `sandbox doctor`: what this host supports and which layers each built-in policy gets.
//!
//! Everything shown is probed by `sandbox_core::probe_host` (a real `clone` with the
//! sandbox's namespaces, the Landlock ABI syscall, `SECCOMP_GET_ACTION_AVAIL`, the cgroup
//! mounts) or compiled by `sandbox_core::check_policy` (a dry run of every layer that creates
//! no process and no cgroup). Nothing is inferred from the kernel version.
//!
//! Exit code: 0 when the `default` policy can run on this host as it is (its own isolation
//! mode; from a temporary working directory if the current one may not be shared), else 1.
//!
//! `--json` prints one object:
//! - `kernel`, `machine` (`uname -r`, `-m`, display only), `euid`;
//! - `user_namespaces`: `available`, `namespaces` (names that could be created), `errno`,
//!   `why_not`, `sysctls` (name → value);
//! - `landlock`: `abi` (null when missing), `why_not`, `used_up_to`, `levels`
//!   (`[{abi, linux, adds, available}]`);
//! - `seccomp`: `available`, `why_not`, `this_process` (`disabled`/`strict`/`filter`),
//!   `actions` (`[{name, available}]`, `available` null when it could not be asked);
//! - `cgroups`: `version`, `own_cgroup`, `controllers`, `usable`, `why_not`, `hint`;
//! - `policies`: `[{name, runnable, error, layers: [{layer, status, detail}], cwd, cwd_note,
//!   landlock_isolation}]`, where `cwd_note` says why a temporary working directory was used
//!   and `landlock_isolation` (the same shape without `name`/`cwd`) is the check with
//!   `--isolation landlock`, present when user namespaces are unavailable;
//! - `default_runnable`, `exit_code`.

use std::fmt::Write as _;
use std::path::PathBuf;

use sandbox_core::{
    check_policy, probe_host, Environment, HostReport, Isolation, LayerStatus, Overrides, Policy,
    PolicyCheck, PolicyError,
};
use serde_json::{json, Value};

/// One built-in policy checked on this host.
struct PolicyEntry {
    name: &'static str,
    /// The working directory `${CWD}` resolved to.
    cwd: Option<PathBuf>,
    /// Why a temporary working directory stood in for the real one.
    cwd_note: Option<String>,
    check: PolicyCheck,
    /// With `--isolation landlock`, when user namespaces are unavailable.
    landlock_isolation: Option<PolicyCheck>,
}

struct Report {
    host: HostReport,
    policies: Vec<PolicyEntry>,
}

impl Report {
    fn default_runnable(&self) -> bool {
        self.policies
            .iter()
            .any(|p| p.name == "default" && p.check.runnable)
    }

    fn exit_code(&self) -> i32 {
        if self.default_runnable() {
            0
        } else {
            1
        }
    }
}

pub(crate) fn doctor(json: bool) -> i32 {
    let host = probe_host();
    let scratch = Scratch::default();
    let env = Environment::from_process();
    let policies = Policy::builtin_names()
        .iter()
        .map(|name| check_builtin(name, &host, &env, &scratch))
        .collect();
    let report = Report { host, policies };
    if json {
        println!("{}", to_json(&report));
    } else {
        print!("{}", render(&report));
    }
    report.exit_code()
}

/// A temporary working directory, made on first use and removed on drop.
#[derive(Default)]
struct Scratch(std::cell::OnceCell<Option<PathBuf>>);

impl Scratch {
    fn get(&self) -> Option<&PathBuf> {
        self.0
            .get_or_init(|| {
                let dir =
                    std::env::temp_dir().join(format!("sandbox-doctor-{}", std::process::id()));
                std::fs::create_dir(&dir).ok().map(|()| dir)
            })
            .as_ref()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(Some(dir)) = self.0.get() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn check_builtin(
    name: &'static str,
    host: &HostReport,
    env: &Environment,
    scratch: &Scratch,
) -> PolicyEntry {
    let failed = |error: String| PolicyEntry {
        name,
        cwd: env.cwd.clone(),
        cwd_note: None,
        check: PolicyCheck {
            runnable: false,
            error: Some(error),
            layers: Vec::new(),
        },
        landlock_isolation: None,
    };
    let policy = match Policy::load(name) {
        Ok(p) => p,
        Err(e) => return failed(e.to_string()),
    };
    let landlock = Overrides {
        isolation: Some("landlock".into()),
        ..Overrides::default()
    };
    let mut env = env.clone();
    let mut cwd_note = env
        .cwd
        .is_none()
        .then(|| "the working directory cannot be determined".to_string());
    let mut resolved = policy.resolve(&Overrides::default(), &env);
    if cwd_note.is_some() || matches!(resolved, Err(PolicyError::WorkingDirectory { .. })) {
        if let Err(PolicyError::WorkingDirectory { path, reason, .. }) = &resolved {
            cwd_note.get_or_insert_with(|| format!("{}: {reason}", path.display()));
        }
        if let Some(dir) = scratch.get() {
            env.cwd = Some(dir.clone());
            resolved = policy.resolve(&Overrides::default(), &env);
        }
    }
    let resolved = match resolved {
        Ok(p) => p,
        Err(e) => {
            return PolicyEntry {
                cwd_note,
                ..failed(e.to_string())
            }
        }
    };
    let check = check_policy(&resolved, host);
    let landlock_isolation = (resolved.isolation == Isolation::Namespaces
        && !host.user_namespaces.available)
        .then(|| match policy.resolve(&landlock, &env) {
            Ok(p) => check_policy(&p, host),
            Err(e) => PolicyCheck {
                runnable: false,
                error: Some(e.to_string()),
                layers: Vec::new(),
            },
        });
    PolicyEntry {
        name,
        cwd: env.cwd.clone(),
        cwd_note,
        check,
        landlock_isolation,
    }
}

fn check_json(check: &PolicyCheck) -> Value {
    serde_json::to_value(check).unwrap_or(Value::Null)
}

fn to_json(report: &Report) -> Value {
    let mut v = serde_json::to_value(&report.host).unwrap_or_else(|_| json!({}));
    let policies: Vec<Value> = report
        .policies
        .iter()
        .map(|p| {
            let mut entry = check_json(&p.check);
            if let Value::Object(m) = &mut entry {
                m.insert("name".into(), json!(p.name));
                m.insert("cwd".into(), json!(p.cwd));
                m.insert("cwd_note".into(), json!(p.cwd_note));
                m.insert(
                    "landlock_isolation".into(),
                    p.landlock_isolation
                        .as_ref()
                        .map_or(Value::Null, check_json),
                );
            }
            entry
        })
        .collect();
    if let Value::Object(m) = &mut v {
        m.insert("policies".into(), Value::Array(policies));
        m.insert("default_runnable".into(), json!(report.default_runnable()));
        m.insert("exit_code".into(), json!(report.exit_code()));
    }
    v
}

/// The label column of the human output.
const W: usize = 17;

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn render(report: &Report) -> String {
    let h = &report.host;
    let mut o = String::new();
    let pad = " ".repeat(W);
    let _ = writeln!(
        o,
        "sandbox doctor: linux {} {}, euid {}\n",
        h.kernel, h.machine, h.euid
    );

    // User namespaces.
    let u = &h.user_namespaces;
    if u.available {
        let _ = writeln!(
            o,
            "{:W$}yes: {}",
            "user namespaces",
            u.namespaces.join(", ")
        );
    } else {
        let _ = writeln!(
            o,
            "{:W$}no: clone refused ({}): {}",
            "user namespaces",
            u.errno.as_deref().unwrap_or("?"),
            u.why_not.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(
            o,
            "{pad}without them, --isolation landlock still gives Landlock + seccomp + rlimits"
        );
    }
    if !u.sysctls.is_empty() {
        let s: Vec<String> = u
            .sysctls
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        let _ = writeln!(o, "{pad}{}", s.join(", "));
    }

    // Landlock.
    let l = &h.landlock;
    match l.abi {
        Some(abi) => {
            let _ = writeln!(
                o,
                "{:W$}ABI {abi} (the sandbox uses up to {})",
                "landlock", l.used_up_to
            );
        }
        None => {
            let _ = writeln!(
                o,
                "{:W$}no: {}",
                "landlock",
                l.why_not.as_deref().unwrap_or("unknown")
            );
        }
    }
    for level in &l.levels {
        let _ = writeln!(
            o,
            "{pad}{:3}  ABI {}  linux {:5}  {}",
            yes(level.available),
            level.abi,
            level.linux,
            level.adds
        );
    }

    // seccomp.
    let s = &h.seccomp;
    if s.available {
        let _ = writeln!(
            o,
            "{:W$}yes (this process: {})",
            "seccomp",
            s.this_process.unwrap_or("unknown")
        );
    } else {
        let _ = writeln!(
            o,
            "{:W$}no: {}",
            "seccomp",
            s.why_not.as_deref().unwrap_or("unknown")
        );
    }
    let pick = |want: Option<bool>| -> Vec<&str> {
        s.actions
            .iter()
            .filter(|a| a.available == want)
            .map(|a| a.name)
            .collect()
    };
    for (label, want) in [
        ("actions", Some(true)),
        ("missing", Some(false)),
        ("not probed", None),
    ] {
        let names = pick(want);
        if !names.is_empty() {
            let _ = writeln!(o, "{pad}{label}: {}", names.join(" "));
        }
    }

    // cgroups.
    let c = &h.cgroups;
    let own = c
        .own_cgroup
        .as_ref()
        .map_or("unknown".to_string(), |p| p.display().to_string());
    let _ = writeln!(
        o,
        "{:W$}{}, own cgroup {own}, controllers: {}",
        "cgroups",
        c.version,
        if c.controllers.is_empty() {
            "none".to_string()
        } else {
            c.controllers.join(" ")
        }
    );
    if c.usable {
        let _ = writeln!(o, "{pad}memory, cpu and pids limits usable by this user");
    } else {
        let _ = writeln!(
            o,
            "{pad}limits not usable: {}",
            c.why_not.as_deref().unwrap_or("unknown")
        );
        if let Some(hint) = c.hint {
            let _ = writeln!(o, "{pad}hint: {hint}");
        }
    }

    // Policies.
    let _ = writeln!(o);
    let cwds: Vec<&PathBuf> = report
        .policies
        .iter()
        .filter_map(|p| p.cwd.as_ref())
        .collect();
    match cwds.first() {
        Some(cwd) if cwds.iter().all(|c| c == cwd) => {
            let _ = writeln!(o, "policies (dry run, working directory {})", cwd.display());
        }
        _ => {
            let _ = writeln!(o, "policies (dry run)");
        }
    }
    let notes: Vec<&str> = report
        .policies
        .iter()
        .filter_map(|p| p.cwd_note.as_deref())
        .collect();
    if let Some(note) = notes.first() {
        let _ = writeln!(
            o,
            "  the working directory may not be shared ({note}): checked with a temporary one"
        );
    }
    let mut seen = Vec::new();
    for p in &report.policies {
        let label = format!("  {:w$} ", p.name, w = W - 3);
        let _ = write!(o, "{}", render_check(p.name, &label, &p.check, &mut seen));
        if let Some(fallback) = &p.landlock_isolation {
            let label = format!("{pad}with --isolation landlock: ");
            let _ = write!(o, "{}", render_check(p.name, &label, fallback, &mut seen));
        }
    }
    let _ = writeln!(
        o,
        "\n{}",
        if report.default_runnable() {
            "the default policy can run here (exit 0)"
        } else {
            "the default policy cannot run here (exit 1)"
        }
    );
    o
}

/// The first line of a policy: `  NAME           ok  layer status, …`.
fn head_line(check: &PolicyCheck) -> String {
    let layers: Vec<String> = check
        .layers
        .iter()
        .map(|l| format!("{} {}", l.layer, status_word(&l.status)))
        .collect();
    let verdict = if check.runnable { "ok" } else { "no" };
    format!("{verdict:4}{}", layers.join(", "))
        .trim_end()
        .to_string()
}

/// A policy's check: the head line after `label`, then one line per partial or unavailable
/// layer and for the error. A detail already printed for an earlier policy (`seen`) is
/// shortened to "as above", so a host problem shared by every policy is told once.
fn render_check(
    name: &str,
    label: &str,
    check: &PolicyCheck,
    seen: &mut Vec<(String, String)>,
) -> String {
    let mut o = String::new();
    let pad = " ".repeat(W + 4);
    let _ = writeln!(o, "{label}{}", head_line(check));
    let error = check.error.as_deref().unwrap_or("");
    for l in &check.layers {
        if let LayerStatus::Partial(d) | LayerStatus::Unavailable(d) = &l.status {
            // Told already, or about to be told by the error line.
            if !seen.iter().any(|(s, _)| s == d) && !error.contains(d.as_str()) {
                let _ = writeln!(o, "{pad}{}: {d}", l.layer);
                seen.push((d.clone(), name.to_string()));
            }
        }
    }
    if let Some(e) = &check.error {
        match seen.iter().find(|(s, _)| s == e) {
            Some((_, first)) => {
                let _ = writeln!(o, "{pad}error: the same as for {first}");
            }
            None => {
                let _ = writeln!(o, "{pad}error: {e}");
                seen.push((e.clone(), name.to_string()));
            }
        }
    }
    o
}

fn status_word(s: &LayerStatus) -> &'static str {
    match s {
        LayerStatus::Enforced => "enforced",
        LayerStatus::Partial(_) => "partial",
        LayerStatus::Unavailable(_) => "unavailable",
        LayerStatus::Disabled => "off",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_core::LayerReport;

    fn check(
        runnable: bool,
        layers: Vec<(&'static str, LayerStatus)>,
        error: Option<&str>,
    ) -> PolicyCheck {
        PolicyCheck {
            runnable,
            error: error.map(str::to_string),
            layers: layers
                .into_iter()
                .map(|(layer, status)| LayerReport { layer, status })
                .collect(),
        }
    }

    #[test]
    fn a_runnable_policy_lists_its_layers_on_one_line() {
        let c = check(
            true,
            vec![
                ("namespaces", LayerStatus::Enforced),
                ("seccomp", LayerStatus::Enforced),
                ("limits", LayerStatus::Disabled),
            ],
            None,
        );
        let out = render_check("default", "  default ", &c, &mut Vec::new());
        assert_eq!(
            out,
            "  default ok  namespaces enforced, seccomp enforced, limits off\n"
        );
    }

    #[test]
    fn partial_layers_and_errors_get_their_own_lines() {
        let c = check(
            false,
            vec![
                (
                    "namespaces",
                    LayerStatus::Unavailable("sysctl x = 0".into()),
                ),
                ("limits", LayerStatus::Partial("memory not enforced".into())),
            ],
            Some("user namespaces is not available"),
        );
        let mut seen = Vec::new();
        let out = render_check("agent", "  agent ", &c, &mut seen);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(
            lines[0],
            "  agent no  namespaces unavailable, limits partial"
        );
        assert!(lines[1]
            .trim_start()
            .starts_with("namespaces: sysctl x = 0"));
        assert!(lines[2]
            .trim_start()
            .starts_with("limits: memory not enforced"));
        assert!(lines[3].trim_start().starts_with("error: user namespaces"));
        // The same problems for the next policy are not told again.
        let out = render_check("build", "  build ", &c, &mut seen);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[1].trim_start() == "error: the same as for agent",
            "{out}"
        );
    }

    #[test]
    fn a_layer_detail_inside_the_error_is_not_repeated() {
        let c = check(
            false,
            vec![(
                "namespaces",
                LayerStatus::Unavailable("sysctl x = 0".into()),
            )],
            Some("user namespaces is not available: sysctl x = 0; hint: h"),
        );
        let out = render_check("default", "  default ", &c, &mut Vec::new());
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(!out.contains("namespaces: sysctl"), "{out}");
    }

    #[test]
    fn status_words_cover_every_status() {
        assert_eq!(status_word(&LayerStatus::Enforced), "enforced");
        assert_eq!(status_word(&LayerStatus::Partial(String::new())), "partial");
        assert_eq!(
            status_word(&LayerStatus::Unavailable(String::new())),
            "unavailable"
        );
        assert_eq!(status_word(&LayerStatus::Disabled), "off");
    }

    #[test]
    fn the_report_names_each_layer_and_the_exit_code_follows_default() {
        let host = probe_host();
        let entry = |name, runnable| PolicyEntry {
            name,
            cwd: Some("/w".into()),
            cwd_note: None,
            check: check(runnable, vec![("seccomp", LayerStatus::Enforced)], None),
            landlock_isolation: None,
        };
        let report = Report {
            host,
            policies: vec![entry("default", true), entry("agent", false)],
        };
        assert_eq!(report.exit_code(), 0);
        let out = render(&report);
        for label in [
            "user namespaces",
            "landlock",
            "seccomp",
            "cgroups",
            "working directory /w",
        ] {
            assert!(out.contains(label), "{label}: {out}");
        }
        assert!(out.contains("can run here (exit 0)"));
        let v = to_json(&report);
        assert_eq!(v["exit_code"], 0);
        assert_eq!(v["policies"][1]["name"], "agent");
        assert_eq!(v["policies"][1]["runnable"], false);
        assert_eq!(v["policies"][0]["layers"][0]["status"], "enforced");

        let report = Report {
            policies: vec![entry("default", false)],
            ..report
        };
        assert_eq!(report.exit_code(), 1);
        assert!(render(&report).contains("cannot run here (exit 1)"));
        assert_eq!(to_json(&report)["default_runnable"], false);
    }
}
