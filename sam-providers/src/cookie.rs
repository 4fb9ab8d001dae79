//! Reading one cookie from `Cookie` request headers, shared by the control
//! plane (session cookie) and the agent (terminal cookie) so both parse the
//! header the same way.

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
