//! The output side of a session: a bounded ring of PTY chunks addressed by
//! byte offsets, shared between the session's PTY reader task (producer) and
//! the WebSocket task of the attached tab (consumer).
//!
//! * Chunks are `Bytes` split off one reusable read block: the reader never
//!   copies, the consumer clones a reference-counted handle when one chunk is
//!   ready and coalesces several chunks into one frame (one copy) under load.
//! * While a tab is attached, the reader **waits** before a read when the
//!   bytes not yet taken by the consumer would no longer fit the ring, or
//!   when the client uses acks and more than the ack window is unacknowledged.
//!   That back-pressure reaches the shell through the PTY, so a flood never
//!   grows memory, and input (Ctrl-C) is unaffected because it travels on a
//!   separate path.
//! * While detached, the shell keeps running and the ring keeps the newest
//!   `capacity` bytes for reattach; older bytes are counted as lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::flow::FlowWindow;

/// Largest single PTY read; the reader waits until this much fits.
pub const READ_MAX: usize = 16 * 1024;

/// Output the reader may hold that the attached tab has not taken yet.
/// Everything read ahead still reaches the screen after a Ctrl-C, so this
/// is kept small; the PTY's own buffer keeps the shell busy meanwhile.
pub const READ_AHEAD: usize = 64 * 1024;

/// The smallest frame a window limits the frames to.
const MIN_FRAME: usize = 4096;

/// What the consumer gets from [`OutputBuffer::take`].
#[derive(Debug)]
pub enum Take {
    /// Bytes starting at the consumer's position.
    Data(Bytes),
    /// Nothing new yet: wait for the attachment's notifier.
    Empty,
    /// The shell is gone and everything was delivered.
    Finished(Option<u32>),
    /// Another connection took this session over.
    Detached,
}

/// How an attach went.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Generation of this attachment; stale generations are refused.
    pub generation: u64,
    /// Offset of the first byte this attachment receives.
    pub offset: u64,
    /// Requested bytes that had already left the ring.
    pub lost: u64,
    /// Wakes the consumer when output arrives or the attachment ends.
    pub waker: Arc<Notify>,
}

#[derive(Debug)]
struct State {
    chunks: VecDeque<Bytes>,
    /// Offset of the first retained byte.
    start: u64,
    /// Offset one past the last byte produced.
    end: u64,
    /// Current attachment: generation, notifier, consumer position, ack.
    generation: u64,
    attached: Option<Arc<Notify>>,
    sent: u64,
    /// What the attached client acked and may be sent ahead of that, while
    /// it acks.
    flow: Option<FlowWindow>,
    /// The reader stopped (EOF or error).
    eof: bool,
    /// The shell's exit code, once known.
    exit: Option<Option<u32>>,
    /// Stop producing (session killed).
    stopped: bool,
    reader_waiting: bool,
}

/// The shared output ring of one session.
#[derive(Debug)]
pub struct OutputBuffer {
    state: Mutex<State>,
    /// Wakes the producer when room appears or the session stops. A
    /// `notify_one` permit is kept when the producer is not waiting yet, so
    /// no wake-up is lost between its check and its wait.
    room: Notify,
    /// The producer is in a flood's pause (see [`crate::pty_io`]); input
    /// written to the shell cuts the pause short.
    pausing: AtomicBool,
    /// Input reached the shell since the producer last looked.
    input_seen: AtomicBool,
    capacity: usize,
    ack_window: u64,
    max_frame: usize,
}

