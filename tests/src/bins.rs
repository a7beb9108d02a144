//! Where the function binaries are: the tests and the benchmark run the real `replicate`,
//! `reconcile` and `failover` executables, built for the profile they run in.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace's root folder.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The folder of this profile's binaries (`target/debug`, or `target/release` for the
/// benchmark), built once per process with `cargo build --workspace --bins` unless
/// `KMS_E2E_SKIP_BUILD` is set.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Tests and benchmarks run from target/<profile>/deps/.
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        if std::env::var_os("KMS_E2E_SKIP_BUILD").is_none() {
            build_bins(&dir);
        }
        dir
    })
}

fn build_bins(dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--workspace", "--bins", "--quiet"])
        .current_dir(root());
    // What cargo sets for this test run must not reach the build: build scripts that watch
    // these variables (ring's does) would rebuild half the dependency tree.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&k.as_ref())
        {
            cmd.env_remove(k.as_ref());
        }
    }
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "`cargo build --workspace --bins` failed");
}

/// The binary `name` of this profile, if it was built.
pub fn binary(name: &str) -> Option<PathBuf> {
    let p = bin_dir().join(name);
    p.is_file().then_some(p)
}
