//! Moving bytes between a PTY master and a session, on the tokio reactor.
//!
//! The master is switched to non-blocking mode. Its **reader** is registered
//! with the reactor for readability only; its **writer** is not registered
//! at all while the PTY takes input at once (the keystroke path), because a
//! registered writer is woken by the kernel every time the slave consumes
//! input, which would wake the agent once more per keystroke for nothing.
//! Only input the PTY would not take waits for writability, through a
//! registration made for that wait and dropped after it.
//!
//! Reads follow the kernel's hints: a read shorter than asked for emptied
//! the PTY, so the next step is waiting for readiness, not another read that
//! would fail. During a **flood** (output arriving faster than
//! [`FLOOD_BYTES`] per [`FLOOD_WINDOW`]) the reader does not wait for every
//! few hundred bytes the shell writes: after draining the PTY it pauses for
//! [`FLOOD_PACE`] (a `timerfd`, since tokio's timers tick in milliseconds)
//! and reads what gathered meanwhile. The PTY buffers about 12 KiB, so the
//! pause is short enough that the shell never stalls, and a flood costs a
//! fraction of the reads and wake-ups. Interactive output never enters
//! flood mode, so it is delivered without delay, and input during a pause
//! ends it after [`INPUT_SETTLE`] (a Ctrl-C's prompt is read at once).

use std::fs::File;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use tokio::net::unix::pipe;

use crate::activity::Activity;
use crate::output::{OutputBuffer, READ_MAX};

/// PTY reads land in blocks of this size; chunks are split off without a
/// copy, and a block whose chunks have all been sent is reused.
const READ_BLOCK: usize = 64 * 1024;
/// Reads gathered into one chunk before it is pushed during a flood; a read
/// that drains the PTY pushes at once, so interactive output is never held
/// back.
const PUSH_BATCH: usize = 32 * 1024;
/// A session gets its read block with its first read longer than this.
/// Until then (a prompt, echoes, short answers) reads land in [`SCRATCH`]
/// and are copied out at their size: an idle or interactive shell then
/// holds no 64-KiB block, whose first page alone, with the allocations
/// around it, cost more than the rest of a quiet session.
const COPY_MAX: usize = 4 * 1024;

thread_local! {
    /// Where reads of sessions without a block land; one per runtime thread.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0; READ_MAX].into_boxed_slice());
}
/// Output faster than this many bytes per [`FLOOD_WINDOW`] is a flood.
pub const FLOOD_BYTES: usize = 16 * 1024;
/// See [`FLOOD_BYTES`].
pub const FLOOD_WINDOW: Duration = Duration::from_millis(1);
/// The pause between drains during a flood.
pub const FLOOD_PACE: Duration = Duration::from_micros(200);
/// How long input (Ctrl-C) during a flood's pause leaves the kernel to act
/// on it before the PTY is read again, instead of the rest of the pause.
pub const INPUT_SETTLE: Duration = Duration::from_micros(50);

/// The PTY master's reader, registered with the reactor for readability.
#[derive(Debug)]
pub struct PtyReader(pipe::Receiver);

/// The PTY master's writer: plain non-blocking writes.
#[derive(Debug)]
pub struct PtyWriter(File);

/// Non-blocking reader and writer on `file`, a duplicate of the PTY master
/// descriptor; the reader is registered with the runtime. All duplicates
/// share one open file, so `O_NONBLOCK` applies to all of them.
pub fn split(file: File, runtime: &tokio::runtime::Handle) -> std::io::Result<(PtyReader, PtyWriter)> {
    rustix::io::ioctl_fionbio(&file, true)?;
    let _guard = runtime.enter();
    let reader = pipe::Receiver::from_file_unchecked(file.try_clone()?)?;
    Ok((PtyReader(reader), PtyWriter(file)))
}