impl OutputBuffer {
    /// A ring keeping `capacity` bytes (at least twice [`READ_MAX`]), an ack
    /// window of `ack_window` bytes and frames of at most `max_frame` bytes.
    pub fn new(capacity: usize, ack_window: u64, max_frame: usize) -> Self {
        Self {
            state: Mutex::new(State {
                chunks: VecDeque::new(),
                start: 0,
                end: 0,
                generation: 0,
                attached: None,
                sent: 0,
                flow: None,
                eof: false,
                exit: None,
                stopped: false,
                reader_waiting: false,
            }),
            room: Notify::new(),
            pausing: AtomicBool::new(false),
            input_seen: AtomicBool::new(false),
            capacity: capacity.max(2 * READ_MAX),
            ack_window: ack_window.max(READ_MAX as u64),
            max_frame: max_frame.max(1024),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the ring inconsistent
        // in a way that matters more than losing the session; keep serving.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True when a read of up to [`READ_MAX`] bytes, on top of `pending`
    /// bytes the producer holds but has not pushed yet, must wait.
    fn must_wait(&self, s: &State, pending: usize) -> bool {
        if s.stopped || s.attached.is_none() {
            return false;
        }
        let unsent = (s.end - s.sent) as usize + pending;
        if unsent + READ_MAX > self.capacity.min(READ_AHEAD) {
            return true;
        }
        matches!(&s.flow, Some(flow) if (s.end + pending as u64).saturating_sub(flow.acked()) >= flow.window())
    }

    /// The largest frame for the attached client: a client that acks
    /// gets frames of at most a quarter of its window, so a window shrunk
    /// for a slow client still holds several frames and the client acks
    /// within it (it can ack no finer than a frame).
    fn frame_limit(&self, s: &State) -> usize {
        match &s.flow {
            Some(flow) => self.max_frame.min(usize::try_from(flow.window() / 4).unwrap_or(usize::MAX)).max(MIN_FRAME),
            None => self.max_frame,
        }
    }

    /// Producer: true when a read of up to [`READ_MAX`] bytes may go ahead
    /// now, with `pending` bytes read but not pushed yet.
    pub fn has_room(&self, pending: usize) -> bool {
        !self.must_wait(&self.lock(), pending)
    }

    /// Producer: waits until a read of up to [`READ_MAX`] bytes may go
    /// ahead (everything read was pushed). Returns `false` when the session
    /// was stopped.
    pub async fn wait_for_room(&self) -> bool {
        loop {
            let notified = self.room.notified();
            {
                let mut s = self.lock();
                if s.stopped {
                    return false;
                }
                if !self.must_wait(&s, 0) {
                    s.reader_waiting = false;
                    return true;
                }
                s.reader_waiting = true;
            }
            notified.await;
        }
    }

    /// Producer: resolves when [`stop`](Self::stop) was called, or
    /// spuriously (the caller re-checks [`is_stopped`](Self::is_stopped)).
    pub async fn producer_wake(&self) {
        self.room.notified().await;
    }

    /// Producer: entering (`true`) or leaving a flood's pause, which
    /// [`input_written`](Self::input_written) cuts short through
    /// [`producer_wake`](Self::producer_wake).
    pub fn set_pausing(&self, pausing: bool) {
        self.pausing.store(pausing, Ordering::SeqCst);
    }

    /// Input reached the shell. A flood's pause is cut short, and the next
    /// one is short (the reader reads again after
    /// [`crate::pty_io::INPUT_SETTLE`]): input during a flood is most often
    /// Ctrl-C, and the prompt that follows must not wait for the rest of a
    /// pause. Outside a pause this wakes nobody (a keystroke does not wake
    /// the reader for nothing).
    pub fn input_written(&self) {
        self.input_seen.store(true, Ordering::SeqCst);
        if self.pausing.load(Ordering::SeqCst) {
            self.room.notify_one();
        }
    }

    /// Producer: true when input reached the shell since the last call.
    pub fn take_input(&self) -> bool {
        self.input_seen.swap(false, Ordering::SeqCst)
    }

    /// True once [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Producer: appends a chunk and wakes the consumer if it may be idle.
    pub fn push(&self, chunk: Bytes) {
        let mut s = self.lock();
        let was_idle = s.sent == s.end;
        s.end += chunk.len() as u64;
        s.chunks.push_back(chunk);
        let mut retained = (s.end - s.start) as usize;
        while retained > self.capacity {
            let Some(front) = s.chunks.front().map(Bytes::len) else { break };
            // While a tab is attached, a chunk it has not fully taken stays
            // (the producer's back-pressure bounds that overshoot to about
            // one chunk); only a detached ring drops unsent bytes.
            if s.attached.is_some() && s.start + front as u64 > s.sent {
                break;
            }
            s.chunks.pop_front();
            s.start += front as u64;
            retained -= front;
        }
        if was_idle && let Some(waker) = &s.attached {
            waker.notify_one();
        }
    }

    /// Producer: no more output will come.
    pub fn finish_reading(&self) {
        let mut s = self.lock();
        s.eof = true;
        if let Some(waker) = &s.attached {
            waker.notify_one();
        }
    }

    /// The shell exited with `code`.
    pub fn set_exit(&self, code: Option<u32>) {
        let mut s = self.lock();
        s.exit = Some(code);
        if let Some(waker) = &s.attached {
            waker.notify_one();
        }
    }

    /// Stops the producer (it returns from [`wait_for_room`](Self::wait_for_room)).
    pub fn stop(&self) {
        let mut s = self.lock();
        s.stopped = true;
        s.attached = None;
        self.room.notify_one();
    }

    /// Attaches a consumer that has received everything before `from`
    /// (`None`: replay the whole ring). A previous consumer is detached and
    /// woken so it can notice.
    pub fn attach(&self, from: Option<u64>, acks: bool) -> Attachment {
        let mut s = self.lock();
        if let Some(old) = s.attached.take() {
            old.notify_one();
        }
        let wanted = from.unwrap_or(s.start).min(s.end);
        let offset = wanted.max(s.start);
        let lost = offset - wanted;
        s.generation += 1;
        let waker = Arc::new(Notify::new());
        waker.notify_one();
        s.attached = Some(Arc::clone(&waker));
        s.sent = offset;
        s.flow = acks.then(|| FlowWindow::new(self.ack_window, offset));
        self.room.notify_one();
        Attachment { generation: s.generation, offset, lost, waker }
    }

    /// Detaches the consumer of `generation` (no-op if it was replaced).
    /// Returns true when it was the current one.
    pub fn detach(&self, generation: u64) -> bool {
        let mut s = self.lock();
        if s.generation != generation || s.attached.is_none() {
            return false;
        }
        s.attached = None;
        s.flow = None;
        self.room.notify_one();
        true
    }

    /// True once the shell exited and its output was read to the end.
    pub fn is_finished(&self) -> bool {
        let s = self.lock();
        s.eof && s.exit.is_some()
    }

    /// True while a consumer is attached.
    pub fn is_attached(&self) -> bool {
        self.lock().attached.is_some()
    }

    /// Current attachment generation.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Flow control: the consumer of `generation` processed up to `offset`.
    pub fn ack(&self, generation: u64, offset: u64) {
        let mut s = self.lock();
        if s.generation != generation {
            return;
        }
        let end = s.end;
        if let Some(flow) = s.flow.as_mut() {
            flow.ack(offset.min(end), Instant::now());
            if s.reader_waiting && !self.must_wait(&s, 0) {
                self.room.notify_one();
            }
        }
    }

    /// Consumer: the next frame for attachment `generation`: one chunk as is,
    /// or several coalesced into one frame of at most `max_frame` bytes.
    pub fn take(&self, generation: u64) -> Take {
        let mut s = self.lock();
        if s.generation != generation || s.attached.is_none() {
            return Take::Detached;
        }
        if s.sent >= s.end || s.chunks.is_empty() {
            return match s.exit {
                Some(code) if s.eof => Take::Finished(code),
                _ => Take::Empty,
            };
        }
        // A reattach racing a read may have let the ring evict bytes this
        // consumer had not taken yet; continue from the oldest retained byte.
        if s.sent < s.start {
            s.sent = s.start;
        }
        // Find the chunk holding `sent`, from the newest back: an attached
        // tab is rarely more than a chunk or two behind, while the ring may
        // hold thousands (one per keystroke's echo).
        let mut pos = s.end;
        let mut index = s.chunks.len();
        while index > 0 {
            index -= 1;
            pos -= s.chunks[index].len() as u64;
            if pos <= s.sent {
                break;
            }
        }
        let skip = (s.sent - pos) as usize;
        let first = s.chunks[index].slice(skip..);
        let max_frame = self.frame_limit(&s);
        let frame = if first.len() >= max_frame {
            first.slice(..max_frame)
        } else if index + 1 == s.chunks.len() {
            first
        } else {
            let available = ((s.end - s.sent) as usize).min(max_frame);
            let mut out = BytesMut::with_capacity(available);
            out.extend_from_slice(&first);
            for chunk in s.chunks.iter().skip(index + 1) {
                let room = available - out.len();
                if room == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            out.freeze()
        };
        s.sent += frame.len() as u64;
        let sent = s.sent;
        if let Some(flow) = s.flow.as_mut() {
            flow.sent(sent, Instant::now());
        }
        if s.reader_waiting && !self.must_wait(&s, 0) {
            self.room.notify_one();
        }
        Take::Data(frame)
    }

    /// Bytes produced but not yet taken by the attached consumer.
    pub fn unsent(&self) -> u64 {
        let s = self.lock();
        s.end.saturating_sub(s.sent)
    }

    /// Offsets `(start, end)` of the retained bytes.
    pub fn span(&self) -> (u64, u64) {
        let s = self.lock();
        (s.start, s.end)
    }

    /// Bytes currently retained (for memory accounting in tests).
    pub fn retained(&self) -> usize {
        let s = self.lock();
        (s.end - s.start) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn collect(buf: &OutputBuffer, generation: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while let Take::Data(b) = buf.take(generation) {
            out.extend_from_slice(&b);
        }
        out
    }

    #[test]
    fn acks_coming_back_late_shrink_what_the_producer_may_send_ahead() {
        const KIB: u64 = 1024;
        let buf = OutputBuffer::new(256 * 1024, 1024 * KIB, 64 * 1024);
        let generation = buf.attach(None, true).generation;
        let mut end = 0;
        // The reader reads while there is room, and the socket takes all.
        let fill = |end: &mut u64| {
            while buf.has_room(0) {
                buf.push(Bytes::from(vec![b'x'; 16 * 1024]));
                *end += 16 * KIB;
                while let Take::Data(_) = buf.take(generation) {}
            }
        };
        fill(&mut end);
        assert!(end >= 1024 * KIB, "the whole window goes out first: {end}");
        // A client reading 64 KiB every 3 ms: each ack frees room for more,
        // which queues behind what it has not read yet.
        let mut acked = 0;
        for _ in 0..80 {
            std::thread::sleep(Duration::from_millis(3));
            acked += 64 * KIB;
            buf.ack(generation, acked);
            fill(&mut end);
        }
        assert!(end - acked <= 512 * KIB, "{} KiB ahead of a slow client's acks", (end - acked) / KIB);
        // The shrunk window holds several frames, so the client can ack
        // within it.
        let window = buf.lock().flow.as_ref().map(FlowWindow::window).unwrap_or_default();
        assert!(window < 1024 * KIB);
        buf.push(Bytes::from(vec![b'y'; 64 * 1024]));
        let Take::Data(frame) = buf.take(generation) else { panic!("no frame") };
        assert!(frame.len() as u64 <= (window / 4).max(MIN_FRAME as u64), "{} bytes, window {window}", frame.len());
    }

    #[tokio::test]
    async fn input_ends_a_pause_but_does_not_wake_a_reader_otherwise() {
        let buf = OutputBuffer::new(64 * 1024, 1 << 20, 16 * 1024);
        let soon = Duration::from_millis(50);
        buf.input_written();
        assert!(
            tokio::time::timeout(soon, buf.producer_wake()).await.is_err(),
            "a keystroke outside a flood's pause woke the reader"
        );
        assert!(buf.take_input(), "the next pause is short");
        assert!(!buf.take_input());
        buf.set_pausing(true);
        buf.input_written();
        assert!(tokio::time::timeout(soon, buf.producer_wake()).await.is_ok(), "input did not end the pause");
        assert!(!buf.is_stopped());
        buf.set_pausing(false);
    }

    #[test]
    fn replays_from_offset_without_duplicates() {
        let buf = OutputBuffer::new(64 * 1024, 1 << 20, 8192);
        buf.push(Bytes::from_static(b"hello "));
        buf.push(Bytes::from_static(b"world"));
        let a = buf.attach(None, false);
        assert_eq!(a.offset, 0);
        assert_eq!(collect(&buf, a.generation), b"hello world");
        buf.push(Bytes::from_static(b"!!"));
        let b = buf.attach(Some(8), false);
        assert!(matches!(buf.take(a.generation), Take::Detached));
        assert_eq!(collect(&buf, b.generation), b"rld!!");
    }

    /// A ring of many one-byte chunks (keystroke echoes) is found from any
    /// offset: the newest, the middle, and an eviction's edge.
    #[test]
    fn finds_any_offset_among_many_small_chunks() {
        let buf = OutputBuffer::new(64 * 1024, 1 << 20, 4096);
        let all: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        for byte in &all {
            buf.push(Bytes::copy_from_slice(std::slice::from_ref(byte)));
        }
        for from in [0, 1, 1500, 2999, 3000] {
            let a = buf.attach(Some(from), false);
            assert!(collect(&buf, a.generation) == all[from as usize..], "from {from}");
        }
        let a = buf.attach(Some(3000), false);
        buf.push(Bytes::from_static(b"\x00\x01"));
        assert!(collect(&buf, a.generation) == [0, 1], "only what came after the newest offset");
    }

    #[test]
    fn evicts_old_bytes_and_reports_loss() {
        let buf = OutputBuffer::new(32 * 1024, 1 << 20, 1 << 20);
        for _ in 0..10 {
            buf.push(Bytes::from(vec![b'x'; 8 * 1024]));
        }
        assert!(buf.retained() <= 32 * 1024);
        let a = buf.attach(Some(0), false);
        assert_eq!(a.lost, a.offset);
        assert_eq!(a.offset + collect(&buf, a.generation).len() as u64, 80 * 1024);
    }

    #[test]
    fn coalesces_and_caps_frames() {
        let buf = OutputBuffer::new(64 * 1024, 1 << 20, 1024);
        for i in 0..5u8 {
            buf.push(Bytes::from(vec![i; 400]));
        }
        let a = buf.attach(None, false);
        let Take::Data(f) = buf.take(a.generation) else { panic!() };
        assert_eq!(f.len(), 1024);
        assert_eq!((f[0], f[399], f[400], f[1023]), (0, 0, 1, 2));
        let Take::Data(f) = buf.take(a.generation) else { panic!() };
        assert_eq!(f.len(), 976);
        assert_eq!((f[0], f[975]), (2, 4));
        assert!(matches!(buf.take(a.generation), Take::Empty));
        buf.push(Bytes::from_static(b"one"));
        let Take::Data(f) = buf.take(a.generation) else { panic!() };
        assert_eq!(&f[..], b"one", "a single chunk is passed through");
        buf.finish_reading();
        assert!(matches!(buf.take(a.generation), Take::Empty), "exit code not known yet");
        buf.set_exit(Some(0));
        assert!(matches!(buf.take(a.generation), Take::Finished(Some(0))));
    }

    #[test]
    fn an_attached_consumer_never_loses_bytes_to_eviction() {
        // A ring larger than a frame: the consumer is part-way through the
        // front chunk when the ring passes its capacity.
        let buf = OutputBuffer::new(2 * READ_MAX, 1 << 20, 1024);
        let a = buf.attach(None, false);
        let mut pushed = Vec::new();
        let mut received = Vec::new();
        for i in 0..6u8 {
            let chunk = vec![i; 10_000];
            pushed.extend_from_slice(&chunk);
            buf.push(Bytes::from(chunk));
            if let Take::Data(frame) = buf.take(a.generation) {
                received.extend_from_slice(&frame);
            }
        }
        received.extend(collect(&buf, a.generation));
        assert_eq!(received.len(), pushed.len());
        assert!(received == pushed, "bytes lost or reordered");
        buf.push(Bytes::from_static(b"!"));
        assert!(buf.retained() <= 2 * READ_MAX, "sent chunks are still evicted");
    }

    #[test]
    fn back_pressure_while_attached_only() {
        let buf = OutputBuffer::new(2 * READ_MAX, 1 << 20, 1 << 20);
        buf.push(Bytes::from(vec![0u8; READ_MAX]));
        assert!(!buf.must_wait(&buf.lock(), 0), "detached: never waits");
        let a = buf.attach(Some(0), false);
        buf.push(Bytes::from(vec![0u8; 10]));
        assert!(buf.must_wait(&buf.lock(), 0));
        let _ = buf.take(a.generation);
        assert!(!buf.must_wait(&buf.lock(), 0));
    }

    #[test]
    fn ack_window_limits_producer() {
        let buf = OutputBuffer::new(1 << 20, READ_MAX as u64, 1 << 20);
        let a = buf.attach(None, true);
        buf.push(Bytes::from(vec![0u8; READ_MAX]));
        let _ = buf.take(a.generation);
        assert!(buf.must_wait(&buf.lock(), 0));
        buf.ack(a.generation, READ_MAX as u64);
        assert!(!buf.must_wait(&buf.lock(), 0));
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Push(usize),
            Take,
            Reattach,
            Drop,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (1usize..6000).prop_map(Op::Push),
                4 => Just(Op::Take),
                1 => Just(Op::Reattach),
                1 => Just(Op::Drop),
            ]
        }

        proptest! {
            /// Whatever the interleaving of output, reads, drops and
            /// reattaches, a client that reattaches with its offset receives
            /// exactly the produced bytes from there: no gap beyond what the
            /// hello reports as lost, no duplicate, in order.
            #[test]
            fn reattach_never_duplicates_or_reorders(ops in proptest::collection::vec(op(), 1..300), cap_kib in 32usize..96) {
                let capacity = cap_kib * 1024;
                let buf = OutputBuffer::new(capacity, u64::MAX, 8 * 1024);
                let byte = |i: usize| (i % 251) as u8;
                let mut produced = 0usize;
                let mut client = 0u64;
                let mut lost_total = 0u64;
                let mut attachment = Some(buf.attach(Some(0), false));
                for op in ops {
                    match op {
                        Op::Push(n) => {
                            // While attached the reader waits for room (back-pressure).
                            if attachment.is_some() && buf.unsent() as usize + READ_MAX > capacity {
                                continue;
                            }
                            let n = n.min(READ_MAX);
                            let chunk: Vec<u8> = (produced..produced + n).map(byte).collect();
                            buf.push(Bytes::from(chunk));
                            produced += n;
                        }
                        Op::Take => {
                            if let Some(a) = &attachment {
                                match buf.take(a.generation) {
                                    Take::Data(b) => {
                                        for (k, got) in b.iter().enumerate() {
                                            prop_assert_eq!(*got, byte(client as usize + k));
                                        }
                                        client += b.len() as u64;
                                    }
                                    Take::Empty => prop_assert_eq!(client, produced as u64),
                                    other => prop_assert!(false, "unexpected {:?}", other),
                                }
                            }
                        }
                        Op::Reattach => {
                            let a = buf.attach(Some(client), false);
                            prop_assert_eq!(a.offset, client + a.lost);
                            let (start, end) = buf.span();
                            prop_assert!(a.offset >= start && a.offset <= end);
                            lost_total += a.lost;
                            client = a.offset;
                            attachment = Some(a);
                        }
                        Op::Drop => {
                            if let Some(a) = attachment.take() {
                                prop_assert!(buf.detach(a.generation));
                            }
                        }
                    }
                    prop_assert!(buf.retained() <= capacity);
                }
                prop_assert!(client <= produced as u64);
                prop_assert!(lost_total <= produced as u64);
            }
        }
    }
}
