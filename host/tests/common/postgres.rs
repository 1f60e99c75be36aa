//! A private PostgreSQL for the tests: a cluster made with the system's
//! `initdb` in a temporary directory, served by `pg_ctl` on a free
//! loopback port, one per test binary, each test on a database of its
//! own. PostgreSQL refuses to run as root, so as root the cluster runs as
//! the `postgres` system user (`runuser`). A watchdog stops the cluster
//! and removes its directory when the test binary exits.
//!
//! Missing binaries fail the test with the package to install; a test
//! never skips.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Debian's package of the server binaries.
const PACKAGE: &str = "postgresql";

/// The running cluster of this test binary.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    user: Option<&'static str>,
}

static CLUSTER: LazyLock<Cluster> = LazyLock::new(|| Cluster::start(false));
static NEXT_DB: AtomicU32 = AtomicU32::new(1);

/// A URL of a new, empty database on this binary's cluster.
pub fn database() -> String {
    CLUSTER.create_database()
}

/// This binary's cluster, for tests that stop or restart it.
pub fn cluster() -> &'static Cluster {
    &CLUSTER
}

/// The directory holding `initdb` and `pg_ctl`: the `PATH`'s, else the
/// newest of Debian's `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            // The directory the binary really lives in, which also holds
            // createdb and psql of the same version.
            if dir.join("pg_ctl").is_file()
                && let Some(bin) = std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|initdb| initdb.parent().map(PathBuf::from))
            {
                return bin;
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's initdb and pg_ctl were not found on PATH or under \
             /usr/lib/postgresql/*/bin: install Debian's `{PACKAGE}` package \
             (apt-get install {PACKAGE})"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

impl Cluster {
    /// Makes and starts a cluster; `durable` keeps fsync on (benchmarks),
    /// else it is off, as nothing here survives the machine.
    pub fn start(durable: bool) -> Cluster {
        let bin = bin_dir();
        let user = is_root().then_some("postgres");
        // As root the cluster's user must reach its directory: /tmp is
        // open to every user, whatever TMPDIR says.
        let parent = match user {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("wcp-pg-")
            .tempdir_in(parent)
            .expect("a temporary directory")
            .keep();
        if let Some(user) = user {
            let status = Command::new("chown")
                .args(["-R", user])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "cannot give {} to the `{user}` user; Debian's `{PACKAGE}` package creates it",
                dir.display()
            );
        }
        let cluster = Cluster {
            bin,
            dir,
            port: free_port(),
            user,
        };
        let data = cluster.data_dir();
        let out = cluster
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fsync = if durable { "on" } else { "off" };
        std::fs::write(
            data.join("postgresql.auto.conf"),
            format!(
                "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = ''\n\
                 fsync = {fsync}\nmax_connections = 200\nshared_buffers = '128MB'\n",
                cluster.port
            ),
        )
        .expect("writing the cluster's settings");
        cluster.watch();
        cluster.pg_ctl("start");
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `program` of the server's bin directory, run as the cluster's user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    /// Runs `pg_ctl <action>` and waits for it to finish.
    fn pg_ctl(&self, action: &str) {
        let log = self.dir.join("server.log");
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-m", "fast", action])
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl {action} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server; the cluster stays for [`Cluster::resume`].
    pub fn stop(&self) {
        self.pg_ctl("stop");
    }

    /// Starts the server again after [`Cluster::stop`].
    pub fn resume(&self) {
        self.pg_ctl("start");
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new empty database; returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!(
            "wcp_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(&name)
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    /// Runs `sql` with `psql` on the database of `url`; returns what it
    /// printed, unaligned, one row a line.
    pub fn sql(&self, url: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql failed on {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A process that outlives nothing: once this test binary has exited,
    /// it stops the server and removes the cluster's directory.
    fn watch(&self) {
        let stop = format!(
            "{} -D '{}' -m immediate -w stop",
            self.bin.join("pg_ctl").display(),
            self.data_dir().display()
        );
        let stop = match self.user {
            Some(user) => format!("runuser -u {user} -- {stop}"),
            None => stop,
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        // `setsid -f` forks the watchdog into its own session and returns.
        let started = Command::new("setsid")
            .args(["-f", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the cluster's watchdog starts");
        assert!(started.success(), "the cluster's watchdog did not start");
    }
}
