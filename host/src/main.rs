//! The `wcp` binary: everything lives in the library; see `host::cli`.

/// mimalloc instead of glibc's malloc: the request path allocates a great
/// deal (JSON, audit entries, policy input), and the HTTP bench spent
/// about 10% less CPU per request with it (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mimalloc.h`. The Rust binding
/// names v2's numbering, so `libmimalloc-sys` is pinned exactly and the id
/// is checked by a test below.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps resident memory down once policies are compiled, which allocates
/// and frees a great deal. With mimalloc's defaults, a start compiling 100
/// policies stayed at 183 MiB once idle (design §10 allows 150):
/// - freed memory goes back to the system at once, not a second later;
/// - no transparent huge pages: mimalloc asks for them on its arenas, and
///   one touched byte then makes 2 MiB resident.
///
/// mimalloc read its options when the process loaded, so an option's
/// `MIMALLOC_*` variable, when set, still wins.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: this stores one option value, before any other thread
        // exists.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and
        // changes nothing but this process's huge-page setting. Its
        // failure (an old kernel) leaves the default, which is harmless.
        #[allow(unsafe_code)]
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    host::cli::main(std::env::args_os())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_id_is_mimallocs() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // mimalloc v3 delays purges by 1,000 ms by default; no other option
        // defaults to 1,000, so a wrong id reads something else.
        #[allow(unsafe_code)]
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(before, 1000);
    }
}
