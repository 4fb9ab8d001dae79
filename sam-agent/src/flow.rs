//! How much output may be on its way to a client that acknowledges it.
//!
//! A client that acks (the page does, after xterm.js has parsed the bytes)
//! bounds what the agent sends ahead of it: the ack window. A fixed window
//! big enough for a distant client (10 MB/s over a 100-ms round trip needs
//! 1 MiB) is far too big for a near one that renders slower than the shell
//! prints: the whole window then waits in socket buffers, and after a
//! Ctrl-C the user watches all of it scroll by before the prompt (a
//! client reading 10 MB/s: 1 MiB, 100 ms).
//!
//! So the window follows the delay of the acks, as delay-based congestion
//! control does. The time from handing a byte to the socket until its ack
//! arrives is the round trip plus whatever waits in front of it; the
//! smallest delay seen lately stands for the round trip. When acks come
//! back later than that by more than a round trip (at least
//! [`QUEUE_TARGET`]), output is queueing and the window shrinks (below);
//! when they come back with little queueing it grows by a quarter,
//! up to the configured window. It never goes below what the client's own
//! ack cadence needs to keep acking (half again the largest step between
//! two of its acks, and one more read), so flow never stops for a client
//! that acks at a steady cadence, as the page (every 64 KiB) and `sam
//! shell` (every 16 KiB) do.
//!
//! An ack's delay is timed from when the frame it acks went to the socket:
//! a client acks right after reading the frame that crossed its cadence,
//! so that delay holds no wait for the cadence. When acks show queueing,
//! the window is cut at once to what was in flight with that frame, scaled
//! to the delay that leaves the target's worth of queueing (at least a
//! quarter less); acks of output sent before a change do not change it
//! again. The output buffer keeps frames to a quarter of the window, so a
//! client can ack within it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::output::READ_MAX;

/// Queueing below this is never a reason to shrink: a near client's acks
/// wander by a few hundred microseconds with the scheduler. Far enough to
/// let a fast client (50 MB/s) keep what it needs, near enough that after
/// a Ctrl-C it has only tens of KiB left to show.
pub const QUEUE_TARGET: Duration = Duration::from_micros(500);
/// How long the smallest delay seen stands for the round trip; a route that
/// got slower is then not taken for queueing for longer than this.
pub const MIN_DELAY_LIFETIME: Duration = Duration::from_secs(10);
/// Sends remembered for timing acks: small frames (keystroke echoes) share
/// an entry until it spans this much, which keeps the record at a few
/// hundred entries for a 1-MiB window. An entry keeps the time of its
/// latest frame: a client acks at the end of a frame, most often the
/// latest of its entry, and where not, the delay comes out short, which
/// never shrinks the window.
const SEND_GRAIN: u64 = 4096;
/// At most this many sends remembered; more share the newest entry.
const MAX_SENDS: usize = 512;

/// Frames handed to the socket: where the first of them ended and the
/// last, when the last went, and how much was unacknowledged with it.
#[derive(Debug, Clone, Copy)]
struct Send {
    first_end: u64,
    end: u64,
    at: Instant,
    in_flight: u64,
}

/// The ack window of one attached client.
#[derive(Debug, Clone)]
pub struct FlowWindow {
    max: u64,
    window: u64,
    /// Largest step between two acks lately: the client acks after this much.
    step: u64,
    last_ack: u64,
    /// Frames handed to the socket and not acked yet, oldest first.
    sends: VecDeque<Send>,
    /// The window last changed when output had been sent up to here; acks
    /// of what went before it tell of the old window, not of this one.
    changed_at: u64,
    /// The smallest ack delay seen, and when.
    min_delay: Option<(Duration, Instant)>,
}

impl FlowWindow {
    /// A window of at most `max` bytes for a client that has acked up to
    /// `acked`; it starts at `max`.
    pub fn new(max: u64, acked: u64) -> Self {
        Self { max, window: max, step: 0, last_ack: acked, sends: VecDeque::new(), changed_at: acked, min_delay: None }
    }

    /// Bytes that may be produced beyond the last ack.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The offset the client has acked up to.
    pub fn acked(&self) -> u64 {
        self.last_ack
    }

