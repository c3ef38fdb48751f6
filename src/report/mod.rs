//! Run-folder layout and safe writing: every stage writes into a staging folder that replaces
//! the final one only when the stage has finished, so an error never leaves half a result.

pub mod plot;

use std::io::Write;
use std::path::{Path, PathBuf};

/// Write a file through a temporary sibling and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all().ok();
    }
    std::fs::rename(&tmp, path)
}

/// Serialise as pretty JSON and write atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// A stage's output folder under construction. `commit` moves it into place, replacing an
/// older result; dropping it without committing removes the staging folder.
pub struct StagedDir {
    staging: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagedDir {
    pub fn new(target: &Path) -> std::io::Result<Self> {
        let parent = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "stage".into());
        let staging = parent.join(format!(".{name}.partial"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Where to write while the stage runs.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.staging.join(rel)
    }

    /// Replace the target folder with the staged one.
    pub fn commit(mut self) -> std::io::Result<PathBuf> {
        if self.target.exists() {
            let old = self.target.with_extension("old");
            if old.exists() {
                std::fs::remove_dir_all(&old)?;
            }
            std::fs::rename(&self.target, &old)?;
            std::fs::rename(&self.staging, &self.target)?;
            std::fs::remove_dir_all(&old)?;
        } else {
            std::fs::rename(&self.staging, &self.target)?;
        }
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// A progress bar on stderr that draws only on a terminal (logs stay clean in CI).
pub fn progress_bar(len: u64, prefix: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_prefix(prefix.to_string());
    pb
}
