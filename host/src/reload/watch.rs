//! The policy directory watcher (design §6, contract §6.2).
//!
//! `notify` watches the directory recursively; its debouncer folds a burst
//! of events (a copy, a rename, an editor's save) into one, emitted once
//! the files have been quiet for [`DEBOUNCE`]. Any event wakes the reload
//! loop, which rescans the whole directory: [`PolicySet::load`] recompiles
//! only files whose content changed, so a rescan costs a read and a hash of
//! each file. A periodic rescan (`--policy-rescan`) catches what the OS
//! dropped or never reported (network file systems, overflowed queues).
//!
//! [`PolicySet::load`]: crate::policy_set::PolicySet::load

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::PolicyHost;
use super::{reload, summary};

/// How long the files must be quiet before a burst of events is acted on.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// A running directory watch; dropping it stops watching.
pub type DirWatcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// The running watcher: stop it with [`WatcherHandle::stop`].
#[derive(Debug)]
pub struct WatcherHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl WatcherHandle {
    /// Stops watching, after the reload in progress (if any) is published.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the policy watcher failed");
        }
    }
}

/// Starts watching the policy directory, loads it once (then calls
/// `on_ready` with how many policies loaded and how many failed, which is
/// when the server turns ready), then reloads on every change and every
/// `--policy-rescan` until stopped.
pub fn spawn_watcher(
    host: Arc<PolicyHost>,
    on_ready: impl FnOnce(usize, usize) + Send + 'static,
) -> WatcherHandle {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let dir = host.dir().to_owned();
        let wake = Arc::new(Notify::new());
        // Watching starts before the first load, so a file written during
        // that load is seen by the next one.
        let mut watcher = start_watching(&dir, &wake, true);

        reload(&host).await;
        let (loaded, failed) = summary(&host.load());
        on_ready(loaded, failed);

        let period = host.rescan().max(Duration::from_millis(10));
        let mut rescan = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                () = wake.notified() => {}
                _ = rescan.tick() => {
                    if watcher.is_none() {
                        watcher = start_watching(&dir, &wake, false);
                        if watcher.is_some() {
                            tracing::info!(dir = %dir.display(), "watching the policy directory");
                        }
                    }
                }
            }
            reload(&host).await;
        }
        if let Some(watcher) = watcher {
            watcher.stop_nonblocking();
        }
    });
    WatcherHandle { stop, task }
}

/// Watches `dir`, waking `wake` on every relevant batch of events. When
/// that fails (the directory is missing, the OS is out of watches), says
/// why (at `warn` the first time, `first`) and returns `None`: the periodic
/// rescan still picks changes up, and each one tries to watch again. A
/// missing directory is not created: a mistyped `--policy-dir` should not
/// leave a directory behind.
fn start_watching(dir: &Path, wake: &Arc<Notify>, first: bool) -> Option<DirWatcher> {
    let unwatched = |reason: &dyn std::fmt::Display| {
        if first {
            tracing::warn!(dir = %dir.display(), %reason, "cannot watch the policy directory; rescanning it periodically");
        } else {
            tracing::debug!(dir = %dir.display(), %reason, "still cannot watch the policy directory");
        }
    };
    if !dir.is_dir() {
        unwatched(&"it does not exist");
        return None;
    }
    let notify = Arc::clone(wake);
    let root = dir.to_owned();
    let watched = debounced(
        dir,
        RecursiveMode::Recursive,
        move |kind, paths| relevant(&root, kind, paths),
        move || notify.notify_one(),
    );
    match watched {
        Ok(debouncer) => {
            tracing::debug!(dir = %dir.display(), "watching the policy directory");
            Some(debouncer)
        }
        Err(error) => {
            unwatched(&error);
            None
        }
    }
}