    /// The socket was handed output up to `end` at `now`.
    pub fn sent(&mut self, end: u64, now: Instant) {
        let full = self.sends.len() >= MAX_SENDS;
        match self.sends.back_mut() {
            Some(last) if full || end < last.first_end + SEND_GRAIN => {
                last.end = last.end.max(end);
                last.at = now;
                last.in_flight = last.end.saturating_sub(self.last_ack);
            }
            _ => self.sends.push_back(Send {
                first_end: end,
                end,
                at: now,
                in_flight: end.saturating_sub(self.last_ack),
            }),
        }
    }

    /// The client acked up to `offset` at `now` (an older ack changes
    /// nothing).
    pub fn ack(&mut self, offset: u64, now: Instant) {
        if offset <= self.last_ack {
            return;
        }
        // The largest step lately: frames cut smaller (see the output
        // buffer) let a client ack in smaller steps, and an old step from
        // bigger frames fades by an eighth per ack. Never below the step
        // just taken, so the floor always leaves the client room to ack.
        self.step = (offset - self.last_ack).max(self.step - self.step / 8);
        self.last_ack = offset;
        // A client that now acks less often than before needs room for it.
        self.window = self.window.max(self.floor());
        // The frame that carried the acked byte: the client acks as soon as
        // it has read that frame, so its delay is the round trip and the
        // queue in front of it, not the client's ack cadence.
        while self.sends.front().is_some_and(|s| s.end < offset) {
            self.sends.pop_front();
        }
        let Some(send) = self.sends.front().copied() else { return };
        if send.end == offset {
            self.sends.pop_front();
        }
        let delay = now.saturating_duration_since(send.at);
        let least = match self.min_delay {
            Some((least, seen)) if least <= delay && now.saturating_duration_since(seen) < MIN_DELAY_LIFETIME => least,
            _ => {
                self.min_delay = Some((delay, now));
                delay
            }
        };
        if send.end <= self.changed_at {
            return;
        }
        let queued = delay - least;
        let target = least.max(QUEUE_TARGET);
        let before = self.window;
        if queued > target {
            // What was in flight with that frame, scaled to the delay that
            // leaves `target` of queueing: one step to about the right
            // window, however far off it was (at least a quarter off).
            let fits =
                u64::try_from(u128::from(send.in_flight) * (least + target).as_nanos() / delay.as_nanos().max(1))
                    .unwrap_or(u64::MAX);
            self.window = (self.window - self.window / 4).min(fits).max(self.floor());
        } else if queued < target / 2 {
            self.window = (self.window + self.window / 4).min(self.max);
        }
        if self.window != before {
            self.changed_at = self.sends.back().map_or(offset, |s| s.end);
        }
    }

