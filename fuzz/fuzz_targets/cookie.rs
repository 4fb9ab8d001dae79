//! The cookie parser (`sam_providers::cookie`) the control plane and the
//! agent read sessions with, on `Cookie` headers anyone can send: it never
//! panics, returns only a value that stands after `name=` in one of the
//! pairs sent, and finds the value of a cookie it set itself whatever else
//! the headers carry.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sam_providers::cookie::{Cookie, SameSite, find};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    headers: Vec<&'a str>,
    name: &'a str,
    value: &'a str,
    secure: bool,
}

fuzz_target!(|input: Input<'_>| {
    if let Some(value) = find(input.headers.iter().copied(), input.name) {
        let sent = input
            .headers
            .iter()
            .flat_map(|h| h.split(';'))
            .any(|pair| pair.trim().split_once('=') == Some((input.name, value)));
        assert!(sent, "{value:?} was not sent as {:?}", input.name);
    }
    // A value of cookie-octets (RFC 6265), as SAM's own are.
    let octet = |b: u8| {
        b == 0x21
            || (0x23..=0x2b).contains(&b)
            || (0x2d..=0x3a).contains(&b)
            || (0x3c..=0x5b).contains(&b)
            || (0x5d..=0x7e).contains(&b)
    };
    if input.value.bytes().all(octet) {
        let cookie = Cookie::new("sam_session", input.secure, SameSite::Lax);
        let set = cookie.set(input.value, std::time::Duration::from_secs(60));
        let pair = set.split(';').next().expect("a pair first");
        let mut headers: Vec<String> =
            input.headers.iter().filter(|h| !h.contains(cookie.name())).map(|h| (*h).to_owned()).collect();
        headers.push(pair.to_owned());
        assert_eq!(cookie.find(headers.iter().map(String::as_str)), Some(input.value));
    }
});
