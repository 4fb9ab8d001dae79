//! Files in and out of a workspace: uploads into a directory (the current
//! directory of a terminal's shell, or the workspace folder) and downloads
//! of a file, or of a folder as a gzipped tarball.
//!
//! Every operation runs as the shell does: inside the devcontainer as the
//! workspace's user (`docker exec -i -u <user> <container> /bin/sh -c …`),
//! or on the host as the agent's user for host shells. So a file is owned
//! by the same user as the files the shell writes, and nothing is reachable
//! that the user's own shell could not reach. The data goes through `cat`
//! and `tar`, whose standard streams the agent pipes to the HTTP bodies.
//!
//! An upload lands in a hidden temporary file next to its target and is
//! renamed into place only once exactly the announced number of bytes
//! arrived: an interrupted upload leaves nothing behind, and an existing
//! file is replaced only when asked.

use std::process::Stdio;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use crate::session::{ContainerShell, Session, ShellCommand};

/// Longest path accepted, in bytes.
pub const MAX_PATH: usize = 4096;
/// Longest file name accepted, in bytes.
pub const MAX_NAME: usize = 255;

/// Why a file operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    /// A path or name that is empty, too long or not allowed.
    #[error("{0}")]
    BadPath(&'static str),
    /// Nothing at that path (or not a directory where one is needed).
    #[error("no such file or directory")]
    NotFound,
    /// The upload's target exists and replacing it was not asked for.
    #[error("a file of that name exists")]
    Exists,
    /// Not allowed for the workspace's user.
    #[error("permission denied")]
    Denied,
    /// The upload ended before all its bytes arrived.
    #[error("the upload was interrupted")]
    Incomplete,
    /// Running the command failed.
    #[error("{0}")]
    Failed(String),
}

/// Where files are read and written: the host or a container, and the
/// directory relative paths start from.
#[derive(Clone, Debug)]
pub struct FileTarget {
    container: Option<ContainerShell>,
    /// The workspace folder.
    pub workdir: String,
}

// The scripts get their arguments as `$1…` (never interpolated into the
// script text). Exit codes: 2 not found, 13 denied, 17 exists, 18 short.
const STAT_SCRIPT: &str = r#"cd -- "$1" 2>/dev/null || exit 2
[ -e "$2" ] || exit 2
[ -r "$2" ] || exit 13
if [ -d "$2" ]; then echo d; else echo "f $(wc -c < "$2")"; fi"#;
// A directory's tarball holds the directory itself (`src/...`), as a
// folder download does elsewhere.
const READ_SCRIPT: &str = r#"cd -- "$1" || exit 2
if [ -d "$2" ]; then
  p=$(cd -- "$2" && pwd) || exit 2
  [ "$p" = / ] && exec tar -czf - -C / .
  exec tar -czf - -C "${p%/*}/" -- "${p##*/}"
fi
exec cat -- "$2""#;
const WRITE_SCRIPT: &str = r#"cd -- "$1" 2>/dev/null || exit 2
[ -w . ] || exit 13
if [ "$4" != 1 ] && [ -e "$2" ]; then exit 17; fi
tmp=".sam-upload.$$"
trap 'rm -f -- "$tmp"' EXIT HUP INT TERM
cat > "$tmp" || exit 1
[ "$(wc -c < "$tmp")" -eq "$3" ] || exit 18
mv -f -- "$tmp" "$2" || exit 1
trap - EXIT"#;
const CWD_SCRIPT: &str = r#"pid=$(cat "/tmp/sam-shell-$1.pid" 2>/dev/null) && readlink "/proc/$pid/cwd""#;

impl FileTarget {
    /// The target of shells run by `shell`.
    pub fn of(shell: &ShellCommand) -> Self {
        match &shell.container {
            Some(container) => Self { container: Some(container.clone()), workdir: container.workdir.clone() },
            None => Self {
                container: None,
                workdir: shell.cwd.clone().or_else(|| std::env::var("HOME").ok()).unwrap_or_else(|| "/".into()),
            },
        }
    }

    fn command(&self, script: &str, args: &[&str], stdin: bool) -> Command {
        let mut cmd = match &self.container {
            Some(c) => {
                let mut cmd = Command::new(&c.docker);
                cmd.args(["exec"]);
                if stdin {
                    cmd.arg("-i");
                }
                cmd.args(["-u", &c.user, &c.container, "/bin/sh", "-c", script, "sam-files"]);
                cmd
            }
            None => {
                let mut cmd = Command::new("/bin/sh");
                cmd.args(["-c", script, "sam-files"]);
                cmd
            }
        };
        cmd.args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// The current directory of `session`'s shell, else the workspace
    /// folder.
    pub async fn directory_of(&self, session: Option<&Session>) -> String {
        let Some(session) = session else { return self.workdir.clone() };
        let found = match session.container() {
            Some((_, id)) => match self.command(CWD_SCRIPT, &[id], false).output().await {
                Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
                _ => None,
            },
            None => session
                .pid()
                .and_then(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).ok())
                .map(|p| p.display().to_string()),
        };
        found.filter(|d| d.starts_with('/')).unwrap_or_else(|| self.workdir.clone())
    }

