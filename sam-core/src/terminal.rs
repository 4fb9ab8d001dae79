//! The terminal's wire protocol (the agent's `/ws/terminal`): its control
//! messages and their validation, shared by every end that speaks it (the
//! agent, and clients other than the browser page). The whole exchange —
//! binary frames for the shell's bytes, offsets, reattach, flow control —
//! is described in `sam-agent`'s crate documentation.

use serde::{Deserialize, Serialize};

/// Smallest accepted terminal dimension.
pub const MIN_DIMENSION: u16 = 1;
/// Largest accepted terminal dimension (rows or columns).
pub const MAX_DIMENSION: u16 = 500;
/// Longest accepted session id.
pub const MAX_SESSION_ID_LEN: usize = 64;
/// Longest delay a `close` may ask for, in seconds.
pub const MAX_CLOSE_DELAY: u32 = 10;
/// Longest session name, in characters.
pub const MAX_SESSION_NAME_CHARS: usize = 40;

/// WebSocket close codes the agent uses.
pub mod close_code {
    /// Normal closure: the shell exited or the client asked to close.
    pub const NORMAL: u16 = 1000;
    /// The agent is shutting down (idle shutdown or stop).
    pub const GOING_AWAY: u16 = 1001;
    /// A text frame that is not a valid control message.
    pub const INVALID_CONTROL: u16 = 1007;
    /// A message larger than the configured limit.
    pub const TOO_BIG: u16 = 1009;
    /// Internal failure (e.g. the shell could not be started).
    pub const INTERNAL: u16 = 1011;
    /// Too many sessions; retry later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The same session was attached from another connection.
    pub const TAKEN_OVER: u16 = 4001;
    /// The requested session id is not acceptable.
    pub const BAD_SESSION: u16 = 4002;
    /// The sign-in the terminal was opened under ended (signed out at the
    /// control plane); the shell stays for a new sign-in to reattach.
    pub const SIGNED_OUT: u16 = 4003;
    /// The workspace already runs as many terminal sessions as it allows:
    /// close one before opening another (retrying will not help).
    pub const TOO_MANY_SESSIONS: u16 = 4004;
}

/// A terminal size, validated to `1..=500` in both dimensions.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WindowSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl Default for WindowSize {
    fn default() -> Self {
        Self { rows: 24, cols: 80 }
    }
}

impl WindowSize {
    /// A size if both dimensions are in `1..=500`.
    pub fn new(rows: u32, cols: u32) -> Option<Self> {
        let ok = |v: u32| (u32::from(MIN_DIMENSION)..=u32::from(MAX_DIMENSION)).contains(&v);
        if ok(rows) && ok(cols) {
            Some(Self { rows: u16::try_from(rows).ok()?, cols: u16::try_from(cols).ok()? })
        } else {
            None
        }
    }
}

/// A control message from the browser (a text frame).
#[derive(Clone, PartialEq, Eq, Debug, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientControl {
    /// The terminal was resized. Values outside `1..=500` close the socket.
    Resize {
        /// Rows.
        rows: u32,
        /// Columns.
        cols: u32,
    },
    /// Liveness probe; answered with `pong` carrying the same `id`.
    Ping {
        /// Opaque number echoed back.
        #[serde(default)]
        id: u64,
    },
    /// Answer to a server `ping`.
    Pong {
        /// The id of the ping.
        #[serde(default)]
        id: u64,
    },
    /// Flow control: the client has processed output up to byte `offset`.
    Ack {
        /// Stream offset (bytes since the session started).
        offset: u64,
    },
    /// The tab was closed on purpose: end the shell now, or after `after`
    /// seconds (at most 10) unless the same session reattaches first (lets
    /// a page reload keep its shell).
    Close {
        /// Delay in seconds before the shell ends.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u32>,
    },
    /// A new name for the session (see [`session_name`]).
    Rename {
        /// The name, 1 to 40 characters without control characters.
        name: String,
    },
    /// The user said they are still there: counts as activity for the idle
    /// timer without sending anything to the shell.
    Active,
}

/// A control message to the browser (a text frame).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerControl {
    /// First frame on every connection: which session this is and the stream
    /// offset of the next binary byte.
    Hello {
        /// Session id.
        session: String,
        /// The session's name.
        name: String,
        /// Stream offset of the first binary byte that follows.
        offset: u64,
        /// True when an existing shell was reattached.
        resumed: bool,
        /// Bytes the client asked for that had already left the ring buffer.
        #[serde(rename = "lostBytes")]
        lost_bytes: u64,
        /// Flow-control window in bytes (only when acks were requested).
        #[serde(rename = "ackWindow", skip_serializing_if = "Option::is_none")]
        ack_window: Option<u64>,
    },
    /// Answer to a client `ping`.
    Pong {
        /// Echoed id.
        id: u64,
    },
    /// The workspace is idle and stops at `deadline` unless there is activity.
    IdleWarning {
        /// RFC 3339 deadline.
        deadline: String,
        /// Seconds until the deadline when the notice was sent.
        #[serde(rename = "secondsLeft")]
        seconds_left: u64,
    },
    /// The idle warning is over: there was activity (here, in another
    /// terminal, or the user said so on the dashboard).
    IdleCleared,
    /// The workspace is stopping; the socket closes right after.
    Shutdown {
        /// Why (e.g. `idle_timeout`).
        reason: String,
    },
    /// The shell exited; the socket closes right after.
    Exit {
        /// Exit code when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u32>,
    },
}