/// Keeps a single file's contents current: calls `reload` (off the async
/// executor) after each change to `path` and every `period`, until
/// stopped. `reload` does its own logging and decides what a change is.
pub fn spawn_file_reloader(
    path: PathBuf,
    period: Duration,
    reload: impl Fn() + Send + Sync + 'static,
) -> WatcherHandle {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let reload = Arc::new(reload);
    // Watching starts before this returns, so no change made after it is
    // missed.
    let wake = Arc::new(Notify::new());
    let notify = Arc::clone(&wake);
    let mut watcher = watch_file(&path, move || notify.notify_one());
    let task = tokio::spawn(async move {
        let period = period.max(Duration::from_millis(10));
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                () = wake.notified() => {}
                _ = poll.tick() => {}
            }
            let reload = Arc::clone(&reload);
            if let Err(error) = tokio::task::spawn_blocking(move || reload()).await {
                tracing::error!(path = %path.display(), %error, "re-reading the file failed");
            }
        }
        if let Some(watcher) = watcher.take() {
            watcher.stop_nonblocking();
        }
    });
    WatcherHandle { stop, task }
}

/// Watches the single file `path` through its directory (so an editor's
/// or a deploy tool's rename into place is seen too), calling `changed`
/// after each debounced batch of events that touches it. `None` when the
/// directory cannot be watched; the caller should poll instead.
pub fn watch_file(path: &Path, changed: impl Fn() + Send + 'static) -> Option<DirWatcher> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name()?.to_owned();
    let touches = move |kind: &EventKind, paths: &[PathBuf]| {
        !matches!(kind, EventKind::Access(_))
            && (paths.is_empty()
                || paths
                    .iter()
                    .any(|p| p.file_name() == Some(name.as_os_str())))
    };
    match debounced(&dir, RecursiveMode::NonRecursive, touches, changed) {
        Ok(debouncer) => Some(debouncer),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot watch the file; re-reading it periodically");
            None
        }
    }
}

/// Watches `dir`, calling `changed` after each debounced batch with an
/// event that `wanted` keeps, and after a watch error (events may have
/// been lost, so the caller should look again).
fn debounced(
    dir: &Path,
    mode: RecursiveMode,
    wanted: impl Fn(&EventKind, &[PathBuf]) -> bool + Send + 'static,
    changed: impl Fn() + Send + 'static,
) -> notify::Result<DirWatcher> {
    let watched = dir.display().to_string();
    let handler = move |result: DebounceEventResult| match result {
        Ok(events) => {
            if events
                .iter()
                .any(|event| wanted(&event.event.kind, &event.event.paths))
            {
                changed();
            }
        }
        Err(errors) => {
            for error in errors {
                tracing::warn!(dir = %watched, %error, "watch error; looking again");
            }
            changed();
        }
    };
    let mut debouncer = new_debouncer(DEBOUNCE, None, handler)?;
    debouncer.watch(dir, mode)?;
    Ok(debouncer)
}

/// Whether an event may change the policy set: anything but a read, on
/// anything but a hidden file (uploads write hidden temp files, then rename
/// them into place, and the rename is what counts).
fn relevant(root: &Path, kind: &EventKind, paths: &[PathBuf]) -> bool {
    if matches!(kind, EventKind::Access(_)) {
        return false;
    }
    paths.is_empty()
        || paths.iter().any(|path| {
            path == root
                || !path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with('.'))
        })
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, ModifyKind, RenameMode};

    use super::*;

    #[test]
    fn reads_and_hidden_temp_files_do_not_wake_the_reloader() {
        let root = Path::new("/p");
        let wasm = PathBuf::from("/p/global/a.wasm");
        let temp = PathBuf::from("/p/global/.a.wasm.x1.tmp");
        let create = EventKind::Create(CreateKind::File);
        assert!(relevant(root, &create, std::slice::from_ref(&wasm)));
        assert!(!relevant(root, &create, std::slice::from_ref(&temp)));
        assert!(!relevant(
            root,
            &EventKind::Access(AccessKind::Any),
            std::slice::from_ref(&wasm)
        ));
        // The rename of a temp file into place names both paths.
        assert!(relevant(
            root,
            &EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &[temp, wasm]
        ));
        // A rescan request from the OS carries no path.
        assert!(relevant(root, &EventKind::Other, &[]));
    }
}
