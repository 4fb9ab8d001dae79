//! GitHub webhook deliveries (`sam_providers::github_webhooks`): the signature
//! check runs on every body anyone posts, the parser on every signed one.
//! Neither panics; a signature is accepted only when it is the body's
//! HMAC-SHA256 under the secret; what the parser accepts names valid
//! repositories only.
#![no_main]

use hmac::{Hmac, Mac};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sam_core::secret::SecretString;
use sam_providers::github_webhooks::{WebhookEvent, parse_event, verify_signature};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    event: &'a str,
    signature: &'a str,
    body: &'a [u8],
}

const SECRET: &str = "fuzzing secret";

fuzz_target!(|input: Input<'_>| {
    let secret = SecretString::new(SECRET);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(input.body);
    let genuine: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let accepted = verify_signature(&secret, input.body, Some(input.signature)).is_ok();
    let matches = input.signature.trim().strip_prefix("sha256=").is_some_and(|hex| hex.eq_ignore_ascii_case(&genuine));
    assert_eq!(accepted, matches, "{:?}", input.signature);
    assert!(verify_signature(&secret, input.body, Some(&format!("sha256={genuine}"))).is_ok());

    if let Ok(event) = parse_event(input.event, input.body) {
        let repositories = match &event {
            WebhookEvent::InstallationCreated { repositories, .. }
            | WebhookEvent::RepositoriesAdded { repositories, .. }
            | WebhookEvent::RepositoriesRemoved { repositories, .. } => repositories.clone(),
            _ => Vec::new(),
        };
        for repository in repositories {
            assert!(sam_core::domain::RepoFullName::new(repository.as_str()).is_ok());
        }
    }
});