    /// The least window with which the client keeps acking: its cadence,
    /// half again, and one more read.
    fn floor(&self) -> u64 {
        (self.step + self.step / 2 + READ_MAX as u64).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    const KIB: u64 = 1024;

    /// An agent producing as fast as the window lets it, a link with
    /// `one_way` delay each direction, and a client reading `rate` bytes a
    /// second and acking every 64 KiB, for `secs` seconds of simulated
    /// time. Returns (bytes per second the client read in the second half,
    /// the most bytes on their way (produced, not yet read) in that half).
    fn simulate(adaptive: bool, rate: f64, one_way: Duration, secs: f64) -> (f64, u64) {
        let max = 1024 * KIB;
        let tick = Duration::from_micros(50);
        let start = Instant::now();
        let mut flow = FlowWindow::new(max, 0);
        let (mut end, mut acked, mut read, mut client_acked) = (0u64, 0u64, 0u64, 0u64);
        let mut arriving: VecDeque<(Instant, u64)> = VecDeque::new();
        let mut acks: VecDeque<(Instant, u64)> = VecDeque::new();
        let mut delivered = 0u64;
        let mut credit = 0.0;
        let (mut read_half, mut worst) = (0u64, 0u64);
        let ticks = (secs / tick.as_secs_f64()) as u64;
        for i in 0..ticks {
            let now = start + tick * u32::try_from(i).unwrap_or(u32::MAX);
            while let Some((_, offset)) = acks.front().copied().filter(|(at, _)| *at <= now) {
                acks.pop_front();
                acked = acked.max(offset);
                flow.ack(offset, now);
            }
            // As the agent's reader: another read while under the window.
            let window = if adaptive { flow.window() } else { max };
            while end - acked < window {
                end += READ_MAX as u64;
                arriving.push_back((now + one_way, end));
                flow.sent(end, now);
            }
            while let Some((_, until)) = arriving.front().copied().filter(|(at, _)| *at <= now) {
                arriving.pop_front();
                delivered = until;
            }
            // The client reads at its pace, and banks no time while idle.
            credit += rate * tick.as_secs_f64();
            let can = (delivered - read).min(credit as u64);
            credit -= can as f64;
            read += can;
            if read == delivered {
                credit = 0.0;
            }
            if read - client_acked >= 64 * KIB {
                client_acked = read;
                acks.push_back((now + one_way, read));
            }
            if i >= ticks / 2 {
                read_half += can;
                worst = worst.max(end - read);
            }
        }
        (read_half as f64 / (secs / 2.0), worst)
    }

    #[test]
    fn a_slow_near_client_gets_a_small_window_and_loses_no_throughput() {
        let near = Duration::from_micros(50);
        let (fixed_rate, fixed_queue) = simulate(false, 10e6, near, 4.0);
        let (rate, queue) = simulate(true, 10e6, near, 4.0);
        assert!(fixed_queue >= 900 * KIB, "the fixed window fills: {fixed_queue}");
        assert!(queue <= 256 * KIB, "{queue} bytes on their way to a 10 MB/s client");
        assert!(rate >= 0.95 * fixed_rate, "{rate} B/s against {fixed_rate} with the fixed window");
    }

    /// A client 50 ms away (round trip) reading `rate` bytes a second gets
    /// at least 90 % of what the fixed window gave it.
    fn keeps_its_throughput_far_away(rate: f64) {
        let far = Duration::from_millis(25);
        let (fixed_rate, _) = simulate(false, rate, far, 6.0);
        let (adaptive_rate, _) = simulate(true, rate, far, 6.0);
        assert!(adaptive_rate >= 0.9 * fixed_rate, "{adaptive_rate} B/s against {fixed_rate} with the fixed window");
    }

    #[test]
    fn a_distant_fast_client_keeps_the_whole_window() {
        keeps_its_throughput_far_away(100e6);
    }

    #[test]
    fn a_distant_client_as_fast_as_the_window_keeps_its_throughput() {
        keeps_its_throughput_far_away(20e6);
    }

    /// A window of 1 MiB with the round trip known (0.1 ms), 64 frames of
    /// 16 KiB handed to the socket at once, and a client reading `rate`
    /// bytes a second that acks every frame it read. Returns the window
    /// after each ack.
    fn one_burst(rate: f64) -> Vec<u64> {
        let t0 = Instant::now();
        let mut flow = FlowWindow::new(1024 * KIB, 0);
        flow.sent(16 * KIB, t0);
        flow.ack(16 * KIB, t0 + Duration::from_micros(100));
        let t1 = t0 + Duration::from_millis(1);
        for k in 1..=64 {
            flow.sent((k + 1) * 16 * KIB, t1);
        }
        (1..=64u32)
            .map(|k| {
                let read = t1 + Duration::from_secs_f64(f64::from(k) * 16384.0 / rate);
                flow.ack(u64::from(k + 1) * 16 * KIB, read);
                flow.window()
            })
            .collect()
    }

    #[test]
    fn a_queue_brings_the_window_down_in_one_step() {
        // 10 MB/s: the second frame is acked 3.3 ms after it was sent, with
        // 32 KiB in flight; 0.6 ms of that fits, well under the floor.
        let windows = one_burst(10e6);
        let floor = 16 * KIB + 8 * KIB + READ_MAX as u64;
        assert_eq!(windows[1], floor, "{windows:?}");
        assert!(windows.iter().all(|w| *w == floor || *w == 1024 * KIB), "{windows:?}");
    }

    #[test]
    fn acks_of_output_sent_before_a_change_do_not_change_it_again() {
        // 100 MB/s: the fourth frame comes back 0.66 ms after it was sent
        // with 64 KiB in flight, which cuts the window to 64 KiB × 0.6 /
        // 0.66 (59 KiB); the 60 frames that went out with the old window
        // come back later and later, and change nothing more.
        let windows = one_burst(100e6);
        let cut = windows.iter().position(|w| *w < 1024 * KIB).unwrap_or(64);
        assert_eq!(cut, 3, "{windows:?}");
        assert!((56 * KIB..=60 * KIB).contains(&windows[cut]), "{windows:?}");
        assert!(windows[cut..].iter().all(|w| *w == windows[cut]), "{windows:?}");
    }

    #[test]
    fn small_frames_share_entries_of_a_few_kib() {
        let t0 = Instant::now();
        let mut flow = FlowWindow::new(1024 * KIB, 0);
        // An hour of keystroke echoes, 1 KiB a second, never acked: four
        // to an entry, then all into the newest.
        for k in 1..=3600u32 {
            flow.sent(u64::from(k) * KIB, t0 + Duration::from_secs(u64::from(k)));
        }
        assert_eq!(flow.sends.len(), MAX_SENDS);
        // The echo acked is timed from its own send, not from its entry's
        // first: no queueing, the window stays.
        let end = 3600 * KIB;
        flow.ack(end, t0 + Duration::from_secs(3600) + Duration::from_millis(1));
        assert_eq!(flow.window(), 1024 * KIB);
    }

    #[test]
    fn the_delay_is_the_acked_frames_own_not_the_clients_ack_cadence() {
        // Output paced at 10 MB/s, 16-KiB frames, each read 0.1 ms after
        // it was sent; the client acks every fourth. Timed from the first
        // frame after an ack, each ack would look 5 ms late.
        let t0 = Instant::now();
        let mut flow = FlowWindow::new(1024 * KIB, 0);
        for k in 1..=200u32 {
            let sent = t0 + Duration::from_secs_f64(f64::from(k) * 16384.0 / 10e6);
            flow.sent(u64::from(k) * 16 * KIB, sent);
            if k % 4 == 0 {
                flow.ack(u64::from(k) * 16 * KIB, sent + Duration::from_micros(100));
            }
        }
        assert_eq!(flow.window(), 1024 * KIB);
    }

    /// 100 acks of 64 KiB, each 1 ms later than the one before (queueing
    /// without end); returns the offset acked.
    fn ever_later_acks(flow: &mut FlowWindow, start: Instant) -> u64 {
        let mut offset = 0;
        for i in 0..100u32 {
            let now = start + Duration::from_millis(u64::from(i) * 10);
            flow.sent(offset + 64 * KIB, now);
            offset += 64 * KIB;
            flow.ack(offset, now + Duration::from_millis(u64::from(i)));
        }
        offset
    }

    #[test]
    fn the_window_never_drops_below_the_clients_ack_cadence() {
        let mut flow = FlowWindow::new(1024 * KIB, 0);
        ever_later_acks(&mut flow, Instant::now());
        assert_eq!(flow.window(), 64 * KIB + 32 * KIB + READ_MAX as u64);
    }

    #[test]
    fn the_floor_comes_down_when_the_client_acks_in_smaller_steps() {
        let start = Instant::now();
        let mut flow = FlowWindow::new(1024 * KIB, 0);
        let mut offset = ever_later_acks(&mut flow, start);
        assert_eq!(flow.window(), 112 * KIB);
        // Now 16-KiB steps, still queueing: the old 64-KiB step fades.
        for i in 0..100u32 {
            let now = start + Duration::from_secs(2) + Duration::from_millis(u64::from(i) * 10);
            flow.sent(offset + 16 * KIB, now);
            offset += 16 * KIB;
            flow.ack(offset, now + Duration::from_millis(5 + u64::from(i)));
        }
        assert_eq!(flow.window(), 16 * KIB + 8 * KIB + READ_MAX as u64);
    }

    #[test]
    fn a_client_acking_less_often_gets_room_for_its_cadence_at_once() {
        let start = Instant::now();
        let mut flow = FlowWindow::new(1024 * KIB, 0);
        let offset = ever_later_acks(&mut flow, start);
        assert!(flow.window() < 200 * KIB);
        flow.ack(offset + 200 * KIB, start + Duration::from_secs(2));
        assert_eq!(flow.window(), 300 * KIB + READ_MAX as u64);
    }

    #[test]
    fn the_window_grows_back_once_acks_are_prompt_again() {
        let start = Instant::now();
        let mut flow = FlowWindow::new(1024 * KIB, 0);
        let mut offset = 0;
        let mut now = start;
        for late in [1u64, 30, 60, 90, 120, 150, 180] {
            flow.sent(offset + 64 * KIB, now);
            offset += 64 * KIB;
            now += Duration::from_millis(late);
            flow.ack(offset, now);
        }
        let shrunk = flow.window();
        assert!(shrunk < 512 * KIB, "{shrunk}");
        for _ in 0..20 {
            flow.sent(offset + 64 * KIB, now);
            offset += 64 * KIB;
            now += Duration::from_millis(1);
            flow.ack(offset, now);
        }
        assert_eq!(flow.window(), 1024 * KIB);
    }
}
