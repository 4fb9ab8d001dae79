//! The terminal's control frames (`sam_core::terminal`), as a browser or any
//! client may send them: whatever arrives, the parser answers without
//! panicking, accepts only sizes and delays within their bounds, and what it
//! accepts means the same once written out again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sam_core::terminal::{
    ClientControl, MAX_CLOSE_DELAY, MAX_SESSION_ID_LEN, WindowSize, parse_client, valid_session_id,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(message) = parse_client(text) {
        match message {
            ClientControl::Resize { rows, cols } => assert!(WindowSize::new(rows, cols).is_some()),
            ClientControl::Close { after: Some(after) } => assert!(after <= MAX_CLOSE_DELAY),
            _ => {}
        }
        let again = serde_json::to_string(&message).expect("an accepted message serialises");
        assert_eq!(parse_client(&again), Ok(message), "{text:?} → {again:?}");
    }
    // Session ids name files and map keys: nothing but the safe characters.
    if valid_session_id(text) {
        assert!(text.len() <= MAX_SESSION_ID_LEN);
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
});
