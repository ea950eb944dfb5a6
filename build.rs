//! Build-time facts the binary records as evidence: `git describe` of the source it was built
//! from (batch.json, reports). A build outside a git checkout says `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let describe = git(&["describe", "--always", "--dirty", "--tags"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CARDBENCH_GIT_DESCRIBE={describe}");
    // Describe again when HEAD moves or a ref changes (commits, checkouts; a worktree keeps
    // its HEAD apart from the shared refs), and when a source file changes (`-dirty`). Not on
    // every `git add`: that would rebuild the crate for nothing.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
    }
    // Only this branch's ref: other worktrees' commits must not rebuild this one. A path that
    // does not exist would make cargo run this script on every build, so only existing ones.
    if let (Some(common), Some(branch)) =
        (git(&["rev-parse", "--git-common-dir"]), git(&["symbolic-ref", "-q", "HEAD"]))
    {
        for p in [format!("{common}/{branch}"), format!("{common}/packed-refs")] {
            if std::path::Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    // An edited source file makes the build `-dirty`.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=build.rs");
}
