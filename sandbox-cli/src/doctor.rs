//! `sandbox doctor`: what this host supports (filled in as the layers land).

pub(crate) fn doctor(_json: bool) -> i32 {
    0
}
