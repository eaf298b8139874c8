//! This process's open-file limit: raised to the hard limit at start, and read to decide
//! how many sessions one process may hold.

/// Open files kept free for everything that is not a session (HTTP pool, stdio, the
/// runtime, /proc reads).
pub const FD_RESERVE: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; the soft limit in force after.
pub fn raise_nofile() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("could not raise the open-file limit: {e}");
            nofile_soft()
        }
    }
}

/// The soft `RLIMIT_NOFILE` (a large number where there is none).
pub fn nofile_soft() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _hard)| soft)
        .unwrap_or(u64::MAX)
}

/// Sessions one process may hold under its file limit.
pub fn sessions_per_process() -> u64 {
    nofile_soft().saturating_sub(FD_RESERVE).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_only_goes_up() {
        let before = nofile_soft();
        let after = raise_nofile();
        assert!(after >= before);
        assert_eq!(nofile_soft(), after);
        assert!(sessions_per_process() >= 1);
    }
}
