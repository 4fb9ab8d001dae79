//! The output of a boot step while it runs (`git clone`, `devcontainer
//! up`): its last lines, reported to the control plane every few seconds so
//! the dashboard shows a build as it happens, and sent with a failure so the
//! workspace's page says why.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt as _;

/// Lines kept per step: what a failure report carries.
pub const KEPT_LINES: usize = 50;
/// Longest line kept (longer ones are cut: a progress bar without line
/// breaks must not fill the report).
const MAX_LINE: usize = 400;

/// The last [`KEPT_LINES`] lines a step's commands printed (stdout and
/// stderr, in the order they arrived), and a counter of changes so a
/// reporter sends only what is new. Clones share the lines.
#[derive(Clone, Debug, Default)]
pub struct StepOutput(Arc<Mutex<Lines>>);

#[derive(Debug, Default)]
struct Lines {
    lines: VecDeque<String>,
    changes: u64,
}

impl StepOutput {
    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds one line (control characters dropped, cut at 400 bytes; blank
    /// lines are not kept).
    pub fn push_line(&self, line: &str) {
        self.add(line, false);
    }

    /// Adds `line`, or with `redraw` puts it in place of the last one (a
    /// progress meter redrawing its line).
    fn add(&self, line: &str, redraw: bool) {
        let clean: String = line.chars().filter(|c| !c.is_control() || *c == '\t').collect();
        let clean = without_timestamp(clean.trim_end());
        if clean.trim().is_empty() || is_stack_frame(clean) {
            return;
        }
        let mut end = clean.len().min(MAX_LINE);
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        let mut lines = self.lock();
        if redraw {
            lines.lines.pop_back();
        }
        if lines.lines.len() == KEPT_LINES {
            lines.lines.pop_front();
        }
        lines.lines.push_back(clean[..end].to_owned());
        lines.changes += 1;
    }

    /// The last `n` lines, one per line.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lock();
        let skip = lines.lines.len().saturating_sub(n);
        lines.lines.iter().skip(skip).map(String::as_str).collect::<Vec<_>>().join("\n")
    }

    /// How many lines were ever added: changes when there is news.
    pub fn changes(&self) -> u64 {
        self.lock().changes
    }

    /// Whether nothing was printed.
    pub fn is_empty(&self) -> bool {
        self.lock().lines.is_empty()
    }
}

/// `line` without the devcontainer CLI's `[2026-12-04T06:52:27.433Z] `
/// prefix (the dashboard shows when a report arrived).
fn without_timestamp(line: &str) -> &str {
    let Some(rest) = line.strip_prefix('[') else { return line };
    match rest.split_once("] ") {
        Some((stamp, text))
            if stamp.len() == 24
                && stamp.ends_with('Z')
                && stamp.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'T' | b':' | b'.' | b'Z')) =>
        {
            text
        }
        _ => line,
    }
}

/// A frame of a JavaScript stack trace (`    at fn (/…/cli.js:1:2)`): the
/// devcontainer CLI prints one under every error, and 50 lines of it would
/// push out what the user's own commands printed.
fn is_stack_frame(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("at ") && (line.contains(".js:") || line.contains("node:internal"))
}

/// Splits a byte stream into lines at `\n` and `\r`, feeding complete
/// ones to `output`; a line after a `\r` replaces the one before it, as a
/// progress meter redraws its line (`Receiving objects:  10%\r…100%\r\n`
/// keeps only the last state).
#[derive(Default)]
struct LineSplitter {
    partial: Vec<u8>,
    after_cr: bool,
}

impl LineSplitter {
    fn feed(&mut self, bytes: &[u8], output: &StepOutput) {
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                self.flush(output);
                self.after_cr = b == b'\r';
            } else if self.partial.len() < 64 * 1024 {
                self.partial.push(b);
            }
        }
    }

    fn flush(&mut self, output: &StepOutput) {
        if !self.partial.is_empty() {
            output.add(&String::from_utf8_lossy(&self.partial), self.after_cr);
            self.partial.clear();
        }
    }
}

/// Reads `reader` to its end into a buffer, feeding its lines to `output`.
async fn drain(reader: Option<impl tokio::io::AsyncRead + Unpin>, output: &StepOutput) -> std::io::Result<Vec<u8>> {
    let Some(mut reader) = reader else { return Ok(Vec::new()) };
    let mut all = Vec::new();
    let mut splitter = LineSplitter::default();
    let mut chunk = [0u8; 8192];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        splitter.feed(&chunk[..n], output);
        all.extend_from_slice(&chunk[..n]);
    }
    splitter.flush(output);
    Ok(all)
}

/// Runs `cmd` to completion like [`crate::reaper::output_tracked`] (stdin
/// null, stdout and stderr captured, its pid kept from a PID 1 reaper),
/// feeding every line it prints to `output` as it comes.
pub async fn output_streamed(
    cmd: &mut tokio::process::Command,
    output: &StepOutput,
) -> std::io::Result<std::process::Output> {
    use std::process::Stdio;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id();
    if let Some(pid) = pid {
        crate::reaper::track(pid);
    }
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let result = async {
        let (stdout, stderr) = tokio::try_join!(drain(stdout, output), drain(stderr, output))?;
        let status = child.wait().await?;
        Ok(std::process::Output { status, stdout, stderr })
    }
    .await;
    if let Some(pid) = pid {
        crate::reaper::untrack(pid);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_clean_and_short() {
        let output = StepOutput::default();
        let mut splitter = LineSplitter::default();
        splitter.feed(b"Receiving objects:  10%\rReceiving objects: 100%\r\n\x1b[1mbold\x1b[0m\n\n", &output);
        splitter.feed(b"partial", &output);
        assert_eq!(output.tail(10), "Receiving objects: 100%\n[1mbold[0m");
        splitter.flush(&output);
        assert_eq!(output.tail(1), "partial");
        for i in 0..100 {
            output.push_line(&format!("line {i}"));
        }
        assert_eq!(output.tail(usize::MAX).lines().count(), KEPT_LINES);
        assert_eq!(output.tail(2), "line 98\nline 99");
        output.push_line(&"é".repeat(1000));
        assert!(output.tail(1).len() <= MAX_LINE);
        assert_eq!(output.changes(), 105);
        output.push_line(
            "    at async Zg (/x/node_modules/@devcontainers/cli/dist/spec-node/devContainersSpecCLI.js:226:2623)",
        );
        output.push_line("    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)");
        assert_eq!(output.changes(), 105, "stack frames are not kept");
        output.push_line("[2026-12-04T06:52:27.433Z] build line 15");
        output.push_line("[not a time] kept");
        assert_eq!(output.tail(2), "build line 15\n[not a time] kept");
    }

    #[tokio::test]
    async fn streams_both_streams_and_keeps_them() {
        let output = StepOutput::default();
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let result = output_streamed(&mut cmd, &output).await.unwrap();
        assert_eq!(result.status.code(), Some(3));
        assert_eq!(result.stdout, b"out\n");
        assert_eq!(result.stderr, b"err\n");
        let mut lines: Vec<&str> = Vec::new();
        let tail = output.tail(10);
        lines.extend(tail.lines());
        lines.sort_unstable();
        assert_eq!(lines, ["err", "out"]);
    }
}
