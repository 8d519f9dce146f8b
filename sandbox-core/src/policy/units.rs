//! Sizes (`"512M"`) and durations (`"10m"`): parsing and canonical formatting.

use std::time::Duration;

/// Parses `"512M"`, `"1.5G"`, `"4096"`, `"64k"`, `"2GiB"`: K, M, G, T are powers of 1024,
/// case-insensitive, optionally followed by `B` or `iB`. On error returns the reason.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty size".into());
    }
    if t.starts_with('-') {
        return Err("a size cannot be negative".into());
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "unknown size unit {unit:?} (use K, M, G or T, powers of 1024)"
            ))
        }
    };
    let value = decimal(number, 1u128 << shift).ok_or_else(|| format!("{t:?} is not a size"))?;
    u64::try_from(value).map_err(|_| "size too large".to_string())
}

/// Parses `"500ms"`, `"30s"`, `"10m"`, `"1h"`, `"1.5h"`, `"1h30m"`, `"2d"`, or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t.starts_with('-') {
        return Err("a duration cannot be negative".into());
    }
    let mut rest = t;
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(split);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "" if rest.len() == t.len() => 1_000_000_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => {
                return Err(format!(
                    "{t:?} is not a duration (use ms, s, m, h or d, as in \"30s\" or \"10m\")"
                ))
            }
        };
        let ns = decimal(number, unit_ns)
            .ok_or_else(|| format!("{t:?} is not a duration (as in \"30s\" or \"10m\")"))?;
        total_ns = total_ns.saturating_add(ns);
        rest = next;
    }
    // Ten years: anything longer is a typo, and keeps `Duration` arithmetic far from overflow.
    if total_ns > 10 * 366 * 86_400_000_000_000 {
        return Err("duration too long (more than ten years)".into());
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| "duration too long")?;
    let nanos = u32::try_from(total_ns % 1_000_000_000).map_err(|_| "duration too long")?;
    Ok(Duration::new(secs, nanos))
}

/// `number * unit`, where `number` is `123` or `1.5` (digits only), rounded down.
fn decimal(number: &str, unit: u128) -> Option<u128> {
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if int.len() > 24 || frac.len() > 18 {
        return None;
    }
    let int_value: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut value = int_value.checked_mul(unit)?;
    if !frac.is_empty() {
        let frac_value: u128 = frac.parse().ok()?;
        let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        value = value.checked_add(frac_value.checked_mul(unit)? / scale)?;
    }
    Some(value)
}

/// The shortest exact spelling of `bytes`: `"512M"`, `"1536K"`, `"1000"`.
pub(crate) fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes != 0 && bytes % (1u64 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// An exact spelling of `duration`: `"10m"`, `"90s"`, `"1500ms"`.
pub(crate) fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    let secs = duration.as_secs();
    // Sub-millisecond precision is not expressible in a policy: rounds down to milliseconds.
    if duration.subsec_nanos() != 0 {
        format!("{ms}ms")
    } else if secs != 0 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs != 0 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}
