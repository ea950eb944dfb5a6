//! A throwaway PostgreSQL server for one test: `initdb` in a temp dir, the server listening
//! only on a private unix socket in that dir (no TCP port), trust auth for one user, stopped
//! and removed on drop. Debian's `postgresql` package provides the binaries
//! (`scripts/deps.sh test` installs it). PostgreSQL refuses to run as root: as root, the
//! server runs as `nobody` through `runuser`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Postgres {
    dir: tempfile::TempDir,
    server: Child,
    /// `postgres://cardbench@%2F…/postgres`: the socket dir as the URL's host.
    pub url: String,
}

/// The newest installed server's bin folder (Debian keeps them per major version).
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run `bash scripts/deps.sh` or `apt-get install postgresql`")
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("no /usr/lib/postgresql/<version>/bin/initdb: install the postgresql package").1
}

fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    // SAFETY-free: read it from /proc rather than link libc for one number.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(u32::MAX)
}

/// `prog args…`, as `nobody` when we are root.
fn as_server_user(prog: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(prog);
        c
    } else {
        Command::new(prog)
    }
}

fn chown_nobody(p: &Path) {
    if is_root() {
        let ok = Command::new("chown").args(["-R", "nobody:nogroup"]).arg(p).status().unwrap().success();
        assert!(ok, "chown {}", p.display());
    }
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        // Short path: a unix socket path has at most 107 bytes.
        let dir = tempfile::Builder::new().prefix("cbpg").tempdir_in("/tmp").unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        chown_nobody(dir.path());
        let out = as_server_user(&bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "cardbench", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let server = as_server_user(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=40"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let host: String = dir.path().to_str().unwrap().replace('/', "%2F");
        let url = format!("postgres://cardbench@{host}/postgres");
        let mut pg = Postgres { dir, server, url };
        pg.wait_ready(&bin);
        pg
    }

    /// Until the server accepts connections (pg_isready answers 0), or it died.
    fn wait_ready(&mut self, bin: &Path) {
        loop {
            if let Some(status) = self.server.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
                panic!("postgres exited ({status}) before it was ready:\n{log}");
            }
            let ready = Command::new(bin.join("pg_isready"))
                .arg("-h")
                .arg(self.dir.path())
                .args(["-U", "cardbench", "-d", "postgres", "-q"])
                .status()
                .unwrap();
            if ready.success() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// A fresh database on this server, and its URL.
    pub fn database(&self, name: &str) -> String {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        self.url.replace("/postgres", &format!("/{name}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT to the postmaster itself ("fast" shutdown, whatever clients are still
        // connected): `runuser` in between does not pass SIGINT on.
        let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string));
        match pid {
            Some(pid) => {
                let _ = Command::new("kill").args(["-INT", &pid]).status();
            }
            None => {
                let _ = self.server.kill();
            }
        }
        let _ = self.server.wait();
    }
}
