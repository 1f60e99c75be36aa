//! Where the cores go during a phase's window: CPU time of the server and of
//! the load generator, read from `/proc/<pid>/stat` at the window's start
//! and end (Linux only; elsewhere the figures are absent).
//!
//! Both run on the same machine, so a server's ceiling depends on what the
//! load generator leaves it: these figures show, per request, what each side
//! spent, and so how far a server is from the cost of the bare handler.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::load::Window;

/// CPU used during one window.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// By the server process, all threads.
    pub server: Duration,
    /// By this process: the load generator.
    pub load: Duration,
    /// The window's length.
    pub window: Duration,
}

impl CpuUse {
    /// One line: cores busy and microseconds per request for each side.
    pub fn describe(&self, requests: u64) -> String {
        let cores = |used: Duration| used.as_secs_f64() / self.window.as_secs_f64();
        let per_request = |used: Duration| {
            if requests == 0 {
                0.0
            } else {
                used.as_secs_f64() * 1e6 / requests as f64
            }
        };
        format!(
            "server {:.2} cores ({:.0} µs/request), load generator {:.2} cores ({:.0} µs/request)",
            cores(self.server),
            per_request(self.server),
            cores(self.load),
            per_request(self.load)
        )
    }
}

/// Reads the CPU time of `server` and of this process over `window`, in the
/// background: await the handle after the phase.
pub fn measure(server: u32, window: Window) -> JoinHandle<Option<CpuUse>> {
    tokio::spawn(async move {
        tokio::time::sleep_until(window.start.into()).await;
        let server_before = cpu_time(server)?;
        let load_before = cpu_time(std::process::id())?;
        tokio::time::sleep_until(window.end.into()).await;
        let server_after = cpu_time(server)?;
        let load_after = cpu_time(std::process::id())?;
        Some(CpuUse {
            server: server_after.saturating_sub(server_before),
            load: load_after.saturating_sub(load_before),
            window: window.end - window.start,
        })
    })
}

/// User plus system CPU time of process `pid`, all threads.
#[cfg(target_os = "linux")]
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, is in parentheses and may hold spaces;
    // utime and stime are fields 14 and 15, the 12th and 13th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|&t| t > 0)?;
    Some(Duration::from_secs_f64(
        (user + system) as f64 / ticks as f64,
    ))
}

#[cfg(not(target_os = "linux"))]
fn cpu_time(_pid: u32) -> Option<Duration> {
    None
}