impl PtyWriter {
    /// Writes what the PTY takes now; returns the rest (empty when all of it
    /// went). `Err` when the PTY is gone.
    pub fn write_now<'a>(&self, mut data: &'a [u8]) -> std::io::Result<&'a [u8]> {
        while !data.is_empty() {
            match (&self.0).write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(data)
    }

    /// Writes all of `data`, waiting for the PTY to take it. Returns false
    /// when the PTY is gone.
    pub async fn write_all(&self, data: &[u8]) -> bool {
        let mut rest = match self.write_now(data) {
            Ok([]) => return true,
            Ok(rest) => rest,
            Err(_) => return false,
        };
        // Registered for this wait only (see the module documentation).
        let Ok(writable) = self.0.try_clone().and_then(pipe::Sender::from_file_unchecked) else {
            return false;
        };
        while !rest.is_empty() {
            match writable.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if writable.writable().await.is_err() {
                        return false;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

/// The session's input task: writes, in order, what the PTY did not take at
/// once. `queued` counts chunks in `backlog` or being written; it drops only
/// under the writer's lock, so a direct write never overtakes a chunk.
pub async fn input_loop(
    writer: Arc<tokio::sync::Mutex<PtyWriter>>,
    queued: Arc<AtomicUsize>,
    mut backlog: tokio::sync::mpsc::Receiver<Vec<u8>>,
) {
    while let Some(chunk) = backlog.recv().await {
        let pty = writer.lock().await;
        let ok = pty.write_all(&chunk).await;
        queued.fetch_sub(1, Ordering::SeqCst);
        drop(pty);
        if !ok {
            break;
        }
    }
}

/// Sub-millisecond pauses on the reactor: a `timerfd`, registered through
/// tokio's pipe type (a safe wrapper for any pollable descriptor that reads
/// like a stream; a timer reads as its 8-byte expiration count).
#[derive(Debug)]
struct Pacer(pipe::Receiver);

impl Pacer {
    fn new() -> std::io::Result<Self> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let timer = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)?;
        Ok(Self(pipe::Receiver::from_owned_fd_unchecked(timer)?))
    }

    async fn pause(&self, pause: Duration) -> std::io::Result<()> {
        use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
        let value = Timespec {
            tv_sec: i64::try_from(pause.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(pause.subsec_nanos()),
        };
        let spec = Itimerspec { it_interval: Timespec { tv_sec: 0, tv_nsec: 0 }, it_value: value };
        timerfd_settime(&self.0, TimerfdTimerFlags::empty(), &spec)?;
        let mut expirations = [0u8; 8];
        loop {
            self.0.readable().await?;
            match self.0.try_read(&mut expirations) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Pauses for `pause`, or less when the producer is woken meanwhile.
/// `None` when the session was stopped; else whether it was woken.
async fn pause_unless_woken(output: &OutputBuffer, pacer: &Pacer, pause: Duration) -> Option<bool> {
    tokio::select! {
        biased;
        () = output.producer_wake() => (!output.is_stopped()).then_some(true),
        paused = pacer.pause(pause) => {
            if paused.is_err() {
                tracing::debug!("flood pacing failed; reading output as it comes");
            }
            Some(false)
        }
    }
}

/// Tells a flood from interactive output by the rate of recent reads.
#[derive(Debug)]
struct Burst {
    since: Instant,
    bytes: usize,
}

impl Burst {
    fn new() -> Self {
        Self { since: Instant::now(), bytes: 0 }
    }

    /// Records a read of `n` bytes; true while the output is a flood.
    fn record(&mut self, n: usize) -> bool {
        let now = Instant::now();
        if now.duration_since(self.since) > FLOOD_WINDOW {
            // Carry the rate over, so a steady flood stays one.
            self.bytes = if self.bytes >= FLOOD_BYTES { FLOOD_BYTES } else { 0 };
            self.since = now;
        }
        self.bytes += n;
        self.bytes >= FLOOD_BYTES
    }

    fn is_flood(&self) -> bool {
        self.bytes >= FLOOD_BYTES && self.since.elapsed() <= FLOOD_WINDOW * 2
    }

    fn reset(&mut self) {
        self.bytes = 0;
        self.since = Instant::now();
    }
}

/// Moves PTY output into the ring until EOF or [`OutputBuffer::stop`].
/// Reads that follow each other without the PTY running dry are gathered
/// into one chunk (up to `PUSH_BATCH`), so a flood costs one push and one
/// consumer wake-up per batch.
pub async fn read_loop(pty: PtyReader, output: Arc<OutputBuffer>, activity: Arc<Activity>) {
    let pty = pty.0;
    let mut block = BytesMut::new();
    let push = |block: &mut BytesMut| {
        if !block.is_empty() {
            output.push(block.split().freeze());
        }
    };
    let mut burst = Burst::new();
    // Created on the first flood; `Err` once creating it failed (floods are
    // then read as they come).
    let mut pacer: Option<std::io::Result<Pacer>> = None;
    // True right after a pause.
    let mut paced = false;
    'wait: loop {
        tokio::select! {
            biased;
            () = output.producer_wake() => {
                if output.is_stopped() {
                    break;
                }
                continue;
            }
            ready = pty.readable() => if ready.is_err() {
                break;
            },
        }
        loop {
            if !output.has_room(block.len()) {
                push(&mut block);
                if !output.wait_for_room().await {
                    break 'wait;
                }
                continue;
            }
            if block.capacity() != 0 && block.capacity() - block.len() < READ_MAX {
                push(&mut block);
                // Reclaims the block when every chunk split off it was dropped.
                block.reserve(READ_BLOCK);
            }
            let mut got = 0;
            // Answering `WouldBlock` after a short read tells the reactor the
            // PTY is empty (it then waits for the next edge) without paying
            // for a read that would fail. During a flood the PTY is read
            // until it is really empty, then again after a pause.
            let read = pty.try_io(|| {
                let (n, flood) = if block.capacity() == 0 {
                    SCRATCH.with_borrow_mut(|scratch| -> std::io::Result<(usize, bool)> {
                        let n = pty.try_read(scratch)?;
                        got = n;
                        let flood = n > 0 && burst.record(n);
                        if n > 0 && n <= COPY_MAX && n < READ_MAX && !flood {
                            output.push(Bytes::copy_from_slice(&scratch[..n]));
                            return Err(std::io::ErrorKind::WouldBlock.into());
                        }
                        if n > 0 {
                            block.reserve(READ_BLOCK);
                            block.extend_from_slice(&scratch[..n]);
                        }
                        Ok((n, flood))
                    })?
                } else {
                    let n = pty.try_read_buf(&mut (&mut block).limit(READ_MAX))?;
                    got = n;
                    (n, n > 0 && burst.record(n))
                };
                if n > 0 && n < READ_MAX && !flood { Err(std::io::ErrorKind::WouldBlock.into()) } else { Ok(n) }
            });
            match read {
                Ok(0) => break 'wait,
                Ok(_) => {
                    activity.touch();
                    paced = false;
                    if block.len() >= PUSH_BATCH {
                        push(&mut block);
                    }
                    // A shell that never stops printing must not starve the
                    // other sessions and sockets on this runtime.
                    tokio::task::consume_budget().await;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && got > 0 => {
                    activity.touch();
                    paced = false;
                    push(&mut block);
                    continue 'wait;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    push(&mut block);
                    if paced || !burst.is_flood() {
                        // Nothing came during a whole pause: the flood is over.
                        if paced {
                            burst.reset();
                        }
                        paced = false;
                        continue 'wait;
                    }
                    let pacer = pacer.get_or_insert_with(Pacer::new);
                    let Ok(pacer) = pacer else { continue 'wait };
                    output.set_pausing(true);
                    // Input since the last pause (it came while this task
                    // was reading): this pause is only the settling one.
                    let mut input = output.take_input();
                    let woken = pause_unless_woken(&output, pacer, if input { INPUT_SETTLE } else { FLOOD_PACE }).await;
                    output.set_pausing(false);
                    // Woken: stopped, or input reached the shell.
                    let Some(woken) = woken else { break 'wait };
                    if woken {
                        input |= output.take_input();
                        // Input during a flood is most often Ctrl-C: the
                        // kernel then signals the foreground job and drops
                        // the output still in the PTY, and the prompt
                        // follows. A short wait lets it do so before the
                        // next read, which then finds the prompt, or nothing
                        // and waits for it, out of flood mode.
                        if pause_unless_woken(&output, pacer, INPUT_SETTLE).await.is_none() {
                            break 'wait;
                        }
                    }
                    if input {
                        burst.reset();
                    }
                    // The reactor saw, meanwhile, whether output came: if not,
                    // the next `try_io` answers `WouldBlock` without a read.
                    paced = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO once every holder of the slave side is gone.
                Err(_) => break 'wait,
            }
        }
    }
    push(&mut block);
    output.finish_reading();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_a_flood_by_rate_not_by_size() {
        let mut burst = Burst::new();
        assert!(!burst.record(100), "a keystroke echo");
        assert!(!burst.is_flood());
        assert!(burst.record(FLOOD_BYTES), "16 KiB within a millisecond");
        assert!(burst.is_flood());
        std::thread::sleep(FLOOD_WINDOW * 3);
        assert!(!burst.is_flood(), "a flood that stopped long ago");
        burst.reset();
        assert!(!burst.record(FLOOD_BYTES / 2));
    }
}