    /// What is at `path` (relative to `dir`): a directory, or a file and its
    /// size.
    pub async fn stat(&self, dir: &str, path: &str) -> Result<Entry, FileError> {
        check_path(path)?;
        let out = self
            .command(STAT_SCRIPT, &[dir, path], false)
            .output()
            .await
            .map_err(|e| FileError::Failed(e.to_string()))?;
        exit_error(out.status.code(), &out.stderr)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text.trim();
        if text == "d" {
            return Ok(Entry::Directory);
        }
        text.strip_prefix("f ")
            .and_then(|n| n.trim().parse().ok())
            .map(Entry::File)
            .ok_or_else(|| FileError::Failed(format!("unexpected answer {text:?}")))
    }

    /// Starts reading `path` (relative to `dir`): a file's bytes, or a
    /// directory as a gzipped tarball of its contents. The child's stdout is
    /// the data; it must be waited for.
    pub fn read(&self, dir: &str, path: &str) -> Result<Child, FileError> {
        check_path(path)?;
        let child =
            self.command(READ_SCRIPT, &[dir, path], false).spawn().map_err(|e| FileError::Failed(e.to_string()))?;
        if let Some(out) = &child.stdout {
            widen(out);
        }
        Ok(child)
    }

    /// Writes `name` in `dir` from `body`, which must yield exactly `size`
    /// bytes; replaces an existing file only with `overwrite`.
    pub async fn write<S, E>(
        &self,
        dir: &str,
        name: &str,
        size: u64,
        overwrite: bool,
        mut body: S,
    ) -> Result<(), FileError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    {
        use futures_util::StreamExt as _;
        check_name(name)?;
        let size_arg = size.to_string();
        let mut child = self
            .command(WRITE_SCRIPT, &[dir, name, &size_arg, if overwrite { "1" } else { "0" }], true)
            .spawn()
            .map_err(|e| FileError::Failed(e.to_string()))?;
        let mut stdin = child.stdin.take().ok_or_else(|| FileError::Failed("no stdin".into()))?;
        widen(&stdin);
        let mut stderr = child.stderr.take();
        let mut written: u64 = 0;
        let mut complete = true;
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                complete = false;
                break;
            };
            written += chunk.len() as u64;
            if written > size {
                complete = false;
                break;
            }
            // The script may have refused before reading (exists, denied):
            // its answer, not the broken pipe, says why.
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        drop(stdin);
        let status = child.wait().await.map_err(|e| FileError::Failed(e.to_string()))?;
        let mut err = Vec::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.take(4096).read_to_end(&mut err).await;
        }
        exit_error(status.code(), &err)?;
        if !complete || written != size {
            return Err(FileError::Incomplete);
        }
        Ok(())
    }
}

/// A pipe of 1 MiB instead of 64 KiB: a quarter of the wake-ups per
/// megabyte on both of its ends. Best effort (the system's limit for
/// unprivileged pipes, `/proc/sys/fs/pipe-max-size`, is 1 MiB by default).
fn widen(pipe: &impl std::os::fd::AsFd) {
    let _ = rustix::pipe::fcntl_setpipe_size(pipe, 1024 * 1024);
}

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A directory (downloaded as a tarball).
    Directory,
    /// A file of this many bytes.
    File(u64),
}

fn exit_error(code: Option<i32>, stderr: &[u8]) -> Result<(), FileError> {
    match code {
        Some(0) => Ok(()),
        Some(2) => Err(FileError::NotFound),
        Some(13) => Err(FileError::Denied),
        Some(17) => Err(FileError::Exists),
        Some(18) => Err(FileError::Incomplete),
        other => {
            let text = String::from_utf8_lossy(stderr);
            Err(FileError::Failed(format!("exit {other:?}: {}", text.trim())))
        }
    }
}

/// A path to read: not empty, not too long, no NUL.
pub fn check_path(path: &str) -> Result<(), FileError> {
    if path.is_empty() || path.len() > MAX_PATH || path.contains('\0') {
        return Err(FileError::BadPath("a path is 1 to 4096 bytes without NUL"));
    }
    Ok(())
}

/// A file name to write: one path component.
pub fn check_name(name: &str) -> Result<(), FileError> {
    if name.is_empty() || name.len() > MAX_NAME || name.contains(['/', '\0']) || name == "." || name == ".." {
        return Err(FileError::BadPath("a file name is 1 to 255 bytes, without '/', and not . or .."));
    }
    Ok(())
}

/// The name a download is saved under: the last component of `path` (a
/// directory's with `.tar.gz`), reduced to characters safe in a header.
pub fn download_name(path: &str, entry: Entry) -> String {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let mut name: String =
        last.chars().map(|c| if c.is_ascii_alphanumeric() || "._-+ ".contains(c) { c } else { '_' }).collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        name = "download".into();
    }
    if entry == Entry::Directory {
        name.push_str(".tar.gz");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(check_name("report.pdf").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_path("../x/y").is_ok(), "the user's own shell can read it too");
        assert!(check_path("").is_err());
        assert_eq!(download_name("/w/src/", Entry::Directory), "src.tar.gz");
        assert_eq!(download_name("a/\"evil\"\r\n.txt", Entry::File(1)), "_evil___.txt");
        assert_eq!(download_name("/", Entry::Directory), "download.tar.gz");
        assert_eq!(download_name("..", Entry::Directory), "download.tar.gz");
    }
}
