//! The cookies SAM sets and reads, in one place for the control plane
//! (session and OAuth cookies) and the agent (terminal cookie): how a name
//! gets its `__Host-` prefix, the attributes every SAM cookie carries, and
//! reading one back from `Cookie` headers.
//!
//! Every SAM cookie is `HttpOnly` and scoped to `Path=/`. Over HTTPS it is
//! `Secure` and its name starts with `__Host-`, which browsers accept only
//! without a `Domain` attribute: the cookie stays with the exact host that set
//! it (the control plane, or one workspace's `ws-<id>` host), never shared with
//! a sibling.

use std::time::Duration;

/// How a browser may send a cookie along with cross-site requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    /// Only same-site requests (the agent's terminal cookie).
    Strict,
    /// Also top-level navigations from elsewhere (needed for the session
    /// cookie, which arrives with the redirect back from GitHub).
    Lax,
}

/// One kind of cookie: its name and attributes.
///
/// ```
/// use sam_providers::cookie::{Cookie, SameSite};
/// use std::time::Duration;
/// let session = Cookie::new("sam_session", true, SameSite::Lax);
/// assert_eq!(session.name(), "__Host-sam_session");
/// assert_eq!(
///     session.set("abc", Duration::from_secs(60)),
///     "__Host-sam_session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
/// );
/// assert_eq!(session.find(["a=1; __Host-sam_session=abc"]), Some("abc"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    name: String,
    secure: bool,
    same_site: SameSite,
}

impl Cookie {
    /// The cookie `base_name`: `__Host-` prefixed and `Secure` when `secure`
    /// (served over HTTPS), plain otherwise (local HTTP).
    pub fn new(base_name: &str, secure: bool, same_site: SameSite) -> Self {
        let name = if secure { format!("__Host-{base_name}") } else { base_name.to_owned() };
        Self { name, secure, same_site }
    }

    /// The name as sent.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Set-Cookie` value that stores `value` for `max_age`.
    pub fn set(&self, value: &str, max_age: Duration) -> String {
        let same_site = match self.same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
        };
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={}{secure}", self.name, max_age.as_secs())
    }

    /// A `Set-Cookie` value that removes the cookie.
    pub fn clear(&self) -> String {
        self.set("", Duration::ZERO)
    }

    /// This cookie's value in `header_values` (each a `Cookie` header).
    pub fn find<'a>(&self, header_values: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        find(header_values, &self.name)
    }
}

/// The value of cookie `name` in `header_values` (each a `Cookie` header:
/// `name=value` pairs separated by `;`). The first match wins; names are
/// case-sensitive; a pair without `=` is skipped.
///
/// ```
/// let headers = ["a=1; sam_session=xyz", "b=2"];
/// assert_eq!(sam_providers::cookie::find(headers, "sam_session"), Some("xyz"));
/// assert_eq!(sam_providers::cookie::find(headers, "b"), Some("2"));
/// assert_eq!(sam_providers::cookie::find(headers, "sam"), None);
/// ```
pub fn find<'a>(header_values: impl IntoIterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    header_values
        .into_iter()
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_http_cookies_are_plain() {
        let c = Cookie::new("sam_oauth", false, SameSite::Strict);
        assert_eq!(c.name(), "sam_oauth");
        assert_eq!(c.clear(), "sam_oauth=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
        assert_eq!(c.find(["__Host-sam_oauth=x"]), None, "the prefixed name is another cookie");
    }
}