impl ServerControl {
    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Serialising these plain enums cannot fail; fall back to an empty object.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// Why a control frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// Not JSON or not one of the documented messages.
    #[error("malformed control message")]
    Malformed,
    /// A resize outside `1..=500`.
    #[error("terminal size out of range")]
    SizeOutOfRange,
    /// A rename whose name [`session_name`] does not accept as it is.
    #[error("a session name is 1 to 40 characters, without control characters or surrounding spaces")]
    BadName,
}

/// Parses and validates a client control frame.
pub fn parse_client(text: &str) -> Result<ClientControl, ControlError> {
    let msg: ClientControl = serde_json::from_str(text).map_err(|_| ControlError::Malformed)?;
    if let ClientControl::Resize { rows, cols } = msg
        && WindowSize::new(rows, cols).is_none()
    {
        return Err(ControlError::SizeOutOfRange);
    }
    if let ClientControl::Close { after: Some(after) } = msg
        && after > MAX_CLOSE_DELAY
    {
        return Err(ControlError::Malformed);
    }
    if let ClientControl::Rename { name } = &msg
        && session_name(name).as_deref() != Some(name.as_str())
    {
        return Err(ControlError::BadName);
    }
    Ok(msg)
}

/// A session name as the agent keeps it: `raw` without surrounding white
/// space, if that is 1 to [`MAX_SESSION_NAME_CHARS`] characters and holds no
/// control characters (a name is shown in tab bars and listings, never
/// interpreted).
///
/// ```
/// use sam_core::terminal::session_name;
/// assert_eq!(session_name("  build  ").as_deref(), Some("build"));
/// assert_eq!(session_name("a\u{1b}[31m"), None);
/// assert_eq!(session_name(" "), None);
/// ```
pub fn session_name(raw: &str) -> Option<String> {
    let name = raw.trim();
    let chars = name.chars().count();
    ((1..=MAX_SESSION_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control)).then(|| name.to_owned())
}

/// True for a session id the agent accepts: 1..=64 characters of
/// `[A-Za-z0-9_-]`.
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SESSION_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_messages() {
        assert_eq!(
            parse_client(r#"{"type":"resize","rows":40,"cols":120}"#),
            Ok(ClientControl::Resize { rows: 40, cols: 120 })
        );
        assert_eq!(parse_client(r#"{"type":"ping","id":7}"#), Ok(ClientControl::Ping { id: 7 }));
        assert_eq!(parse_client(r#"{"type":"ack","offset":65536}"#), Ok(ClientControl::Ack { offset: 65536 }));
        assert_eq!(parse_client(r#"{"type":"close"}"#), Ok(ClientControl::Close { after: None }));
        assert_eq!(parse_client(r#"{"type":"close","after":3}"#), Ok(ClientControl::Close { after: Some(3) }));
        assert_eq!(
            parse_client(r#"{"type":"rename","name":"build ✓"}"#),
            Ok(ClientControl::Rename { name: "build ✓".into() })
        );
        assert_eq!(parse_client(r#"{"type":"active"}"#), Ok(ClientControl::Active));
    }

    #[test]
    fn rejects_bad_messages() {
        assert_eq!(parse_client("not json"), Err(ControlError::Malformed));
        assert_eq!(parse_client(r#"{"type":"launch"}"#), Err(ControlError::Malformed));
        assert_eq!(parse_client(r#"{"type":"resize","rows":-1,"cols":80}"#), Err(ControlError::Malformed));
        assert_eq!(parse_client(r#"{"type":"resize","rows":0,"cols":80}"#), Err(ControlError::SizeOutOfRange));
        assert_eq!(parse_client(r#"{"type":"resize","rows":100000,"cols":80}"#), Err(ControlError::SizeOutOfRange));
        assert_eq!(parse_client(r#"{"type":"resize","rows":24,"cols":501}"#), Err(ControlError::SizeOutOfRange));
        assert_eq!(parse_client(r#"{"type":"close","x":1}"#), Err(ControlError::Malformed));
        assert_eq!(parse_client(r#"{"type":"rename","name":""}"#), Err(ControlError::BadName));
        assert_eq!(parse_client(r#"{"type":"rename","name":" x"}"#), Err(ControlError::BadName));
        assert_eq!(parse_client(r#"{"type":"rename","name":"a\u0007"}"#), Err(ControlError::BadName));
        let long = format!(r#"{{"type":"rename","name":"{}"}}"#, "é".repeat(41));
        assert_eq!(parse_client(&long), Err(ControlError::BadName));
        let longest = format!(r#"{{"type":"rename","name":"{}"}}"#, "é".repeat(40));
        assert!(parse_client(&longest).is_ok());
    }

    #[test]
    fn session_ids() {
        assert!(valid_session_id("abc-DEF_123"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("../etc"));
        assert!(!valid_session_id(&"a".repeat(65)));
    }

    #[test]
    fn server_messages_serialise() {
        let hello = ServerControl::Hello {
            session: "s1".into(),
            name: "build".into(),
            offset: 10,
            resumed: true,
            lost_bytes: 0,
            ack_window: None,
        };
        assert_eq!(
            hello.to_json(),
            r#"{"type":"hello","session":"s1","name":"build","offset":10,"resumed":true,"lostBytes":0}"#
        );
        let warn = ServerControl::IdleWarning { deadline: "2026-01-01T00:00:00Z".into(), seconds_left: 300 };
        assert_eq!(warn.to_json(), r#"{"type":"idle_warning","deadline":"2026-01-01T00:00:00Z","secondsLeft":300}"#);
        assert_eq!(ServerControl::IdleCleared.to_json(), r#"{"type":"idle_cleared"}"#);
    }
}
